//! An acting run's hold on its environment: the lock (creating the state bucket first on a
//! new environment), the run's report in the history, and the release.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;

use super::Session;
use crate::history::{self, RunEntry};
use crate::lock::{self, Holder, Lock, LockError};
use crate::model::{Action, Events, Inputs, NodePlan, Outcome, RunReport};
use crate::record;
use crate::resources::s3_bucket::found_made;
use crate::stack::STATE_BUCKET;

/// What the lock step does when the environment has no state bucket ([`Session::lock`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoBucket {
    /// The run goes on unlocked, as nothing else can be recording it.
    RunUnlocked,
    /// Makes it when the lock's attempt answers NoSuchBucket.
    Make,
    /// Makes it before the first attempt: the run's look found none, so that attempt could
    /// only answer NoSuchBucket.
    MakeFirst,
}

/// An acting run's hold on its environment ([`Session::lock`]).
pub struct Held {
    lock: Option<Lock>,
    pub holder: Holder,
    /// Set by Ctrl-C, or when the lock is taken over: start no new step.
    pub cancel: watch::Receiver<bool>,
    /// Another run held the lock first, or finished since this one looked: observe again
    /// before acting.
    pub waited: bool,
    /// This run made the state bucket to hold the lock (a new environment).
    pub created_bucket: bool,
}

impl Held {
    /// The run's steps are done: its lock is renewed from now on only from half its lease on
    /// ([`Lock::finishing`]).
    pub fn finishing(&self) {
        if let Some(lock) = &self.lock {
            lock.finishing();
        }
    }
}

impl Session {
    /// The state bucket: the applied record, the lock and the run history.
    pub fn state_bucket(&self) -> String {
        record::location(&self.cx.scope).0
    }

    /// Takes the environment's lock for `command` (see [`crate::lock`]), waiting up to
    /// `timeout`. Without a state bucket, `no_bucket` says what to do: make it (through its
    /// node: the bucket and its tags, its settings left to the run), or go on unlocked.
    pub async fn lock(
        &self,
        command: &str,
        timeout: Duration,
        no_bucket: NoBucket,
    ) -> anyhow::Result<Held> {
        let (tx, cancel) = watch::channel(false);
        let tx = Arc::new(tx);
        cancel_on_ctrl_c(tx.clone());
        let holder = Holder::me(command, &self.identity, &self.cx.run_id);
        let bucket = self.state_bucket();
        let events = self.reporter.clone() as Arc<dyn Events>;
        // Whether this run made the bucket (not found made by another run since it looked),
        // and whether it tried: once.
        let (mut created_bucket, mut tried) = (false, false);
        if no_bucket == NoBucket::MakeFirst {
            created_bucket = self.make_state_bucket().await?;
            tried = true;
        }
        loop {
            let taken = lock::acquire(
                &self.cx.aws.s3,
                &bucket,
                holder.clone(),
                timeout,
                events.clone(),
                tx.clone(),
            )
            .await;
            return match taken {
                Ok(lock) => Ok(Held {
                    // Another run may have acted since this one looked: it held the lock
                    // first, or it finished (its report is stored before it lets go).
                    waited: lock.waited
                        || history::finished_since(&self.cx.aws.s3, &bucket, self.started)
                            .await
                            .unwrap_or(true),
                    lock: Some(lock),
                    holder,
                    cancel,
                    created_bucket,
                }),
                Err(LockError::Held(other)) => Err(crate::error::Locked(format!(
                    "{} is locked by {} (lease until {}); nothing was changed. Wait for it, \
                     raise --lock-timeout, or, if that run is gone, `tap-provision unlock --env {} --force`",
                    self.env.full_name(),
                    other.describe(),
                    lock::timestamp(other.expires),
                    self.env.env
                ))
                .into()),
                Err(LockError::Aws(f)) if f.code.as_str() == "NoSuchBucket" && no_bucket != NoBucket::RunUnlocked && !tried => {
                    created_bucket = self.make_state_bucket().await?;
                    tried = true;
                    continue;
                }
                Err(LockError::Interrupted) => {
                    anyhow::bail!("interrupted while waiting for the lock: nothing was changed")
                }
                Err(LockError::Aws(f)) if f.code.as_str() == "NoSuchBucket" => {
                    self.reporter.warn(&format!(
                        "no state bucket s3://{bucket}: running without the environment's lock"
                    ));
                    Ok(Held {
                        lock: None,
                        holder,
                        cancel,
                        // Gone since this run looked, perhaps: look again.
                        waited: true,
                        created_bucket,
                    })
                }
                Err(LockError::Aws(f)) => Err(anyhow::Error::new(f)
                    .context(format!("taking the lock of {}", self.env.full_name()))),
            };
        }
    }

    /// Creates the state bucket through its own node (same spec and tags), as far as the
    /// lock needs it: the bucket, named and tagged. Its settings are the node's to put when
    /// the run starts it (it looks at the bucket again then), beside the other nodes' work.
    /// False when CreateBucket found it made already (by another run since this one
    /// looked): then it writes nothing to it.
    async fn make_state_bucket(&self) -> anyhow::Result<bool> {
        let ix = self
            .graph
            .index_of(STATE_BUCKET)
            .context("the graph has no state bucket (a bug in tap-provision)")?;
        let node = self.graph.node(ix);
        self.reporter.note(&format!(
            "creating the state bucket s3://{} to hold the lock (its settings follow as the run starts)",
            self.state_bucket()
        ));
        let plan = NodePlan {
            action: Action::Create,
            ignored: Vec::new(),
            new_attrs: true,
        };
        // Only the bucket and its tags: its settings are written as the run starts it.
        let inputs = Inputs::new(STATE_BUCKET, &[], true).to_exist_only();
        let attrs = node
            .payload
            .apply(&self.cx, &inputs, &None, &plan)
            .await
            .map_err(|(_, f)| anyhow::Error::new(f).context("creating the state bucket"))?;
        node.payload
            .wait_ready(&self.cx, attrs)
            .await
            .map_err(|f| anyhow::Error::new(f).context("waiting for the state bucket"))?;
        Ok(!found_made(&self.cx, &self.state_bucket()))
    }

    /// The state bucket the lock step made counts as created by this run (its settings put
    /// since, or already there).
    pub fn made_state_bucket(&self, report: &mut RunReport) {
        if let Some(n) = report.nodes.iter_mut().find(|n| n.node == STATE_BUCKET) {
            if let Outcome::Unchanged(attrs) | Outcome::Updated(attrs, _) = &n.outcome {
                n.outcome = Outcome::Created(attrs.clone());
            }
        }
    }

    /// After an acting run: stores its report in the history, releases the lock.
    pub async fn finish(&self, held: Held, report: &RunReport) {
        // Only a run that changed something (or failed trying, or was interrupted, maybe
        // inside a create it did not see ready) is history.
        let acted = report.interrupted
            || report
                .nodes
                .iter()
                .any(|n| n.outcome.is_change() || matches!(n.outcome, Outcome::Failed(_)));
        if (held.lock.is_some() || held.created_bucket) && acted && !self.unattended {
            let entry = RunEntry::new(
                &self.env.full_name(),
                &held.holder,
                report,
                &self.cx.aws.calls.summary(),
                (self.started, lock::unix_now()),
            );
            let bucket = self.state_bucket();
            match history::store(&self.cx.aws.s3, &bucket, &entry).await {
                Ok(()) => {}
                // `down --destroy-data` deleted the bucket with its history.
                Err(f) if f.code.as_str() == "NoSuchBucket" => {}
                Err(f) => self
                    .reporter
                    .warn(&format!("{f}; the run is not in `history`")),
            }
        }
        if let Some(lock) = held.lock {
            lock.release(self.reporter.as_ref()).await;
        }
    }
}

/// The first Ctrl-C stops new starts (in-flight calls finish); the second exits at once.
pub fn cancel_on_ctrl_c(tx: Arc<watch::Sender<bool>>) {
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = tx.send(true);
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(crate::error::exit::INTERRUPTED);
            }
        }
    });
}
