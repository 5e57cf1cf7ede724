//! `graph`: the step graph as DOT or Mermaid.

use super::{EnvArgs, GraphFormat};
use crate::config::EnvConfig;
use crate::error::exit;
use crate::graph::{to_dot, to_mermaid};
use crate::output::stdout_line;
use crate::stack::{self, StepGraph};

pub fn build(env: &EnvConfig) -> anyhow::Result<StepGraph> {
    stack::build(env).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(|e| format!("  - {e}")).collect();
        anyhow::anyhow!(
            "the step graph of {} is not valid (a bug in tap-provision):\n{}",
            env.full_name(),
            lines.join("\n")
        )
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
    Ok(exit::OK)
}
