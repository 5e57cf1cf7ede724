//! `down`: through the session's one sequence: stop on a resource it cannot read or on
//! deletion protection, remove in reverse order keeping data unless told, record what is
//! left, report.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::error::Step;
use crate::executor::{node_error, protected, Live};
use crate::model::{Events, Outcome, RunFlags, RunReport};
use crate::session::{Acted, Pass, Recording, Session, Verb};
use crate::stack::{StepGraph, STATE_BUCKET};

/// Runs `down` on an open session, reports, and returns the exit code.
pub async fn run(s: &Session, flags: RunFlags, lock_timeout: Duration) -> anyhow::Result<i32> {
    let down = Down {
        lock_timeout,
        flags,
        last: Mutex::new(None),
    };
    let mut report = match s.run(&down).await? {
        Acted::Ran { report, .. } => report,
        Acted::Nothing(_) => RunReport::default(),
    };
    // The state bucket holds the lock and the history: with --destroy-data it goes last,
    // after the run's report is stored and the lock let go, not among the first.
    let last = down.last.lock().unwrap_or_else(|e| e.into_inner()).take();
    // Only when the run finished (else `act` kept it, with the record).
    if let Some((ix, live)) = last {
        let node = s.graph.node(ix);
        s.reporter.node_started(&node.id, node.kind);
        let began = std::time::Instant::now();
        let outcome = match node.payload.delete(&s.cx, &live).await {
            Ok(()) => Outcome::Deleted,
            Err(f) => Outcome::Failed(node_error(
                &s.env.full_name(),
                &node.id,
                node.kind,
                Step::Delete,
                f,
            )),
        };
        s.reporter
            .node_finished(&node.id, node.kind, &outcome, began.elapsed());
        if let Some(n) = report.nodes.iter_mut().find(|n| n.node == STATE_BUCKET) {
            n.outcome = outcome;
        }
    }
    s.reporter.run_finished(
        "down",
        &s.env.full_name(),
        &report,
        &s.cx.aws.calls.summary(),
        &Default::default(),
    );
    Ok(report.exit_code())
}

struct Down {
    lock_timeout: Duration,
    flags: RunFlags,
    /// The state bucket, kept out of the run to be deleted after it (--destroy-data).
    last: Mutex<Option<(usize, Live)>>,
}

impl Verb for Down {
    type Plan = ();
    const NAME: &'static str = "down";
    const RECORDING: Recording = Recording::Removed;

    fn lock_timeout(&self) -> Duration {
        self.lock_timeout
    }

    fn decide(&self, s: &Session, pass: &Pass) -> anyhow::Result<Option<()>> {
        s.require_readable(pass, "down")?;
        // Deletion protection stops `down` before it deletes anything.
        if !self.flags.disable_protection {
            let protected = protected(&s.graph, &pass.cx, &pass.observations);
            if !protected.is_empty() {
                anyhow::bail!(
                    "{} has deletion protection, so nothing was deleted:\n  - {}\nrerun `down` with --disable-protection to turn it off and remove them",
                    s.env.full_name(),
                    protected.join("\n  - ")
                );
            }
        }
        Ok(Some(()))
    }

    async fn act(
        &self,
        s: &Session,
        pass: &mut Pass,
        _plan: (),
        cancel: watch::Receiver<bool>,
    ) -> (Arc<StepGraph>, RunReport) {
        let mut observations = std::mem::take(&mut pass.observations);
        let bucket = s.graph.index_of(STATE_BUCKET);
        let mut executor = s.executor_on(pass);
        // `--only` without `state`: the bucket is there for the lock, not to be removed.
        let state_kept = s.only.as_ref().is_some_and(|o| !o.contains(STATE_BUCKET));
        if let (true, Some(ix)) = (state_kept, bucket) {
            observations[ix] = Ok(None);
            executor.events = Arc::new(Without {
                inner: s.reporter.clone(),
                node: STATE_BUCKET,
            });
        }
        if let (true, false, Some(ix)) = (self.flags.destroy_data, state_kept, bucket) {
            if let Ok(Some(live)) = std::mem::replace(&mut observations[ix], Ok(None)) {
                *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some((ix, live));
                // Its one event comes when it is deleted, after the run.
                executor.events = Arc::new(Without {
                    inner: s.reporter.clone(),
                    node: STATE_BUCKET,
                });
            }
        }
        let mut report = executor.down(observations, cancel).await;
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some() {
            let unfinished = report.failed() > 0 || report.interrupted;
            let outcome = if unfinished {
                // It stays, and so does the record, which must say what is left.
                *last = None;
                Outcome::Kept(
                    "kept: the run did not finish, and the bucket holds its record".into(),
                )
            } else {
                // Counted as going: the record (deleted with it) is not written, and the
                // history says so.
                Outcome::Deleted
            };
            if let Some(n) = report.nodes.iter_mut().find(|n| n.node == STATE_BUCKET) {
                n.outcome = outcome;
            }
        }
        drop(last);
        if state_kept {
            if let Some(n) = report.nodes.iter_mut().find(|n| n.node == STATE_BUCKET) {
                n.outcome = Outcome::Kept("not selected by --only".into());
            }
        }
        (s.graph.clone(), report)
    }
}

/// The run's events, but for one node's, which the caller reports itself.
struct Without {
    inner: Arc<crate::output::Reporter>,
    node: &'static str,
}

impl Events for Without {
    fn node_started(&self, node: &str, kind: &str) {
        if node != self.node {
            self.inner.node_started(node, kind);
        }
    }
    fn node_progress(&self, node: &str, message: &str) {
        if node != self.node {
            self.inner.node_progress(node, message);
        }
    }
    fn node_finished(&self, node: &str, kind: &str, outcome: &Outcome, elapsed: Duration) {
        if node != self.node {
            self.inner.node_finished(node, kind, outcome, elapsed);
        }
    }
    fn warn(&self, message: &str) {
        self.inner.warn(message);
    }
    fn note(&self, message: &str) {
        self.inner.note(message);
    }
}
