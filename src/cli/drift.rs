//! `drift`: what changed in AWS outside tap-provision since it last applied. Reads only;
//! config edits not applied yet are listed apart (pending) and do not count. Exit 0 no
//! drift, 2 drift, 1 error.

use super::{EnvArgs, Settings};
use crate::drift::tally;
use crate::error::exit;
use crate::model::RunFlags;

pub async fn run(args: &EnvArgs, settings: &Settings) -> anyhow::Result<i32> {
    let s = super::open("drift", args, settings, RunFlags::default(), 1, |_, _| {
        Ok(())
    })
    .await?;
    let pass = s.look().await?;
    let findings = s.compare(&pass);
    for d in &findings {
        s.reporter.drift_node(d);
    }
    s.reporter.orphans(&s.orphans(pass.record.as_ref()));
    let t = tally(&findings);
    let code = if t.errors > 0 {
        exit::ERROR
    } else if t.drifted > 0 {
        exit::CHANGES
    } else {
        exit::OK
    };
    s.reporter.drift_finished(
        &s.env.full_name(),
        &s.env.env,
        findings.len(),
        t.drifted,
        t.pending,
        t.errors,
        pass.record_note(&s.cx.scope).as_deref(),
        &s.cx.aws.calls.summary(),
        code,
    );
    Ok(code)
}
