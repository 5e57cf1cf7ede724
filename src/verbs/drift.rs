//! `drift`: what changed in AWS outside tap-provision since it last applied. Reads only;
//! config edits not applied yet are listed apart (pending) and do not count. Exit 0 no
//! drift, 2 drift, 1 error.

use crate::drift::{tally, NodeDrift};
use crate::error::exit;
use crate::session::Session;

/// What a `drift` found.
pub struct Found {
    /// 0 no drift, 2 drift, 1 a resource could not be read.
    pub code: i32,
    pub findings: Vec<NodeDrift>,
}

/// Runs `drift` on an open session and reports.
pub async fn run(s: &Session) -> anyhow::Result<Found> {
    let pass = s.look().await?;
    let findings = s.compare(&pass);
    let reported = findings.iter().filter(|d| s.shows(d));
    for d in reported.clone() {
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
        reported.count(),
        t.drifted,
        t.pending,
        t.errors,
        pass.record_note(&s.cx.scope).as_deref(),
        &s.cx.aws.calls.summary(),
        code,
    );
    Ok(Found { code, findings })
}
