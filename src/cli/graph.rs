//! `graph`: the step graph as DOT or Mermaid.

use super::{EnvArgs, GraphFormat};
use crate::config::EnvConfig;
use crate::error::exit;
use crate::graph::{to_dot, to_mermaid, GraphError};
use crate::output::stdout_line;
use crate::stack::{self, StepGraph};

/// The environment's step graph; an error names the file for what the config got wrong
/// (an ignore entry naming no node) and calls the rest a bug.
pub fn build(env: &EnvConfig) -> anyhow::Result<StepGraph> {
    build_with(env, stack::build)
}

/// The graph `how` builds (`stack::build`, or `down`'s), with `build`'s errors.
pub fn build_with(
    env: &EnvConfig,
    how: fn(&EnvConfig) -> Result<StepGraph, Vec<GraphError>>,
) -> anyhow::Result<StepGraph> {
    how(env).map_err(|errors| {
        let (config, ours): (Vec<_>, Vec<_>) = errors
            .iter()
            .partition(|e| matches!(e, GraphError::Ignore { .. }));
        let lines = |es: &[&GraphError]| -> String {
            es.iter().map(|e| format!("\n  - {e}")).collect::<String>()
        };
        if ours.is_empty() {
            anyhow::anyhow!(
                "{}: {} problem(s) in the environment file{}",
                env.file.display(),
                config.len(),
                lines(&config)
            )
        } else {
            anyhow::anyhow!(
                "the step graph of {} is not valid (a bug in tap-provision):{}{}",
                env.full_name(),
                lines(&ours),
                lines(&config)
            )
        }
    })
}

pub fn run(args: &EnvArgs, format: GraphFormat) -> anyhow::Result<i32> {
    let env = crate::config::load(&args.config_dir, &args.env)?;
    let graph = build(&env)?;
    let text = match format {
        GraphFormat::Dot => to_dot(&graph, &env.full_name()),
        GraphFormat::Mermaid => to_mermaid(&graph),
    };
    stdout_line(text.trim_end());
    if !env.network.zones_named {
        eprintln!("{}", zones_note(&env));
    }
    Ok(exit::OK)
}

/// What offline commands say of zones the file does not name.
pub fn zones_note(env: &crate::config::EnvConfig) -> String {
    let shown: Vec<&str> = env.network.zones.iter().map(|z| z.name.as_str()).collect();
    format!(
        "note: network.zone_names is not set: up, plan and the other commands that talk to AWS \
         use the zones {} was built in, or look up {} zone(s) of {}; shown here as {}",
        env.full_name(),
        shown.len(),
        env.region,
        shown.join(", ")
    )
}
