//! The read passes: every node observed at once, then squared with the applied record.

use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::{node_error, panicked, Executor, Observation, READ_PARALLELISM};
use crate::error::{Failure, NodeError, Step};
use crate::model::RecordedIds;

impl<C: Send + Sync + 'static> Executor<C> {
    /// Observes every node at once (up to [`READ_PARALLELISM`]).
    pub async fn observe(&self) -> Vec<Result<Observation, NodeError>> {
        let limit = Arc::new(Semaphore::new(READ_PARALLELISM));
        let mut set = JoinSet::new();
        let mut ids = std::collections::HashMap::new();
        for (ix, node) in self.graph.nodes().iter().enumerate() {
            let task = node.payload.clone();
            let cx = self.cx.clone();
            let limit = limit.clone();
            let handle = set.spawn(async move {
                let _permit = limit.acquire_owned().await;
                (ix, task.observe(&cx).await)
            });
            ids.insert(handle.id(), ix);
        }
        let mut out: Vec<Option<Result<Observation, NodeError>>> =
            (0..self.graph.len()).map(|_| None).collect();
        while let Some(joined) = set.join_next_with_id().await {
            let (ix, result) = match joined {
                Ok((_, (ix, r))) => (ix, r.map_err(|f| (Step::Find, f))),
                Err(e) => {
                    let Some(&ix) = ids.get(&e.id()) else {
                        continue;
                    };
                    (ix, Err((Step::Find, panicked(&e))))
                }
            };
            let node = self.graph.node(ix);
            out[ix] = Some(
                result.map_err(|(step, f)| node_error(&self.env, &node.id, node.kind, step, f)),
            );
        }
        // Every spawned read reports (a panic included), so a gap is a bug: never "absent".
        out.into_iter()
            .enumerate()
            .map(|(ix, o)| {
                o.unwrap_or_else(|| {
                    let node = self.graph.node(ix);
                    let f = Failure::new("Internal", "no observation (a bug in tap-provision)");
                    Err(node_error(&self.env, &node.id, node.kind, Step::Find, f))
                })
            })
            .collect()
    }

    /// The second step of a find: where the applied record names an identifier and the
    /// first step found nothing or something else, asks the node to square the two
    /// ([`Task::reconcile`]); where it found nothing of a node the record's `started` names
    /// (an interrupted create), asks it to look again ([`Task::find_interrupted`]). Nodes
    /// where both agree make no call.
    pub async fn reconcile(
        &self,
        observations: Vec<Result<Observation, NodeError>>,
        recorded: &[Option<RecordedIds>],
        started: &[bool],
    ) -> Vec<Result<Observation, NodeError>> {
        let limit = Arc::new(Semaphore::new(READ_PARALLELISM));
        let mut set = JoinSet::new();
        let mut out: Vec<Option<Result<Observation, NodeError>>> = Vec::new();
        for (ix, observed) in observations.into_iter().enumerate() {
            let ids = recorded.get(ix).cloned().flatten();
            let interrupted = started.get(ix).copied().unwrap_or(false);
            let found = match (observed, ids) {
                (Ok(found), Some(ids)) if found.as_ref().is_none_or(|l| l.attrs.id != ids.id) => {
                    (found, Some(ids))
                }
                (Ok(None), None) if interrupted => (None, None),
                (other, _) => {
                    out.push(Some(other));
                    continue;
                }
            };
            out.push(None);
            let task = self.graph.node(ix).payload.clone();
            let (cx, limit) = (self.cx.clone(), limit.clone());
            set.spawn(async move {
                let _permit = limit.acquire_owned().await;
                let result = match found {
                    (found, Some(ids)) => task.reconcile(&cx, &ids, found).await,
                    (_, None) => task.find_interrupted(&cx).await,
                };
                (ix, result)
            });
        }
        while let Some(joined) = set.join_next().await {
            // A panicked reconcile leaves its slot empty: reported below as a failure.
            if let Ok((ix, result)) = joined {
                let node = self.graph.node(ix);
                out[ix] = Some(
                    result.map_err(|f| node_error(&self.env, &node.id, node.kind, Step::Find, f)),
                );
            }
        }
        out.into_iter()
            .enumerate()
            .map(|(ix, o)| {
                o.unwrap_or_else(|| {
                    let node = self.graph.node(ix);
                    let f = Failure::new(
                        "Panic",
                        "finding it by its recorded identifiers panicked (a bug in tap-provision)",
                    );
                    Err(node_error(&self.env, &node.id, node.kind, Step::Find, f))
                })
            })
            .collect()
    }
}
