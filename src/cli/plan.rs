//! `plan`: what `up` would do to each resource. Reads only; exit 0 nothing to do, 2 changes
//! pending, 1 error (as `terraform plan -detailed-exitcode`).

use std::collections::BTreeMap;

use super::{EnvArgs, Settings};
use crate::error::exit;
use crate::model::{Events, RunFlags};

pub async fn run(args: &EnvArgs, only: &[String], settings: &Settings) -> anyhow::Result<i32> {
    let s = super::open_only(
        "plan",
        args,
        only,
        settings,
        RunFlags::default(),
        1,
        |_, _| Ok(()),
    )
    .await?;
    let pass = s.look().await?;
    let preview = s.preview(&pass);
    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    for (node, plan) in s.graph.nodes().iter().zip(&preview) {
        let Some(plan) = plan else { continue };
        if !s.reports(&node.id) {
            continue; // read for the `--only` selection's sake
        }
        s.reporter.plan_node(&node.id, node.kind, plan);
        let label = match plan {
            Ok(p) => p.action.label(),
            Err(_) => "error",
        };
        *counts.entry(label).or_default() += 1;
    }
    if let Some(retired) = &s.retired {
        for ix in s.retiring(&pass, "plan")? {
            let node = retired.node(ix);
            s.reporter.note(&format!(
                "{} ({}): delete: [repair] schedule is off",
                node.id, node.kind
            ));
            *counts.entry("delete").or_default() += 1;
        }
    }
    s.reporter.orphans(&s.orphans(pass.record.as_ref()));
    let n = |k: &str| counts.get(k).copied().unwrap_or(0);
    let code = if n("error") + n("missing") + n("blocked") > 0 {
        exit::ERROR
    } else if n("create") + n("change") + n("replace") + n("delete") > 0 {
        exit::CHANGES
    } else {
        exit::OK
    };
    s.reporter
        .plan_finished(&s.env.full_name(), &counts, &s.cx.aws.calls.summary(), code);
    Ok(code)
}
