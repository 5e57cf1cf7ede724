//! The only scheduler: runs the step graph on tokio, starting each node the moment its
//! dependencies' milestones are met (identifiers or readiness), within `--parallelism`.
//! A failed node stops only its dependents; Ctrl-C stops new starts and lets in-flight
//! calls finish. Every node ends with an outcome; a panic becomes a failure.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::error::{Failure, NodeError, Step};
use crate::graph::{DependencyQueue, Milestone, NodeIx};
use crate::resources::{Cx, NodeCx, Outcome};
use crate::stack::StepGraph;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Create or converge, in dependency order.
    Up,
    /// Delete, in reverse dependency order.
    Down,
}

pub struct NodeReport {
    pub node: String,
    pub kind: &'static str,
    pub outcome: Outcome,
    pub elapsed: Duration,
}

pub struct RunReport {
    pub nodes: Vec<NodeReport>,
    pub interrupted: bool,
    pub elapsed: Duration,
}

impl RunReport {
    pub fn failed(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| matches!(n.outcome, Outcome::Failed(_)))
            .count()
    }

    pub fn changed(&self) -> usize {
        self.nodes.iter().filter(|n| n.outcome.is_change()).count()
    }
}

enum Msg {
    IdsKnown(NodeIx),
}

/// Runs every node of `graph` once in `mode`. `cancel` turning true stops new starts.
pub async fn run(
    graph: &StepGraph,
    mode: Mode,
    cx: Arc<Cx>,
    mut cancel: watch::Receiver<bool>,
) -> RunReport {
    let start = Instant::now();
    let mut queue: DependencyQueue = match mode {
        Mode::Up => graph.up_queue(),
        Mode::Down => graph.down_queue(),
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
    let mut tasks: JoinSet<(NodeIx, Outcome)> = JoinSet::new();
    let mut task_ix: HashMap<tokio::task::Id, (NodeIx, Instant)> = HashMap::new();
    let mut outcomes: Vec<Option<(Outcome, Duration)>> = (0..graph.len()).map(|_| None).collect();
    let mut started_at: Vec<Option<Instant>> = vec![None; graph.len()];
    let mut interrupted = *cancel.borrow();
    let mut cancel_open = true;

    loop {
        if !interrupted {
            for ix in queue.dequeue_ready() {
                let node = graph.node(ix);
                let payload = node.payload.clone();
                let id = node.id.clone();
                let cx = cx.clone();
                let tx = tx.clone();
                cx.reporter.node_started(&id, node.kind);
                let now = Instant::now();
                started_at[ix] = Some(now);
                let handle = tasks.spawn(async move {
                    let ncx = NodeCx { cx: &cx, node: &id };
                    let outcome = match mode {
                        Mode::Up => {
                            let notify = move || {
                                let _ = tx.send(Msg::IdsKnown(ix));
                            };
                            payload.up(&ncx, &notify).await
                        }
                        Mode::Down => payload.down(&ncx).await,
                    };
                    (ix, outcome)
                });
                task_ix.insert(handle.id(), (ix, now));
            }
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
            Some(Msg::IdsKnown(ix)) = rx.recv() => queue.finish(ix, Milestone::Ids),
            Some(joined) = tasks.join_next_with_id() => {
                let (ix, outcome) = match joined {
                    Ok((_, (ix, outcome))) => (ix, outcome),
                    Err(e) => {
                        let Some(&(ix, _)) = task_ix.get(&e.id()) else { continue };
                        let node = graph.node(ix);
                        (ix, Outcome::Failed(NodeError {
                            env: cx.env.full_name(),
                            node: node.id.clone(),
                            kind: node.kind,
                            step: Step::Update,
                            failure: Failure::new("Panic", format!("the step panicked ({e}); this is a bug in tap-provision, please report it")),
                        }))
                    }
                };
                let node = graph.node(ix);
                let elapsed = started_at[ix].map(|s| s.elapsed()).unwrap_or_default();
                // Drain ids notifications first so milestones stay in order.
                while let Ok(Msg::IdsKnown(i)) = rx.try_recv() {
                    queue.finish(i, Milestone::Ids);
                }
                if let Outcome::Failed(_) = outcome {
                    let failed_at = queue.fail(ix);
                    for skipped in failed_at {
                        let reason = format!("{} failed", node.id);
                        cx.reporter.node_finished(&graph.node(skipped).id, graph.node(skipped).kind, &Outcome::Skipped(reason.clone()), Duration::ZERO);
                        outcomes[skipped] = Some((Outcome::Skipped(reason), Duration::ZERO));
                    }
                } else {
                    queue.finish(ix, Milestone::Ready);
                }
                cx.reporter.node_finished(&node.id, node.kind, &outcome, elapsed);
                outcomes[ix] = Some((outcome, elapsed));
            }
            changed = cancel.changed(), if cancel_open && !interrupted => {
                if changed.is_err() {
                    cancel_open = false;
                } else if *cancel.borrow() {
                    interrupted = true;
                    cx.reporter.warn("interrupted: starting no new step, letting running calls finish (Ctrl-C again to stop now)");
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
        elapsed: start.elapsed(),
    }
}

/// Every resource whose deletion protection would stop `down`, named and described.
/// Reads only the protectable kinds.
pub async fn protected(graph: &StepGraph, cx: &Arc<Cx>) -> Result<Vec<String>, NodeError> {
    let mut found = Vec::new();
    for node in graph.nodes() {
        let ncx = NodeCx { cx, node: &node.id };
        if let Some(what) = node.payload.protection(&ncx).await? {
            found.push(format!("{} ({what})", node.id));
        }
    }
    Ok(found)
}
