//! The only scheduler. It runs a graph of [`Task`]s on tokio in three kinds of pass:
//!
//! - [`Executor::observe`]: every node reads its live resource at once (each finds itself by
//!   its tags or name, so none waits for another); read-only.
//! - [`preview`]: pure; compares every node with what it observed, in dependency order,
//!   reading inputs from the dependencies' observed attributes (unknown where a dependency
//!   is to be created). `plan` and `drift` are this.
//! - [`Executor::apply`] and [`Executor::down`]: act, starting each node the moment its
//!   dependencies' milestones are met (identifiers or readiness), within `--parallelism`.
//!   A failed node stops only its dependents; Ctrl-C stops new starts and lets in-flight
//!   calls finish. Every node ends with an outcome; a panic becomes a failure.
//!
//! It owns the concurrency limits and the order; what a node does is the task's business.
//! It knows nothing of resource kinds: the context `C` is opaque to it.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

mod observe;

use crate::error::{Failure, NodeError, Step};
use crate::graph::{DependencyQueue, Graph, Milestone, NodeIx};
use crate::model::{
    Action, Attrs, EarlyIds, Events, Inputs, NodePlan, NodeRecord, NodeReport, Outcome, Output,
    RecordedIds, Ref, RunReport,
};

/// How many nodes read at once in an observe pass: every node of an environment (reads are
/// cheap, and each service's client paces itself once throttled). Fewer let one throttled
/// service's readers hold every permit while other services sit idle (BENCHMARKS.md).
pub const READ_PARALLELISM: usize = 128;

/// A live resource as a node observed it: what it publishes, whether it is ready, and the
/// kind's own description of it (only that kind reads it).
pub struct Live {
    pub attrs: Attrs,
    pub ready: bool,
    /// Not ready because it is still being made ([`crate::resources::Resource::is_creating`]).
    pub creating: bool,
    pub state: Box<dyn Any + Send + Sync>,
}

/// `None`: the resource does not exist.
pub type Observation = Option<Live>;

/// One node, as the executor sees it.
#[async_trait]
pub trait Task<C>: Send + Sync {
    fn node(&self) -> &str;
    fn kind(&self) -> &'static str;
    /// The IAM actions its kind calls ([`crate::policy`]).
    fn grants(&self) -> &'static crate::policy::Grants {
        &crate::policy::Grants::NONE
    }
    /// What `${suffix}` stands for in its grants ([`crate::policy::On::Arns`]).
    fn name_part(&self) -> Option<&str> {
        None
    }
    /// The nodes this one reads, and what it needs of each: the graph's edges.
    fn inputs(&self) -> Vec<Ref>;
    /// Read-only: the live resource, found by its tags or name.
    async fn observe(&self, cx: &C) -> Result<Observation, Failure>;
    /// Read-only, after `observe`: squares what tags and names found with the identifiers the
    /// applied record keeps for this node. Nothing found: the recorded resource, when it
    /// still exists (its tags were edited; the diff names them). Another one found: the
    /// recorded one where it is among the duplicates; an error naming both when it exists
    /// apart from them. The executor calls it only where the two disagree.
    async fn reconcile(
        &self,
        cx: &C,
        recorded: &RecordedIds,
        found: Observation,
    ) -> Result<Observation, Failure>;
    /// Read-only, after `observe` found nothing for a node the applied record says an
    /// interrupted run started creating: looks again where a new resource cannot hide.
    async fn find_interrupted(&self, _cx: &C) -> Result<Observation, Failure> {
        Ok(None)
    }
    /// The attributes it will have once created, where its name alone gives them.
    fn planned_attrs(&self, cx: &C) -> Option<Attrs>;
    /// The ARN whose tags a look reads ahead for it, before it reads anything.
    fn tags_read_ahead(&self, _cx: &C) -> Option<String> {
        None
    }
    /// Whether its kind reads its tags in bulk ([`crate::aws::bulk_tags`]), as its read
    /// grants say (`tag:GetResources`: the policy and the reads agree by construction): a
    /// look then asks for the tags of the ARN the applied record keeps for it, if any, as
    /// soon as the record is read.
    fn reads_tags_in_bulk(&self) -> bool {
        false
    }
    /// Pure: what `up` would do, given the inputs' attributes.
    fn plan(&self, cx: &C, inputs: &Inputs<'_>, have: &Observation) -> Result<NodePlan, Failure>;
    /// Carries out a plan that changes something; returns the attributes as soon as the
    /// resource's identifiers are known.
    async fn apply(
        &self,
        cx: &C,
        inputs: &Inputs<'_>,
        have: &Observation,
        plan: &NodePlan,
    ) -> Result<Attrs, (Step, Failure)>;
    /// Waits until dependents that need readiness may start; may refine the attributes.
    async fn wait_ready(&self, cx: &C, attrs: Attrs) -> Result<Attrs, Failure>;
    /// True when `up` may replace it (delete, then create): it holds no data.
    fn replaceable(&self) -> bool;
    /// Deletion protection that stops `down` before it deletes anything, in words.
    fn protection(&self, cx: &C, have: &Live) -> Option<String>;
    /// Why `down` keeps it (data), or `None` to delete it.
    fn keep_on_down(&self, cx: &C, have: &Live) -> Option<String>;
    /// Deletes it and waits until it is gone.
    async fn delete(&self, cx: &C, have: &Live) -> Result<(), Failure>;
    /// `down` found nothing: waits out a deletion already under way; true when it waited.
    async fn wait_leaving(&self, _cx: &C) -> Result<bool, Failure> {
        Ok(false)
    }
    /// What it contributes to the run's outputs.
    fn outputs(&self, attrs: &Attrs) -> Vec<Output>;
    /// Its desired spec, as recorded once applied.
    fn record(&self) -> NodeRecord;
    /// The same node with a recorded spec in place of the config's (what `repair` restores).
    fn with_record(&self, record: &NodeRecord) -> Result<Arc<dyn Task<C>>, String>;
}

pub type TaskGraph<C> = Graph<Arc<dyn Task<C>>>;

pub fn node_error(
    env: &str,
    node: &str,
    kind: &'static str,
    step: Step,
    failure: Failure,
) -> NodeError {
    NodeError {
        env: env.to_string(),
        node: node.to_string(),
        kind,
        step,
        failure: Box::new(failure),
    }
}

/// One node's plan in a preview: `None` where the node had no spec to compare (not recorded).
pub type Preview = Vec<Option<Result<NodePlan, NodeError>>>;

/// Compares every node with its observation, in dependency order. Pure. `spec` picks the
/// task each node is compared as (the config's, or the last applied one); `None` skips it.
/// A node reads its inputs from its dependencies' observed attributes, or as unknown where
/// a dependency would be created or replaced.
pub fn preview<C>(
    graph: &TaskGraph<C>,
    cx: &C,
    env: &str,
    observations: &[Result<Observation, NodeError>],
    spec: impl Fn(NodeIx) -> Option<Arc<dyn Task<C>>>,
) -> Preview {
    let mut planned: Vec<Option<Attrs>> = vec![None; graph.len()];
    let mut out: Preview = (0..graph.len()).map(|_| None).collect();
    for ix in graph.topo_order() {
        let node = graph.node(ix);
        let have = match &observations[ix] {
            Ok(o) => o,
            Err(e) => {
                out[ix] = Some(Err(node_error(
                    env,
                    &node.id,
                    node.kind,
                    Step::Find,
                    Failure::new(e.code(), e.failure.message.clone()),
                )));
                continue;
            }
        };
        let Some(task) = spec(ix) else {
            continue;
        };
        // A dependency that could not be read leaves this node nothing to compare with.
        if let Some((d, _)) = node.deps.iter().find(|(d, _)| observations[*d].is_err()) {
            out[ix] = Some(Err(node_error(
                env,
                &node.id,
                node.kind,
                Step::Find,
                Failure::new(
                    "DependencyUnreadable",
                    format!(
                        "`{}` could not be read, so this is not compared",
                        graph.node(*d).id
                    ),
                ),
            )));
            continue;
        }
        // The task's own inputs: a recorded spec may read other nodes than the config's.
        let values: Vec<(String, Option<Attrs>)> = task
            .inputs()
            .into_iter()
            .map(|r| {
                let attrs = graph.index_of(&r.node).and_then(|d| planned[d].clone());
                (r.node, attrs)
            })
            .collect();
        let inputs = Inputs::new(&node.id, &values, false);
        let plan = task
            .plan(cx, &inputs, have)
            .map_err(|f| node_error(env, &node.id, node.kind, Step::Find, f));
        if let Ok(p) = &plan {
            planned[ix] = match (&p.action, have) {
                (
                    Action::Unchanged | Action::Update { .. } | Action::Blocked { .. },
                    Some(live),
                ) if !p.new_attrs => Some(live.attrs.clone()),
                (Action::Create | Action::Replace { .. }, _) => task.planned_attrs(cx),
                _ => None,
            };
        }
        out[ix] = Some(plan);
    }
    out
}

/// Every resource whose deletion protection would stop `down`, named and described.
pub fn protected<C>(
    graph: &TaskGraph<C>,
    cx: &C,
    observations: &[Result<Observation, NodeError>],
) -> Vec<String> {
    graph
        .nodes()
        .iter()
        .zip(observations)
        .filter_map(|(node, o)| {
            let live = o.as_ref().ok()?.as_ref()?;
            let what = node.payload.protection(cx, live)?;
            Some(format!("{} ({what})", node.id))
        })
        .collect()
}

/// Runs passes over one graph with one context.
pub struct Executor<C> {
    pub graph: Arc<TaskGraph<C>>,
    pub cx: Arc<C>,
    pub events: Arc<dyn Events>,
    /// The environment's full name, for messages.
    pub env: String,
    /// Most nodes making changes at once (`--parallelism`); readiness waits do not count.
    pub parallelism: usize,
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// What the executor decided for a node when it became ready to start (short-lived: one per
/// node, moved at once).
#[allow(clippy::large_enum_variant)]
enum Start {
    Run(BoxFuture<Outcome>),
    Done(Outcome),
}

/// A node's identifiers are known (its create call returned): `Needs::Id` dependents start.
struct Published(NodeIx, Attrs);

impl<C: Send + Sync + 'static> Executor<C> {
    /// Converges every node: compare with its observation at the moment its inputs are
    /// known, then create, update or replace, publish, wait until ready. Nodes where `act`
    /// is false are left as they are (their observed attributes are published when present;
    /// when absent they and their dependents are skipped). Nodes that may act and where
    /// `look_at_start` is true are observed again when they start, in place of their
    /// observation.
    pub async fn apply(
        &self,
        observations: Vec<Result<Observation, NodeError>>,
        act: Vec<bool>,
        look_at_start: Vec<bool>,
        cancel: watch::Receiver<bool>,
    ) -> RunReport {
        let mut observations: Vec<Option<Result<Observation, NodeError>>> =
            observations.into_iter().map(Some).collect();
        let permits = Arc::new(Semaphore::new(self.parallelism.max(1)));
        let graph = self.graph.clone();
        let start = |ix: NodeIx, board: &[Option<Attrs>], tx: mpsc::UnboundedSender<Published>| {
            let node = graph.node(ix);
            let have = match observations[ix].take() {
                Some(Ok(o)) => o,
                Some(Err(e)) => return Start::Done(Outcome::Failed(e)),
                None => return Start::Done(self.started_twice(ix)),
            };
            // The task's own inputs, from what the nodes it reads have published.
            let mut values = Vec::new();
            for r in node.payload.inputs() {
                let published = graph.index_of(&r.node).and_then(|d| board[d].clone());
                match published {
                    Some(a) => values.push((r.node, Some(a))),
                    None => {
                        return Start::Done(Outcome::Skipped(format!(
                            "`{}` does not exist (or is no longer in the config)",
                            r.node
                        )))
                    }
                }
            }
            if !act[ix] {
                return Start::Done(match have {
                    Some(live) => Outcome::Unchanged(live.attrs),
                    None => Outcome::Skipped(
                        "not in the last applied record: a config addition left to `up`".into(),
                    ),
                });
            }
            let look = look_at_start[ix];
            let task = node.payload.clone();
            let cx = self.cx.clone();
            let events = self.events.clone();
            let permits = permits.clone();
            let env = self.env.clone();
            let (id, kind) = (node.id.clone(), node.kind);
            Start::Run(Box::pin(async move {
                let fail = |step, f| Outcome::Failed(node_error(&env, &id, kind, step, f));
                let have = if look {
                    match task.observe(&cx).await {
                        Ok(o) => o,
                        Err(f) => return fail(Step::Find, f),
                    }
                } else {
                    have
                };
                let permit = permits.acquire_owned().await;
                // Identifiers go to the queue once: early from the kind's create
                // (`Inputs::publish`), else once its apply returns.
                let early = EarlyIds::new(|attrs| {
                    let _ = tx.send(Published(ix, attrs));
                });
                let inputs = Inputs::new(&id, &values, true).publishing_to(&early);
                let plan = match task.plan(&cx, &inputs, &have) {
                    Ok(p) => p,
                    Err(f) => return fail(Step::Find, f),
                };
                let (attrs, wait) = match (&plan.action, &have) {
                    (Action::Missing { message }, _) => {
                        return fail(Step::Find, Failure::new("NotFound", message.clone()))
                    }
                    (Action::Blocked { changes }, _) => {
                        return fail(Step::Update, blocked(&id, kind, changes))
                    }
                    // Left as it is: waited for only while it is being made (by a killed run
                    // before this one), never while an existing resource is at work.
                    (Action::Unchanged, Some(live)) => {
                        (live.attrs.clone(), !live.ready && live.creating)
                    }
                    _ => {
                        events.node_progress(&id, plan.action.label());
                        match task.apply(&cx, &inputs, &have, &plan).await {
                            Ok(a) => (a, true),
                            Err((step, f)) => return fail(step, f),
                        }
                    }
                };
                // Identifiers are known: `Needs::Id` dependents may start while this waits.
                early.publish(attrs.clone());
                drop(permit);
                let attrs = if wait {
                    match task.wait_ready(&cx, attrs).await {
                        Ok(a) => a,
                        Err(f) => return fail(Step::Wait, f),
                    }
                } else {
                    attrs
                };
                match plan.action {
                    Action::Create => Outcome::Created(attrs),
                    Action::Update { changes } => Outcome::Updated(attrs, changes),
                    Action::Replace { changes } => Outcome::Replaced(attrs, changes),
                    _ => Outcome::Unchanged(attrs),
                }
            }))
        };
        self.drive(self.graph.up_queue(), start, cancel).await
    }

    /// Removes every node in reverse dependency order, keeping what `keep_on_down` keeps.
    pub async fn down(
        &self,
        observations: Vec<Result<Observation, NodeError>>,
        cancel: watch::Receiver<bool>,
    ) -> RunReport {
        let mut observations: Vec<Option<Result<Observation, NodeError>>> =
            observations.into_iter().map(Some).collect();
        let permits = Arc::new(Semaphore::new(self.parallelism.max(1)));
        let graph = self.graph.clone();
        let start = |ix: NodeIx, _: &[Option<Attrs>], _: mpsc::UnboundedSender<Published>| {
            let node = graph.node(ix);
            let live = match observations[ix].take() {
                Some(Ok(Some(live))) => live,
                Some(Ok(None)) => {
                    // Nothing to delete, unless an earlier (killed) `down` left it going away.
                    let task = node.payload.clone();
                    let (cx, env) = (self.cx.clone(), self.env.clone());
                    let (id, kind) = (node.id.clone(), node.kind);
                    return Start::Run(Box::pin(async move {
                        match task.wait_leaving(&cx).await {
                            Ok(true) => Outcome::Deleted,
                            Ok(false) => Outcome::Absent,
                            Err(f) => Outcome::Failed(node_error(&env, &id, kind, Step::Delete, f)),
                        }
                    }));
                }
                None => return Start::Done(self.started_twice(ix)),
                Some(Err(e)) => return Start::Done(Outcome::Failed(e)),
            };
            if let Some(reason) = node.payload.keep_on_down(&self.cx, &live) {
                return Start::Done(Outcome::Kept(reason));
            }
            let task = node.payload.clone();
            let cx = self.cx.clone();
            let events = self.events.clone();
            let permits = permits.clone();
            let env = self.env.clone();
            let (id, kind) = (node.id.clone(), node.kind);
            Start::Run(Box::pin(async move {
                let _permit = permits.acquire_owned().await;
                events.node_progress(&id, "deleting");
                match task.delete(&cx, &live).await {
                    Ok(()) => Outcome::Deleted,
                    Err(f) => Outcome::Failed(node_error(&env, &id, kind, Step::Delete, f)),
                }
            }))
        };
        self.drive(self.graph.down_queue(), start, cancel).await
    }

    /// A node whose observation was already handed over: a bug, never "absent".
    fn started_twice(&self, ix: NodeIx) -> Outcome {
        let node = self.graph.node(ix);
        let f = Failure::new("Internal", "started twice (a bug in tap-provision)");
        Outcome::Failed(node_error(&self.env, &node.id, node.kind, Step::Find, f))
    }

    /// The run loop shared by `apply` and `down`.
    async fn drive(
        &self,
        mut queue: DependencyQueue,
        mut start: impl FnMut(NodeIx, &[Option<Attrs>], mpsc::UnboundedSender<Published>) -> Start,
        mut cancel: watch::Receiver<bool>,
    ) -> RunReport {
        let began = Instant::now();
        let graph = &self.graph;
        let (tx, mut rx) = mpsc::unbounded_channel::<Published>();
        let mut tasks: JoinSet<(NodeIx, Outcome)> = JoinSet::new();
        let mut task_ix = std::collections::HashMap::new();
        let mut board: Vec<Option<Attrs>> = vec![None; graph.len()];
        let mut outcomes: Vec<Option<(Outcome, Duration)>> =
            (0..graph.len()).map(|_| None).collect();
        let mut started_at: Vec<Option<Instant>> = vec![None; graph.len()];
        let mut interrupted = *cancel.borrow();
        let mut cancel_open = true;

        // Records a node's end and tells the queue; returns nothing, the loop re-dequeues.
        let finish = |ix: NodeIx,
                      outcome: Outcome,
                      elapsed: Duration,
                      queue: &mut DependencyQueue,
                      board: &mut Vec<Option<Attrs>>,
                      outcomes: &mut Vec<Option<(Outcome, Duration)>>| {
            let node = graph.node(ix);
            match &outcome {
                Outcome::Failed(_) | Outcome::Skipped(_) => {
                    let why = if matches!(outcome, Outcome::Failed(_)) {
                        format!("{} failed", node.id)
                    } else {
                        format!("{} was skipped", node.id)
                    };
                    // A resource that failed only its readiness wait is made as asked: what
                    // needs only its identifiers goes on. One that failed while being made
                    // (after publishing them early) may be half set up: nothing more starts
                    // on it.
                    let made = matches!(&outcome, Outcome::Failed(e) if e.step == Step::Wait);
                    for skipped in queue.fail(ix, made) {
                        let s = graph.node(skipped);
                        let o = Outcome::Skipped(why.clone());
                        self.events.node_finished(&s.id, s.kind, &o, Duration::ZERO);
                        outcomes[skipped] = Some((o, Duration::ZERO));
                    }
                }
                other => {
                    if let Some(a) = other.attrs() {
                        board[ix] = Some(a.clone());
                    }
                    queue.finish(ix, Milestone::Ready);
                }
            }
            self.events
                .node_finished(&node.id, node.kind, &outcome, elapsed);
            outcomes[ix] = Some((outcome, elapsed));
        };

        loop {
            // Nodes decided without running (skipped, left alone) may make others ready.
            let mut ready = if interrupted {
                Vec::new()
            } else {
                queue.dequeue_ready()
            };
            while !ready.is_empty() {
                for ix in ready {
                    match start(ix, &board, tx.clone()) {
                        Start::Done(outcome) => finish(
                            ix,
                            outcome,
                            Duration::ZERO,
                            &mut queue,
                            &mut board,
                            &mut outcomes,
                        ),
                        Start::Run(fut) => {
                            let node = graph.node(ix);
                            self.events.node_started(&node.id, node.kind);
                            started_at[ix] = Some(Instant::now());
                            // Its calls to a paced service go before those of nodes
                            // with less work waiting on them.
                            let priority = queue.priority(ix);
                            let handle = tasks.spawn(
                                crate::aws::pacer::PRIORITY
                                    .scope(priority, async move { (ix, fut.await) }),
                            );
                            task_ix.insert(handle.id(), ix);
                        }
                    }
                }
                ready = queue.dequeue_ready();
            }
            if tasks.is_empty() {
                if !queue.is_drained() {
                    let reason = if interrupted {
                        "interrupted before it started"
                    } else {
                        "a dependency did not finish"
                    };
                    for ix in queue.skip_all_waiting() {
                        outcomes[ix] = Some((Outcome::Skipped(reason.into()), Duration::ZERO));
                    }
                }
                break;
            }
            tokio::select! {
                Some(Published(ix, attrs)) = rx.recv() => {
                    board[ix] = Some(attrs);
                    queue.finish(ix, Milestone::Ids);
                }
                Some(joined) = tasks.join_next_with_id() => {
                    let (ix, outcome) = match joined {
                        Ok((_, done)) => done,
                        Err(e) => {
                            let Some(&ix) = task_ix.get(&e.id()) else { continue };
                            let node = graph.node(ix);
                            (ix, Outcome::Failed(node_error(&self.env, &node.id, node.kind, Step::Update, panicked(&e))))
                        }
                    };
                    // Publications first, so milestones stay in order.
                    while let Ok(Published(i, attrs)) = rx.try_recv() {
                        board[i] = Some(attrs);
                        queue.finish(i, Milestone::Ids);
                    }
                    // A wait the interruption ended is not a failure: the node stops there.
                    // Its wait saw the interruption first when this join wins the select.
                    let outcome = match outcome {
                        Outcome::Failed(e) if e.failure.code == crate::aws::wait::STOPPED => {
                            interrupted = true;
                            Outcome::Skipped(format!("interrupted while waiting: {}", e.failure.message))
                        }
                        other => other,
                    };
                    let elapsed = started_at[ix].map(|s| s.elapsed()).unwrap_or_default();
                    finish(ix, outcome, elapsed, &mut queue, &mut board, &mut outcomes);
                }
                changed = cancel.changed(), if cancel_open && !interrupted => {
                    if changed.is_err() {
                        cancel_open = false;
                    } else if *cancel.borrow() {
                        interrupted = true;
                        self.events.warn("interrupted: starting no new step, ending waits, letting running calls finish (Ctrl-C again to stop now)");
                    }
                }
            }
        }

        let nodes = outcomes
            .into_iter()
            .enumerate()
            .map(|(ix, o)| {
                let (outcome, elapsed) =
                    o.unwrap_or((Outcome::Skipped("not started".into()), Duration::ZERO));
                let node = graph.node(ix);
                NodeReport {
                    node: node.id.clone(),
                    kind: node.kind,
                    outcome,
                    elapsed,
                }
            })
            .collect();
        RunReport {
            nodes,
            interrupted,
            elapsed: began.elapsed(),
        }
    }
}

/// Why `up` stops at a change AWS cannot make in place on a kind it does not replace.
pub fn blocked(node: &str, kind: &str, changes: &[crate::diff::Change]) -> Failure {
    let what: Vec<String> = changes
        .iter()
        .filter(|c| c.replace)
        .map(ToString::to_string)
        .collect();
    Failure::new(
        "NeedsReplacement",
        format!(
            "{node} differs in a way AWS cannot change in place: {}; tap-provision does not replace a {kind} (it holds data or others depend on it): restore the config value, or remove the resource yourself and run `up` again",
            what.join("; ")
        ),
    )
}

fn panicked(e: &tokio::task::JoinError) -> Failure {
    Failure::new(
        "Panic",
        format!("the step panicked ({e}); this is a bug in tap-provision, please report it"),
    )
}
