//! `history`: the latest runs that changed the environment, from the run reports in its
//! state bucket. Reads only; takes no lock.

use serde_json::json;

use super::{EnvArgs, Settings};
use crate::error::exit;
use crate::model::RunFlags;

pub async fn run(args: &EnvArgs, limit: usize, settings: &Settings) -> anyhow::Result<i32> {
    let s = super::open("history", args, settings, RunFlags::default(), 1, |_, _| {
        Ok(())
    })
    .await?;
    let bucket = s.state_bucket();
    let runs = crate::history::latest(&s.cx.aws.s3, &bucket, limit)
        .await
        .map_err(anyhow::Error::new)?;
    let mut lines = Vec::new();
    if runs.is_empty() {
        lines.push(format!(
            "{}: no run recorded in s3://{bucket}/{}",
            s.env.full_name(),
            crate::history::PREFIX
        ));
    }
    for r in &runs {
        let counts: Vec<String> = r
            .counts
            .iter()
            .filter(|(k, _)| k.as_str() != "unchanged" && k.as_str() != "absent")
            .map(|(k, v)| format!("{v} {k}"))
            .collect();
        lines.push(format!(
            "{}  {:<6} {:<11} by {} ({})  {}",
            r.started,
            r.command,
            r.result,
            r.owner,
            r.identity,
            if counts.is_empty() {
                "no change".to_string()
            } else {
                counts.join(", ")
            }
        ));
        for n in r
            .nodes
            .iter()
            .filter(|n| n.outcome != "unchanged" && n.outcome != "absent")
        {
            lines.push(format!("    {:<9} {}", n.outcome, n.node));
            for c in &n.changes {
                lines.push(format!(
                    "              {}: {} -> {}",
                    c.field, c.had, c.want
                ));
            }
        }
    }
    s.reporter.result(
        json!({
            "event": "history",
            "environment": s.env.full_name(),
            "bucket": bucket,
            "runs": runs,
        }),
        &lines,
    );
    Ok(exit::OK)
}
