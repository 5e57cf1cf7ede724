//! One command against one environment: the config, its graph, the connection, and the
//! passes every command is made of: look (observe every node, read the applied record,
//! square the two), compare, and, for the verbs that act, the one sequence in [`run`]
//! (lock, look again if another run may have acted, apply on that last look, record,
//! report, release).

mod hold;
mod only;
mod recording;
mod run;
pub mod zones;

pub use hold::{cancel_on_ctrl_c, Held, NoBucket};
pub use recording::Recording;
pub use run::{Acted, Verb};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

use tokio::sync::watch;

use crate::aws::{Clients, Shared, Target};
use crate::config::{EnvConfig, Repair};
use crate::drift::{classify, Compared, NodeDrift};
use crate::error::NodeError;
use crate::executor::{preview, Executor, Observation, Preview, Task};
use crate::lock;
use crate::model::{collect_outputs, Action, Events, NodePlan, RecordedIds, RunFlags, RunReport};
use crate::output::Reporter;
use crate::record::{self, Record};
use crate::repair::RepairTask;
use crate::resources::{Cx, Scope};
use crate::stack::select::Selection;
use crate::stack::{is_scheduled_repair, StepGraph};

pub type Observations = Vec<Result<Observation, NodeError>>;

pub struct Session {
    /// The AWS identity (ARN) the run acts as.
    pub identity: String,
    /// When the command started (Unix seconds), before it observed anything.
    pub started: u64,
    pub env: Arc<Environment>,
    pub graph: Arc<StepGraph>,
    pub cx: Arc<Cx>,
    pub reporter: Arc<Reporter>,
    pub parallelism: usize,
    /// A scheduled run: it stores one report of its own for every run (see
    /// `verbs::scheduled`), so the acting sequence stores none.
    pub unattended: bool,
    /// The scheduled repair's nodes when the config has none (`stack::retired`): looked at
    /// when the record says an earlier `up` made them; `up` deletes what is there.
    pub retired: Option<Arc<StepGraph>>,
    /// The applied record as read to find the zones ([`zones::resolve`]), for the first
    /// look to use instead of reading it again.
    pub preloaded: std::sync::Mutex<Option<Option<Record>>>,
    /// `--only`: the part of the environment the run reports on; `graph` then holds it with
    /// what it reaches ([`crate::stack::select`]).
    pub only: Option<Selection>,
    /// Every node of the environment's graph, selected or not: what the record's header
    /// lists and what orphans are told from.
    pub all_nodes: Vec<String>,
    /// The environment's whole graph (`graph` is part of it under `--only`): what depends on
    /// a node is asked of it.
    pub full: Arc<StepGraph>,
}

/// Which environment a session acts on, and what it runs with: from its env file, or, for a
/// scheduled run, from the applied record ([`Session::open_from_record`]).
#[derive(Debug, Clone)]
pub struct Environment {
    pub project: String,
    /// `prod`.
    pub env: String,
    pub region: String,
    /// Upper bound of any single readiness wait.
    pub wait_timeout: Duration,
    /// `[repair]`: its ignore list applies to every comparison.
    pub repair: Repair,
}

impl Environment {
    pub fn of(config: &EnvConfig) -> Environment {
        Environment {
            project: config.project.clone(),
            env: config.env.clone(),
            region: config.region.clone(),
            wait_timeout: config.wait_timeout,
            repair: config.repair.clone(),
        }
    }

    /// `<project>-<env>`.
    pub fn full_name(&self) -> String {
        format!("{}-{}", self.project, self.env)
    }
}

/// One look at the environment: every node observed and squared with the applied record,
/// the record itself, and the run context whose per-run caches (batched describes, the
/// duplicates found) that look filled. Apply runs on the last look, with its context.
pub struct Pass {
    pub observations: Observations,
    /// `None` only when AWS said there is no record (no bucket, or no object).
    pub record: Option<Record>,
    pub cx: Arc<Cx>,
    /// The retired nodes' observations, in [`Session::retired`]'s order, when they were
    /// looked at.
    pub retired: Option<Observations>,
    /// Nodes whose look again is put off to the moment `apply` starts them (the state bucket
    /// the lock step made: nothing waits on it, so its reads no longer hold back the run).
    pub look_at_start: Vec<String>,
}

impl Pass {
    /// The nodes that could not be read, with why.
    pub fn unreadable(&self) -> Vec<&NodeError> {
        self.observations
            .iter()
            .filter_map(|o| o.as_ref().err())
            .collect()
    }

    /// Why there is nothing to compare with, for `drift` and `repair`'s notes.
    pub fn record_note(&self, scope: &Scope) -> Option<String> {
        self.record.is_none().then(|| {
            let (bucket, key) = record::location(scope);
            format!("no applied record at s3://{bucket}/{key}")
        })
    }
}

impl Session {
    /// Builds the clients and checks the identity once (STS GetCallerIdentity), so a
    /// missing credential or an unreachable endpoint is one clear error before any other call.
    pub async fn open(
        env: Environment,
        graph: StepGraph,
        target: &Target,
        flags: RunFlags,
        parallelism: usize,
        reporter: Arc<Reporter>,
    ) -> anyhow::Result<Session> {
        let (aws, identity, scope) = Self::connect(&env, target).await?;
        Ok(Self::assemble(
            (aws, identity, scope),
            env,
            graph,
            flags,
            parallelism,
            reporter,
        ))
    }

    /// A session on clients already connected ([`Session::connect`]).
    pub fn assemble(
        (aws, identity, scope): (Clients, String, Scope),
        env: Environment,
        graph: StepGraph,
        flags: RunFlags,
        parallelism: usize,
        reporter: Arc<Reporter>,
    ) -> Session {
        let graph = Arc::new(graph);
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
            ignore: Arc::new(env.repair.ignore.clone()),
            stop: Arc::default(),
            wrote: Arc::default(),
        };
        Session {
            identity,
            started: lock::unix_now(),
            env: Arc::new(env),
            all_nodes: graph.nodes().iter().map(|n| n.id.clone()).collect(),
            only: None,
            full: graph.clone(),
            graph,
            cx: Arc::new(cx),
            reporter,
            parallelism,
            unattended: false,
            retired: None,
            preloaded: std::sync::Mutex::new(None),
        }
    }

    /// The clients, the caller's identity (ARN) and the environment's scope.
    pub async fn connect(
        env: &Environment,
        target: &Target,
    ) -> anyhow::Result<(Clients, String, Scope)> {
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
        Ok((aws, identity, scope))
    }

    pub fn executor(&self) -> Executor<Cx> {
        self.executor_with(self.graph.clone(), self.cx.clone())
    }

    /// The executor of the config's graph on `pass`'s context.
    pub fn executor_on(&self, pass: &Pass) -> Executor<Cx> {
        self.executor_with(self.graph.clone(), pass.cx.clone())
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

    /// Looks at the environment from scratch (new caches): observes every node while the
    /// applied record is read, then finds by the record's identifiers what tags and names
    /// did not ([`Executor::reconcile`]). A record that exists but cannot be read is an
    /// error: no command goes on without the record it would compare with or write.
    pub async fn look(&self) -> anyhow::Result<Pass> {
        let cx = Arc::new(self.cx.fresh());
        let executor = self.executor_with(self.graph.clone(), cx.clone());
        let preloaded = self
            .preloaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        // The tags that nodes read in bulk for the ARNs their names give, and for those the
        // record keeps when it was read first, asked for together before any node reads (not
        // after this run wrote: nodes then read their own, the tagging API may lag a write).
        let mut ahead: Vec<String> = self
            .graph
            .nodes()
            .iter()
            .filter_map(|n| n.payload.tags_read_ahead(&cx))
            .collect();
        if let Some(Some(record)) = &preloaded {
            ahead.extend(self.recorded_arns(record));
        }
        cx.read_tags_ahead(ahead);
        if let Some(record) = &preloaded {
            cx.record_names(record.iter().flat_map(|r| r.named().cloned()).collect());
        }
        // The record, then (beside the graph's own reads, as soon as the record says so)
        // the retired nodes: a record that names a scheduled repair, or none at all, means
        // one may be there to remove.
        let record_and_retired = async {
            let record = match preloaded {
                Some(record) => record,
                None => record::load(&cx.aws.s3, &cx.scope).await?,
            };
            // The tags of what the record names, for the kinds that read theirs in bulk: one
            // call, where asking level by level as nodes find ARNs would take one a level.
            // (Those of a record read first are asked for already, and not again.)
            if let Some(r) = &record {
                cx.read_tags_ahead(self.recorded_arns(r));
            }
            let retired = match &self.retired {
                Some(g)
                    if record
                        .as_ref()
                        .is_none_or(|r| r.named().any(|n| is_scheduled_repair(n))) =>
                {
                    Some(self.executor_with(g.clone(), cx.clone()).observe().await)
                }
                _ => None,
            };
            Ok::<_, crate::error::Failure>((record, retired))
        };
        let (observations, loaded) = tokio::join!(executor.observe(), record_and_retired);
        let (record, retired) = loaded.map_err(anyhow::Error::new)?;
        if let Some(r) = &record {
            self.check_entries(r)?;
        }
        let recorded: Vec<Option<RecordedIds>> = self
            .graph
            .nodes()
            .iter()
            .map(|n| record.as_ref().and_then(|r| r.ids(&n.id)).cloned())
            .collect();
        let started: Vec<bool> = self
            .graph
            .nodes()
            .iter()
            .map(|n| record.as_ref().is_some_and(|r| r.started.contains(&n.id)))
            .collect();
        let observations = executor.reconcile(observations, &recorded, &started).await;
        Ok(Pass {
            observations,
            record,
            cx,
            retired,
            look_at_start: Vec::new(),
        })
    }

    /// The ARNs `record` keeps for the nodes that read their tags in bulk.
    fn recorded_arns(&self, record: &Record) -> Vec<String> {
        self.graph
            .nodes()
            .iter()
            .filter(|n| n.payload.reads_tags_in_bulk())
            .filter_map(|n| record.ids(&n.id)?.arn.clone())
            .collect()
    }

    /// Stops a command that would act when any node could not be read: what the tool cannot
    /// read, it cannot explain, so it writes nothing.
    pub fn require_readable(&self, pass: &Pass, verb: &str) -> anyhow::Result<()> {
        let unreadable = pass.unreadable();
        if unreadable.is_empty() {
            return Ok(());
        }
        let lines: Vec<String> = unreadable.iter().map(|e| format!("  - {e}")).collect();
        anyhow::bail!(
            "{}: {} resource(s) could not be read, so `{verb}` changed nothing:\n{}\n\
             Fix what each line names (a permission, a conflict) and run it again",
            self.env.full_name(),
            unreadable.len(),
            lines.join("\n")
        )
    }

    /// The retired nodes that are there (their indices in [`Session::retired`]): what `up`
    /// deletes. One that cannot be read stops the command, as any other node does.
    pub fn retiring(&self, pass: &Pass, verb: &str) -> anyhow::Result<Vec<usize>> {
        let Some(observed) = &pass.retired else {
            return Ok(Vec::new());
        };
        let unreadable: Vec<String> = observed
            .iter()
            .filter_map(|o| o.as_ref().err().map(|e| format!("  - {e}")))
            .collect();
        if !unreadable.is_empty() {
            anyhow::bail!(
                "{}: {} resource(s) of the scheduled repair could not be read, so `{verb}` changed nothing:\n{}",
                self.env.full_name(),
                unreadable.len(),
                unreadable.join("\n")
            );
        }
        Ok(observed
            .iter()
            .enumerate()
            .filter(|(_, o)| matches!(o, Ok(Some(_))))
            .map(|(ix, _)| ix)
            .collect())
    }

    /// What `up` would do to every node (the config against live AWS).
    pub fn preview(&self, pass: &Pass) -> Preview {
        preview(
            &self.graph,
            &pass.cx,
            &self.env.full_name(),
            &pass.observations,
            |ix| Some(self.graph.node(ix).payload.clone()),
        )
    }

    /// The applied version of every recorded node. A node whose kind changed in the
    /// config since (its id now names another kind) is compared with the config; every other
    /// entry was checked readable by [`Session::look`].
    fn applied_task(&self, record: &Record, ix: usize) -> Option<Arc<dyn Task<Cx>>> {
        let node = self.graph.node(ix);
        let entry = record.nodes.get(&node.id)?;
        match node.payload.with_record(entry) {
            Ok(task) => Some(task),
            Err(e) => {
                self.reporter.warn(&format!(
                    "{}: the applied record has it as another kind ({e}); compared with the config",
                    node.id
                ));
                None
            }
        }
    }

    /// An error naming every entry of `record` that does not read as its node's spec (a
    /// kind changed since is not one of them: the node is then new).
    fn check_entries(&self, record: &Record) -> anyhow::Result<()> {
        let bad: Vec<String> = self
            .graph
            .nodes()
            .iter()
            .filter_map(|node| {
                let entry = record.nodes.get(&node.id)?;
                if entry.kind != node.kind {
                    return None;
                }
                let e = node.payload.with_record(entry).err()?;
                Some(format!("{}: {e}", node.id))
            })
            .collect();
        if bad.is_empty() {
            return Ok(());
        }
        let (bucket, key) = record::location(&self.cx.scope);
        Err(anyhow::Error::new(crate::error::Failure::new(
            "UnreadableRecord",
            format!(
                "the applied record s3://{bucket}/{key} has entries that do not read as their node's spec ({}); nothing was changed: {}",
                bad.join("; "),
                record::start_over_hint(&self.cx.scope)
            ),
        )))
    }

    /// Drift and pending edits of every node (pure once observed).
    pub fn compare(&self, pass: &Pass) -> Vec<NodeDrift> {
        let env = self.env.full_name();
        let record = pass.record.as_ref();
        let current = self.preview(pass);
        let applied: Preview = match record {
            Some(r) => preview(&self.graph, &pass.cx, &env, &pass.observations, |ix| {
                self.applied_task(r, ix)
            }),
            None => (0..self.graph.len()).map(|_| None).collect(),
        };
        self.graph
            .nodes()
            .iter()
            .enumerate()
            .map(|(ix, node)| {
                let mut found = classify(Compared {
                    node: &node.id,
                    kind: node.kind,
                    present: matches!(&pass.observations[ix], Ok(Some(_))),
                    current: current[ix].as_ref(),
                    applied: applied[ix].as_ref(),
                    have_record: record.is_some(),
                });
                if !self.reports(&node.id) {
                    // Read for the selection's sake: neither reported nor acted on, unless
                    // it could not be read or looked up, which stops the run as anywhere.
                    found.drift = None;
                    if !matches!(found.pending, Some(Action::Missing { .. })) {
                        found.pending = None;
                    }
                    found.ignored.clear();
                }
                found
            })
            .collect()
    }

    /// What `up` records of how it ran: the header of the applied record.
    pub fn applied(&self) -> record::Applied {
        record::Applied {
            project: self.env.project.clone(),
            env: self.env.env.clone(),
            region: self.env.region.clone(),
            wait_seconds: self.env.wait_timeout.as_secs(),
            repair: self.env.repair.clone(),
            nodes: self.all_nodes.clone(),
        }
    }

    /// True when the applied record would change if this look were left as it is: a node
    /// present as configured whose entry is missing, has another spec, or other identifiers
    /// (a record of format 1, or one a killed run did not bring up to date). `up` then takes
    /// the lock and writes it, even with nothing else to do.
    pub fn record_stale(&self, pass: &Pass, preview: &Preview) -> bool {
        let header = pass.record.as_ref().and_then(|r| r.applied.as_ref());
        if pass.record.is_some() && header != Some(&self.header_after(header)) {
            return true;
        }
        self.graph.nodes().iter().enumerate().any(|(ix, node)| {
            let Ok(Some(live)) = &pass.observations[ix] else {
                return false;
            };
            let unchanged = matches!(
                &preview[ix],
                Some(Ok(NodePlan {
                    action: Action::Unchanged,
                    ..
                }))
            );
            if !unchanged {
                return false;
            }
            let Some(entry) = pass.record.as_ref().and_then(|r| r.nodes.get(&node.id)) else {
                return true;
            };
            let now = node.payload.record();
            // An ARN the record lacks is no reason to write: the id finds it.
            let ids_differ = entry.ids.as_ref().is_none_or(|ids| {
                ids.id != live.attrs.id || (ids.arn.is_some() && ids.arn != live.attrs.arn)
            });
            entry.spec != now.spec || entry.tags != now.tags || entry.kind != now.kind || ids_differ
        })
    }

    /// Nodes the applied record has that the config no longer does (a reader or NAT gateway
    /// removed from the file): `up` does not remove them; `plan` and `drift` name them.
    pub fn orphans(&self, record: Option<&Record>) -> Vec<(String, String)> {
        if self.only.is_some() {
            return Vec::new(); // a whole-environment question
        }
        record
            .map(|r| {
                r.nodes
                    .iter()
                    .filter(|(node, _)| !self.all_nodes.contains(node))
                    // Retired on purpose: `up` deletes them (`Session::retiring`).
                    .filter(|(node, _)| {
                        self.retired
                            .as_ref()
                            .is_none_or(|g| g.index_of(node).is_none())
                    })
                    .map(|(node, rec)| (node.clone(), rec.kind.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The graph `repair` runs: each recorded node as last applied, limited to the fields
    /// that differ from the config too; nodes the record lacks as configured.
    pub fn repair_graph(&self, record: Option<&Record>) -> Arc<StepGraph> {
        Arc::new(self.graph.map(
            |ix, node| match record.and_then(|r| self.applied_task(r, ix)) {
                Some(applied) => Arc::new(RepairTask {
                    applied,
                    current: node.payload.clone(),
                }) as Arc<dyn Task<Cx>>,
                None => node.payload.clone(),
            },
        ))
    }

    /// After `up` applied `graph`: deletes the retired nodes it found there (the scheduled
    /// repair, once `schedule = "off"`), in reverse dependency order. Returns the graph and
    /// report to record: `graph`'s, followed by the retired ones (deleted, they leave the
    /// record).
    pub async fn retire(
        &self,
        pass: &mut Pass,
        graph: Arc<StepGraph>,
        mut report: RunReport,
        cancel: watch::Receiver<bool>,
    ) -> (Arc<StepGraph>, RunReport) {
        let (Some(retired), Some(observed)) = (&self.retired, pass.retired.take()) else {
            return (graph, report);
        };
        if report.interrupted || !observed.iter().any(|o| matches!(o, Ok(Some(_)))) {
            return (graph, report);
        }
        let gone = self
            .executor_with(retired.clone(), pass.cx.clone())
            .down(observed, cancel)
            .await;
        report.interrupted |= gone.interrupted;
        report.elapsed += gone.elapsed;
        report.nodes.extend(gone.nodes);
        (Arc::new(graph.join(retired)), report)
    }

    /// Runs `graph` (the config's, or repair's) on the last look, with `act` saying which
    /// nodes may change.
    pub async fn apply(
        &self,
        graph: Arc<StepGraph>,
        pass: &mut Pass,
        act: Vec<bool>,
        cancel: watch::Receiver<bool>,
    ) -> RunReport {
        let observations = std::mem::take(&mut pass.observations);
        let look_at_start = graph
            .nodes()
            .iter()
            .map(|n| pass.look_at_start.contains(&n.id))
            .collect();
        self.executor_with(graph, pass.cx.clone())
            .apply(observations, act, look_at_start, cancel)
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
}
