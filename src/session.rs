//! One command against one environment: the config, its graph, the connection, the run
//! context, and the passes the commands are made of (observe, compare, apply, record).

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;
use serde_json::Value;

use crate::aws::{Clients, Shared, Target};
use crate::config::EnvConfig;
use crate::drift::{classify, Compared, NodeDrift};
use crate::error::NodeError;
use crate::executor::{preview, Executor, Observation, Preview, Task};
use crate::model::{collect_outputs, Events, Outcome, RunFlags, RunReport};
use crate::output::Reporter;
use crate::record::{self, Record};
use crate::repair::RepairTask;
use crate::resources::{Cx, Scope};
use crate::stack::{StepGraph, STATE_BUCKET};

pub type Observations = Vec<Result<Observation, NodeError>>;

pub struct Session {
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
}
