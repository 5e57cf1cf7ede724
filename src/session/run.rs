//! The one sequence of every verb that acts (`up`, `repair`, `down`): look, decide, take the
//! lock, look again when another run may have acted meanwhile (and decide again on that
//! look), act on the last look with its own context, record, store the run's report, let go
//! of the lock. A verb says only what it decides and how it acts ([`Verb`]).
//!
//! Nothing is written before the decision: a verb that finds something it cannot read or
//! explain returns an error from [`Verb::decide`], and the run ends with no lock taken, no
//! record written, no resource touched. The lock step on a new environment makes only the
//! state bucket and its tags; its node is looked at again when `act` starts it (nothing
//! waits on it) and puts the bucket's settings. Should that read or those writes fail, the
//! node fails and the run with it, as a create that fails would; the record is still
//! stored (the bucket is there), and the next `up` or `repair` puts the settings.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{Held, NoBucket, Pass, Recording, Session};
use crate::model::RunReport;
use crate::stack::{StepGraph, STATE_BUCKET};

/// One verb that acts, as the sequence sees it.
pub trait Verb: Sync {
    /// What [`Verb::decide`] found to do, handed to [`Verb::act`].
    type Plan: Send;
    /// Its name in the lock, the history and messages (`up`).
    const NAME: &'static str;
    /// How its outcomes enter the applied record.
    const RECORDING: Recording;

    /// How long to wait for another run's lock.
    fn lock_timeout(&self) -> Duration;

    /// True when the lock step may create the state bucket (a new environment's `up`).
    fn makes_state_bucket(&self) -> bool {
        false
    }

    /// What to do, from one look (pure but for prompts): `Ok(None)` when there is nothing
    /// to do (no lock is taken); an error stops the run with nothing written. Called again
    /// on the new look when the run waited for another.
    fn decide(&self, s: &Session, pass: &Pass) -> anyhow::Result<Option<Self::Plan>>;

    /// True when acting on `plan` needs the lock (it writes); a plan that only waits for
    /// readiness does not.
    fn needs_lock(&self, _plan: &Self::Plan) -> bool {
        true
    }

    /// Acts on `plan` from `pass` (the last look), returning the graph it ran (whose specs
    /// enter the record) and the report.
    fn act(
        &self,
        s: &Session,
        pass: &mut Pass,
        plan: Self::Plan,
        cancel: watch::Receiver<bool>,
    ) -> impl std::future::Future<Output = (Arc<StepGraph>, RunReport)> + Send;

    /// After the record is stored, still holding the lock (`repair`'s confirming look).
    fn before_release(
        &self,
        _s: &Session,
        _pass: &Pass,
        _report: &mut RunReport,
    ) -> impl std::future::Future<Output = ()> + Send {
        async {}
    }
}

/// What a run of a verb did.
pub enum Acted {
    /// `decide` found nothing to do: no lock, no write.
    Nothing(Pass),
    /// It acted (or only waited, when the plan needed no lock).
    Ran {
        pass: Pass,
        report: RunReport,
        /// True when it held the lock (released by now).
        locked: bool,
    },
}

impl Session {
    /// Runs `verb` through the sequence (see the module's doc).
    pub async fn run<V: Verb>(&self, verb: &V) -> anyhow::Result<Acted> {
        let mut pass = self.look().await?;
        let Some(mut plan) = verb.decide(self, &pass)? else {
            return Ok(Acted::Nothing(pass));
        };
        let held = if verb.needs_lock(&plan) {
            let bucket_was_absent = self
                .graph
                .index_of(STATE_BUCKET)
                .is_some_and(|ix| matches!(pass.observations[ix], Ok(None)));
            let no_bucket = match (verb.makes_state_bucket(), bucket_was_absent) {
                (false, _) => NoBucket::RunUnlocked,
                (true, false) => NoBucket::Make,
                (true, true) => NoBucket::MakeFirst,
            };
            let held = self.lock(V::NAME, verb.lock_timeout(), no_bucket).await?;
            // Made only the state bucket, on a new environment nobody else touched: its own
            // node is all there is to look at again, which it does when `act` starts it
            // (nothing waits on it; its reads run beside the other nodes' work).
            let made_only_the_bucket = held.created_bucket && bucket_was_absent && !held.waited;
            let again = if made_only_the_bucket {
                pass.look_at_start.push(STATE_BUCKET.to_string());
                Ok(None)
            } else if held.waited || held.created_bucket {
                self.look().await.map(Some)
            } else {
                Ok(None)
            };
            let decided = match again {
                Ok(Some(new)) => {
                    pass = new;
                    verb.decide(self, &pass)
                }
                Ok(None) => Ok(Some(plan)),
                Err(e) => Err(e),
            };
            plan = match decided {
                Ok(Some(p)) => p,
                other => {
                    self.finish(held, &RunReport::default()).await;
                    return other.map(|_| Acted::Nothing(pass));
                }
            };
            Some(held)
        } else {
            None
        };
        let cancel = match &held {
            Some(h) => h.cancel.clone(),
            None => {
                let (tx, rx) = watch::channel(false);
                super::cancel_on_ctrl_c(Arc::new(tx));
                rx
            }
        };
        stop_waits_on(cancel.clone(), self.cx.stop.clone());
        let (graph, mut report) = verb.act(self, &mut pass, plan, cancel).await;
        if let Some(held) = &held {
            held.finishing();
        }
        if held.as_ref().is_some_and(|h| h.created_bucket) {
            self.made_state_bucket(&mut report);
        }
        // Only under the lock: a run that only waited writes nothing.
        if held.is_some() {
            self.store_record(&graph, &report, pass.record.as_ref(), V::RECORDING)
                .await;
        }
        verb.before_release(self, &pass, &mut report).await;
        let locked = held.is_some();
        if let Some(held) = held {
            self.finish(held, &report).await;
        }
        Ok(Acted::Ran {
            pass,
            report,
            locked,
        })
    }

    /// Releases `held` with an empty report (a run that decided not to act after all).
    pub async fn release(&self, held: Held) {
        self.finish(held, &RunReport::default()).await;
    }
}

/// Sets `stop` once `cancel` says the run is interrupted: the executor starts no new step,
/// and the waits already running end at their next poll instead of waiting for a step that
/// will not come.
fn stop_waits_on(mut cancel: watch::Receiver<bool>, stop: Arc<AtomicBool>) {
    tokio::spawn(async move {
        loop {
            if *cancel.borrow_and_update() {
                stop.store(true, Ordering::Relaxed);
                return;
            }
            if cancel.changed().await.is_err() {
                return;
            }
        }
    });
}
