//! `status`: the outputs (URLs, endpoints, the DB secret's ARN, never its value) and each
//! resource's state, from one observe pass.

use super::{EnvArgs, Settings};
use crate::error::exit;
use crate::model::RunFlags;

pub async fn run(args: &EnvArgs, settings: &Settings) -> anyhow::Result<i32> {
    let s = super::open("status", args, settings, RunFlags::default(), 1, |_, _| {
        Ok(())
    })
    .await?;
    let pass = s.look().await?;
    let observations = &pass.observations;
    let outputs = s.outputs_observed(observations);
    let mut failed = false;
    let nodes: Vec<(String, &'static str, Option<String>)> = s
        .graph
        .nodes()
        .iter()
        .zip(observations)
        .map(|(node, o)| {
            let state = match o {
                Ok(Some(live)) => {
                    Some(live.attrs.state.clone().unwrap_or_else(|| "present".into()))
                }
                Ok(None) => None,
                Err(e) => {
                    failed = true;
                    Some(format!("{}: {e}", crate::output::UNREADABLE))
                }
            };
            (node.id.clone(), node.kind, state)
        })
        .collect();
    s.reporter
        .status(&s.env.full_name(), &s.env.region, &outputs, &nodes);
    Ok(if failed { exit::ERROR } else { exit::OK })
}
