//! `graph`: the step graph as DOT or Mermaid.

use super::{EnvArgs, GraphFormat};
use crate::error::exit;
use crate::graph::{to_dot, to_mermaid};
use crate::output::stdout_line;
use crate::stack;
use crate::stack::select;

pub fn run(
    args: &EnvArgs,
    format: GraphFormat,
    areas: bool,
    only: &[String],
) -> anyhow::Result<i32> {
    let env = crate::config::load(&args.config_dir, &args.env)?;
    let mut graph = stack::checked(&env, stack::build)?;
    if areas {
        for (area, nodes) in select::areas(&graph) {
            let listed = match (nodes.is_empty(), area) {
                (true, "scheduled-repair") => "(none: [repair] schedule is off)".to_string(),
                (true, _) => "(none)".to_string(),
                (false, _) => nodes.join(", "),
            };
            stdout_line(&format!("{area}: {listed}"));
        }
        return Ok(exit::OK);
    }
    if !only.is_empty() {
        // What `up --only` would act on: the selection and what it stands on.
        let selection = select::select(&graph, only, select::Reach::Dependencies)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        graph = graph.only(|n| selection.reach.contains(&n.id));
    }
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
