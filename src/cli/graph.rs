//! `graph`: the step graph as DOT or Mermaid.

use super::{EnvArgs, GraphFormat};
use crate::error::exit;
use crate::graph::{to_dot, to_mermaid};
use crate::output::stdout_line;
use crate::stack;

pub fn run(args: &EnvArgs, format: GraphFormat) -> anyhow::Result<i32> {
    let env = crate::config::load(&args.config_dir, &args.env)?;
    let graph = stack::checked(&env, stack::build)?;
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
