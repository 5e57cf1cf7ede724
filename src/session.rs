//! One command against one environment: the config, its graph, the connection, the run
//! context, and the passes the commands are made of (observe, compare, apply, record).

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;
use serde_json::Value;

use std::time::Duration;

use tokio::sync::watch;

use crate::aws::{Clients, Shared, Target};
use crate::config::EnvConfig;
use crate::drift::{classify, Compared, NodeDrift};
use crate::error::NodeError;
use crate::executor::{preview, Executor, Observation, Preview, Task};
use crate::history::{self, RunEntry};
use crate::lock::{self, Holder, Lock, LockError};
use crate::model::{
    collect_outputs, Action, Events, Inputs, NodePlan, Outcome, RunFlags, RunReport,
};
use crate::output::Reporter;
use crate::record::{self, Record};
use crate::repair::RepairTask;
use crate::resources::{Cx, Scope};
use crate::stack::{StepGraph, STATE_BUCKET};

pub type Observations = Vec<Result<Observation, NodeError>>;

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

pub struct Session {
    /// The AWS identity (ARN) the run acts as.
    pub identity: String,
    /// When the command started (Unix seconds), before it observed anything.
    pub started: u64,
    pub env: Arc<EnvConfig>,
    pub graph: Arc<StepGraph>,
    pub cx: Arc<Cx>,
    pub reporter: Arc<Reporter>,
    pub parallelism: usize,
}

/// The applied record as read at the start of a command, with why it is missing.
pub struct Loaded {
    pub record: Option<Record>,
    pub note: Option<String>,
}

impl Session {
    /// Builds the clients and checks the identity once (STS GetCallerIdentity), so a
    /// missing credential or an unreachable endpoint is one clear error before any other call.
    pub async fn open(
        env: EnvConfig,
        graph: StepGraph,
        target: &Target,
        flags: RunFlags,
        parallelism: usize,
        reporter: Arc<Reporter>,
    ) -> anyhow::Result<Session> {
        let aws = Clients::load(target).await;
        let who = aws
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(crate::error::Failure::from)
            .with_context(|| {
                format!(
                    "checking the AWS identity for {} in {}{}",
                    env.full_name(),
                    env.region,
                    target
                        .effective_endpoint
                        .as_deref()
                        .map(|e| format!(" at {e}"))
                        .unwrap_or_default()
                )
            })?;
        let account = who
            .account()
            .context("STS returned no account id")?
            .to_string();
        let identity = who.arn().unwrap_or("unknown").to_string();
        let partition = who
            .arn()
            .and_then(|a| a.split(':').nth(1))
            .unwrap_or("aws")
            .to_string();
        let scope = Scope {
            project: env.project.clone(),
            env: env.env.clone(),
            env_full: env.full_name(),
            region: env.region.clone(),
            account,
            partition,
        };
        let cx = Cx {
            aws,
            scope,
            wait_timeout: env.wait_timeout,
            flags,
            run_id: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos().to_string())
                .unwrap_or_default(),
            shared: Shared::default(),
            events: reporter.clone() as Arc<dyn Events>,
        };
        Ok(Session {
            identity,
            started: lock::unix_now(),
            env: Arc::new(env),
            graph: Arc::new(graph),
            cx: Arc::new(cx),
            reporter,
            parallelism,
        })
    }

    pub fn executor(&self) -> Executor<Cx> {
        self.executor_with(self.graph.clone(), self.cx.clone())
    }

    fn executor_with(&self, graph: Arc<StepGraph>, cx: Arc<Cx>) -> Executor<Cx> {
        Executor {
            graph,
            cx,
            events: self.reporter.clone() as Arc<dyn Events>,
            env: self.env.full_name(),
            parallelism: self.parallelism,
        }
    }

    /// Observes every node and reads the applied record, all at once.
    pub async fn observe(&self) -> (Observations, Loaded) {
        Self::observe_with(&self.executor(), &self.cx).await
    }

    async fn observe_with(executor: &Executor<Cx>, cx: &Cx) -> (Observations, Loaded) {
        let (observations, loaded) =
            tokio::join!(executor.observe(), record::load(&cx.aws.s3, &cx.scope));
        let loaded = match loaded {
            Ok((record, note)) => Loaded { record, note },
            Err(e) => Loaded {
                record: None,
                note: Some(format!("the applied record could not be read: {e}")),
            },
        };
        (observations, loaded)
    }

    /// What `up` would do to every node (the config against live AWS).
    pub fn preview(&self, observations: &Observations) -> Preview {
        preview(
            &self.graph,
            &self.cx,
            &self.env.full_name(),
            observations,
            |ix| Some(self.graph.node(ix).payload.clone()),
        )
    }

    /// The applied version of every recorded node.
    fn applied_task(&self, record: &Record, ix: usize) -> Option<Arc<dyn Task<Cx>>> {
        let node = self.graph.node(ix);
        let entry = record.nodes.get(&node.id)?;
        match node.payload.with_record(entry) {
            Ok(task) => Some(task),
            Err(e) => {
                self.reporter.warn(&format!(
                    "{}: the applied record's spec is not readable ({e}); compared with the config",
                    node.id
                ));
                None
            }
        }
    }

    /// Drift and pending edits of every node (pure once observed).
    pub fn compare(&self, observations: &Observations, record: Option<&Record>) -> Vec<NodeDrift> {
        let env = self.env.full_name();
        let current = self.preview(observations);
        let applied: Preview = match record {
            Some(r) => preview(&self.graph, &self.cx, &env, observations, |ix| {
                self.applied_task(r, ix)
            }),
            None => (0..self.graph.len()).map(|_| None).collect(),
        };
        self.graph
            .nodes()
            .iter()
            .enumerate()
            .map(|(ix, node)| {
                classify(Compared {
                    node: &node.id,
                    kind: node.kind,
                    present: matches!(&observations[ix], Ok(Some(_))),
                    current: current[ix].as_ref(),
                    applied: applied[ix].as_ref(),
                    have_record: record.is_some(),
                })
            })
            .collect()
    }

    /// Nodes the applied record has that the config no longer does (a reader or NAT gateway
    /// removed from the file): `up` does not remove them; `plan` and `drift` name them.
    pub fn orphans(&self, record: Option<&Record>) -> Vec<(String, String)> {
        record
            .map(|r| {
                r.nodes
                    .iter()
                    .filter(|(node, _)| self.graph.index_of(node).is_none())
                    .map(|(node, rec)| (node.clone(), rec.kind.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The graph `repair` runs: each recorded node as last applied, limited to the fields
    /// that differ from the config too; nodes the record lacks as configured.
    pub fn repair_graph(&self, record: Option<&Record>) -> Arc<StepGraph> {
        Arc::new(self.graph.map(|node| {
            let ix = self.graph.index_of(&node.id).unwrap_or_default();
            match record.and_then(|r| self.applied_task(r, ix)) {
                Some(applied) => Arc::new(RepairTask {
                    applied,
                    current: node.payload.clone(),
                }) as Arc<dyn Task<Cx>>,
                None => node.payload.clone(),
            }
        }))
    }

    /// Observes again from scratch (new caches): repair's confirming pass.
    pub async fn observe_again(&self) -> (Observations, Loaded) {
        let cx = Arc::new(self.cx.fresh());
        let executor = self.executor_with(self.graph.clone(), cx.clone());
        Self::observe_with(&executor, &cx).await
    }

    /// Observes node `id` again (fresh caches), in place; false when that read failed.
    pub async fn observe_node_again(&self, observations: &mut Observations, id: &str) -> bool {
        let Some(ix) = self.graph.index_of(id) else {
            return false;
        };
        match self.graph.node(ix).payload.observe(&self.cx.fresh()).await {
            Ok(o) => {
                observations[ix] = Ok(o);
                true
            }
            Err(_) => false,
        }
    }

    /// Runs `graph` (the config's, or repair's) with `act` saying which nodes may change.
    pub async fn apply(
        &self,
        graph: Arc<StepGraph>,
        observations: Observations,
        act: Vec<bool>,
        cancel: tokio::sync::watch::Receiver<bool>,
    ) -> RunReport {
        self.executor_with(graph, self.cx.clone())
            .apply(observations, act, cancel)
            .await
    }

    /// The outputs of the nodes a run left in place.
    pub fn outputs_of(&self, report: &RunReport) -> BTreeMap<String, Value> {
        collect_outputs(
            self.graph
                .nodes()
                .iter()
                .zip(&report.nodes)
                .flat_map(|(node, r)| {
                    r.outcome
                        .attrs()
                        .map(|a| node.payload.outputs(a))
                        .unwrap_or_default()
                }),
        )
    }

    /// The outputs of the live resources as observed.
    pub fn outputs_observed(&self, observations: &Observations) -> BTreeMap<String, Value> {
        collect_outputs(
            self.graph
                .nodes()
                .iter()
                .zip(observations)
                .flat_map(|(node, o)| match o {
                    Ok(Some(live)) => node.payload.outputs(&live.attrs),
                    _ => Vec::new(),
                }),
        )
    }

    /// Stores what a run applied: nodes now as configured take the config's spec, nodes
    /// deleted leave the record, the rest keep their entry. Writes only when it changed, so
    /// a converged `up` makes no write. A failure is a warning: the resources are fine, only
    /// `drift`'s view of what was applied is older.
    pub async fn store_record(&self, report: &RunReport, loaded: &Loaded) {
        let state_bucket_gone = report.nodes.iter().any(|n| {
            n.node == STATE_BUCKET
                && matches!(
                    n.outcome,
                    Outcome::Deleted | Outcome::Absent | Outcome::Failed(_) | Outcome::Skipped(_)
                )
        });
        if state_bucket_gone {
            return;
        }
        let env = self.env.full_name();
        let mut record = loaded.record.clone().unwrap_or_else(|| Record::new(&env));
        for (node, r) in self.graph.nodes().iter().zip(&report.nodes) {
            match &r.outcome {
                Outcome::Created(_)
                | Outcome::Updated(..)
                | Outcome::Replaced(..)
                | Outcome::Unchanged(_) => {
                    record.nodes.insert(node.id.clone(), node.payload.record());
                }
                Outcome::Deleted | Outcome::Absent => {
                    record.nodes.remove(&node.id);
                }
                Outcome::Kept(_) | Outcome::Failed(_) | Outcome::Skipped(_) => {}
            }
        }
        if loaded.record.as_ref() == Some(&record) {
            return;
        }
        if let Err(e) = record::save(&self.cx.aws.s3, &self.cx.scope, &record).await {
            self.reporter.warn(&format!(
                "{e}; `drift` compares with the previous record until the next `up` stores it"
            ));
        }
    }

    /// The state bucket: the applied record, the lock and the run history.
    pub fn state_bucket(&self) -> String {
        record::location(&self.cx.scope).0
    }

    /// Takes the environment's lock for `command` (see [`crate::lock`]), waiting up to
    /// `timeout`. Without a state bucket, `make_bucket` makes it first (through its node, as
    /// `up` would); otherwise the run goes on unlocked, as nothing else can be recording it.
    pub async fn lock(
        &self,
        command: &str,
        timeout: Duration,
        make_bucket: bool,
    ) -> anyhow::Result<Held> {
        let (tx, cancel) = watch::channel(false);
        let tx = Arc::new(tx);
        cancel_on_ctrl_c(tx.clone());
        let holder = Holder::me(command, &self.identity, &self.cx.run_id);
        let bucket = self.state_bucket();
        let events = self.reporter.clone() as Arc<dyn Events>;
        let mut created_bucket = false;
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
                Err(LockError::Aws(f)) if f.code.as_str() == "NoSuchBucket" && make_bucket && !created_bucket => {
                    self.make_state_bucket().await?;
                    created_bucket = true;
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

    /// Creates the state bucket through its own node (same spec, tags and settings).
    async fn make_state_bucket(&self) -> anyhow::Result<()> {
        let ix = self
            .graph
            .index_of(STATE_BUCKET)
            .context("the graph has no state bucket (a bug in tap-provision)")?;
        let node = self.graph.node(ix);
        self.reporter.note(&format!(
            "creating the state bucket s3://{} to hold the lock",
            self.state_bucket()
        ));
        let plan = NodePlan {
            action: Action::Create,
            ignored: Vec::new(),
            new_attrs: true,
        };
        let inputs = Inputs::new(STATE_BUCKET, &[], true);
        let attrs = node
            .payload
            .apply(&self.cx, &inputs, &None, &plan)
            .await
            .map_err(|(_, f)| anyhow::Error::new(f).context("creating the state bucket"))?;
        node.payload
            .wait_ready(&self.cx, attrs)
            .await
            .map_err(|f| anyhow::Error::new(f).context("waiting for the state bucket"))?;
        Ok(())
    }

    /// The state bucket the lock step made counts as created by this run.
    pub fn made_state_bucket(&self, report: &mut RunReport) {
        if let Some(n) = report.nodes.iter_mut().find(|n| n.node == STATE_BUCKET) {
            if let Outcome::Unchanged(attrs) = &n.outcome {
                n.outcome = Outcome::Created(attrs.clone());
            }
        }
    }

    /// After an acting run: stores its report in the history, releases the lock.
    pub async fn finish(&self, held: Held, report: &RunReport) {
        // Only a run that changed something (or failed trying) is history.
        let acted = report
            .nodes
            .iter()
            .any(|n| n.outcome.is_change() || matches!(n.outcome, Outcome::Failed(_)));
        if (held.lock.is_some() || held.created_bucket) && acted {
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
