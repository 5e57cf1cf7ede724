//! `repair`: drift, put back exactly what drifted (as last applied, never a pending config
//! edit), then drift again to confirm. Never prompts. Exit 0 nothing drifted or all put back,
//! 3 drift remained, 1 error.

use super::drift::tally;
use super::{EnvArgs, LockArgs, Settings};
use crate::error::exit;
use crate::model::{Events, RunFlags};

pub async fn run(
    args: &EnvArgs,
    parallelism: usize,
    lock: LockArgs,
    settings: &Settings,
) -> anyhow::Result<i32> {
    let s = super::open(
        "repair",
        args,
        settings,
        RunFlags::default(),
        parallelism,
        |_, _| Ok(()),
    )
    .await?;
    let (mut observations, mut loaded) = s.observe().await;
    let mut findings = s.compare(&observations, loaded.record.as_ref());
    // Drift to put back: one run at a time. One that waited for another looks again, so two
    // repairs started together put back each thing once.
    let mut held = None;
    if tally(&findings).drifted > 0 {
        let h = s.lock("repair", lock.timeout(), false).await?;
        if h.waited {
            (observations, loaded) = s.observe_again().await;
            findings = s.compare(&observations, loaded.record.as_ref());
        }
        held = Some(h);
    }
    let before = tally(&findings);
    for d in &findings {
        s.reporter.drift_node(d);
    }
    if before.errors > 0 {
        s.reporter.warn(&format!(
            "{}: {} resource(s) could not be read or looked up (see above); nothing was changed",
            s.env.full_name(),
            before.errors
        ));
        let unreadable: Vec<String> = findings
            .iter()
            .filter(|d| d.error.is_some())
            .map(|d| d.node.clone())
            .collect();
        let nothing = crate::model::RunReport::default();
        if let Some(h) = held {
            s.finish(h, &nothing).await;
        }
        s.reporter.repair_finished(
            &s.env.full_name(),
            &nothing,
            before.drifted,
            &unreadable,
            &s.cx.aws.calls.summary(),
            exit::ERROR,
        );
        return Ok(exit::ERROR);
    }
    if let Some(note) = &loaded.note {
        s.reporter.note(&format!(
            "{note}: every difference counts as drift and is put back as configured"
        ));
    }
    if before.pending > 0 {
        s.reporter.note(&format!(
            "{} pending config change(s) left as they are: `tap-provision up --env {}` applies them",
            before.pending, s.env.env
        ));
    }
    let act: Vec<bool> = findings.iter().map(|d| d.has_drift()).collect();
    let report = match &held {
        Some(h) if before.drifted > 0 => {
            let graph = s.repair_graph(loaded.record.as_ref());
            s.apply(graph, observations, act, h.cancel.clone()).await
        }
        _ => crate::model::RunReport::default(),
    };
    if loaded.record.is_none() && before.drifted > 0 {
        s.store_record(&report, &loaded).await;
    }
    // Confirm with a fresh look.
    let remaining: Vec<String> = if before.drifted == 0 {
        Vec::new()
    } else {
        let (again, loaded_again) = s.observe_again().await;
        s.compare(
            &again,
            loaded_again.record.as_ref().or(loaded.record.as_ref()),
        )
        .into_iter()
        .filter(|d| d.has_drift() || d.error.is_some())
        .map(|d| d.node)
        .collect()
    };
    if let Some(h) = held {
        s.finish(h, &report).await;
    }
    let code = if report.failed() > 0 {
        exit::ERROR
    } else if report.interrupted {
        exit::INTERRUPTED
    } else if !remaining.is_empty() {
        exit::DRIFT_REMAINS
    } else {
        exit::OK
    };
    s.reporter.repair_finished(
        &s.env.full_name(),
        &report,
        before.drifted,
        &remaining,
        &s.cx.aws.calls.summary(),
        code,
    );
    Ok(code)
}
