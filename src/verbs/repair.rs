//! `repair`: drift, put back exactly what drifted (as last applied, never a pending config
//! edit), then drift again to confirm; through the session's one sequence. Never prompts and
//! never replaces a resource others stand on: that is left to `up`, which shows it first.
//! Exit 0 nothing drifted or all put back, 3 drift remained, 1 error (nothing written).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::drift::{tally, Drifted, NodeDrift};
use crate::error::exit;
use crate::model::{Events, RunReport};
use crate::session::{Acted, Pass, Recording, Session, Verb};
use crate::stack::StepGraph;

/// What a `repair` found and did.
pub struct Repaired {
    /// 0, 3 drift remains, 1 error (nothing written when unreadable), 130 interrupted.
    pub code: i32,
    /// The last look's findings.
    pub findings: Vec<NodeDrift>,
    pub report: RunReport,
    /// Nodes still drifted, unreadable, or left to `up`.
    pub remaining: Vec<String>,
}

/// Runs `repair` on an open session, reports, and says what it found and did. Another run
/// holding the lock past `lock_timeout` is an error ([`crate::error::Locked`]).
pub async fn run(s: &Session, lock_timeout: Duration) -> anyhow::Result<Repaired> {
    let repair = Repair {
        lock_timeout,
        seen: Mutex::new(Seen::default()),
    };
    let ran = s.run(&repair).await;
    let seen = std::mem::take(&mut *repair.seen.lock().unwrap_or_else(|e| e.into_inner()));
    for d in seen.findings.iter().filter(|d| s.shows(d)) {
        s.reporter.drift_node(d);
    }
    let env = s.env.full_name();
    let drifted = tally(&seen.findings).drifted;
    let calls = || s.cx.aws.calls.summary();
    let (pass, report) = match ran {
        Ok(Acted::Ran { pass, report, .. }) => (pass, report),
        Ok(Acted::Nothing(pass)) => (pass, RunReport::default()),
        // Something could not be read: nothing was written; say which.
        Err(e) if !seen.unreadable.is_empty() => {
            s.reporter.warn(&format!("{e:#}"));
            let nothing = RunReport::default();
            s.reporter.repair_finished(
                &env,
                &nothing,
                drifted,
                &seen.unreadable,
                &calls(),
                exit::ERROR,
            );
            return Ok(Repaired {
                code: exit::ERROR,
                findings: seen.findings,
                report: nothing,
                remaining: seen.unreadable,
            });
        }
        Err(e) => return Err(e),
    };
    if let Some(note) = pass.record_note(&s.cx.scope) {
        if drifted > 0 {
            s.reporter.note(&format!(
                "{note}: every difference counts as drift and is put back as configured"
            ));
        }
    }
    let pending = tally(&seen.findings).pending;
    if pending > 0 {
        s.reporter.note(&format!(
            "{pending} pending config change(s) left as they are: `tap-provision up --env {}` applies them",
            s.env.env
        ));
    }
    for (node, why) in &seen.needs_up {
        s.reporter.warn(&format!("{node}: {why}"));
    }
    for (node, on) in &seen.held_back {
        s.reporter.warn(&format!(
            "{node}: drifted, left until `up` replaces {on}, which it stands on"
        ));
    }
    let mut remaining = seen.remaining;
    remaining.extend(seen.needs_up.iter().map(|(n, _)| n.clone()));
    remaining.extend(seen.held_back.iter().map(|(n, _)| n.clone()));
    remaining.sort();
    remaining.dedup();
    let code = match report.exit_code() {
        exit::OK if !remaining.is_empty() => exit::DRIFT_REMAINS,
        other => other,
    };
    s.reporter
        .repair_finished(&env, &report, drifted, &remaining, &calls(), code);
    Ok(Repaired {
        code,
        findings: seen.findings,
        report,
        remaining,
    })
}

/// What the last look found, for the report after the run.
#[derive(Default)]
struct Seen {
    findings: Vec<NodeDrift>,
    /// Nodes that could not be read or compared.
    unreadable: Vec<String>,
    /// Drifted nodes left alone because putting them back means replacing a resource others
    /// stand on (or that `up` does not replace): node, and what to do.
    needs_up: Vec<(String, String)>,
    /// Drifted nodes left alone because they stand on one of `needs_up`: node, and that one.
    held_back: Vec<(String, String)>,
    /// Nodes still drifted (or unreadable) in the confirming look.
    remaining: Vec<String>,
}

struct Repair {
    lock_timeout: Duration,
    seen: Mutex<Seen>,
}

impl Repair {
    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Verb for Repair {
    /// Which nodes it puts back.
    type Plan = Vec<bool>;
    const NAME: &'static str = "repair";
    const RECORDING: Recording = Recording::Repaired;

    fn lock_timeout(&self) -> Duration {
        self.lock_timeout
    }

    fn decide(&self, s: &Session, pass: &Pass) -> anyhow::Result<Option<Vec<bool>>> {
        let findings = s.compare(pass);
        let t = tally(&findings);
        let unreadable: Vec<String> = findings
            .iter()
            .filter(|d| d.error.is_some())
            .map(|d| d.node.clone())
            .collect();
        // Putting back a change AWS makes only by replacement is `up`'s, unless the kind may
        // be replaced and nothing stands on it.
        let mut needs_up = Vec::new();
        let act: Vec<bool> = findings
            .iter()
            .enumerate()
            .map(|(ix, d)| {
                let Some(Drifted::Changed { changes }) = &d.drift else {
                    return d.has_drift();
                };
                let replace: Vec<String> = changes
                    .iter()
                    .filter(|c| c.replace)
                    .map(ToString::to_string)
                    .collect();
                let node = s.graph.node(ix);
                if replace.is_empty()
                    || (node.payload.replaceable() && s.dependents(ix).is_empty())
                {
                    return true;
                }
                let why = if node.payload.replaceable() {
                    format!(
                        "needs replacement ({}): run `tap-provision up --env {}`, which shows what depends on it and asks first",
                        replace.join("; "),
                        s.env.env
                    )
                } else {
                    format!(
                        "needs replacement ({}), and tap-provision does not replace a {} (it holds data or others stand on it): \
                         put it back by hand, or remove it yourself and run `tap-provision up --env {}`",
                        replace.join("; "),
                        node.kind,
                        s.env.env
                    )
                };
                needs_up.push((d.node.clone(), why));
                false
            })
            .collect();
        // What stands on a resource left to `up` waits for it too: put back now, it would
        // be pointed at the resource about to be replaced.
        let mut act = act;
        let mut held_back = Vec::new();
        for (node, _) in &needs_up {
            let Some(ix) = s.graph.index_of(node) else {
                continue;
            };
            for dep in s.graph.dependents(ix) {
                if std::mem::take(&mut act[dep]) {
                    held_back.push((findings[dep].node.clone(), node.clone()));
                }
            }
        }
        let drifted = t.drifted;
        *self.seen() = Seen {
            findings,
            unreadable,
            needs_up,
            held_back,
            remaining: Vec::new(),
        };
        if t.errors > 0 {
            anyhow::bail!(
                "{}: {} resource(s) could not be read or looked up (see above); nothing was changed",
                s.env.full_name(),
                t.errors
            );
        }
        Ok((drifted > 0 && act.iter().any(|a| *a)).then_some(act))
    }

    async fn act(
        &self,
        s: &Session,
        pass: &mut Pass,
        act: Vec<bool>,
        cancel: watch::Receiver<bool>,
    ) -> (Arc<StepGraph>, RunReport) {
        let graph = s.repair_graph(pass.record.as_ref());
        let report = s.apply(graph.clone(), pass, act, cancel).await;
        (graph, report)
    }

    /// Confirms with a fresh look, still holding the lock.
    async fn before_release(&self, s: &Session, _pass: &Pass, _report: &mut RunReport) {
        let remaining = match s.look().await {
            Ok(again) => s
                .compare(&again)
                .into_iter()
                .filter(|d| d.has_drift() || d.error.is_some())
                .map(|d| d.node)
                .collect(),
            Err(e) => {
                s.reporter
                    .warn(&format!("the confirming look failed: {e:#}"));
                self.seen()
                    .findings
                    .iter()
                    .filter(|d| d.has_drift())
                    .map(|d| d.node.clone())
                    .collect()
            }
        };
        self.seen().remaining = remaining;
    }
}
