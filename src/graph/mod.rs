//! The step graph: nodes, typed dependency edges, cycle check, rendering.
//!
//! Pure: no AWS SDK, no tokio. The payload `T` is whatever the executor runs (resource nodes
//! in the product, `()` in tests).

mod queue;
mod render;

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

pub use queue::{DependencyQueue, Milestone};
pub use render::{to_dot, to_mermaid};

/// What a dependent needs from its dependency before it may start.
///
/// PLATFORM.md, "When a dependent call may start", says which edge is which.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Needs {
    /// The dependency's identifiers (id, ARN, name): met as soon as its create call returned.
    Id,
    /// The dependency's readiness: met after its waiter saw the ready state.
    Ready,
}

impl fmt::Display for Needs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Needs::Id => "id",
            Needs::Ready => "ready",
        })
    }
}

/// Index of a node in its graph.
pub type NodeIx = usize;

#[derive(Debug)]
pub struct Node<T> {
    /// Stable id within the environment, e.g. `nat-a`; also the value of the node tag.
    pub id: String,
    /// Resource kind, e.g. `nat_gateway`.
    pub kind: &'static str,
    /// Dependencies: (dependency, what is needed of it).
    pub deps: Vec<(NodeIx, Needs)>,
    pub payload: T,
}

/// A validated, acyclic graph.
#[derive(Debug)]
pub struct Graph<T> {
    nodes: Vec<Node<T>>,
}

/// A problem found while building a graph; every one is collected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    #[error("node `{0}` is defined twice")]
    Duplicate(String),
    #[error("node `{node}` depends on `{missing}`, which is not in the graph")]
    Missing { node: String, missing: String },
    #[error("dependency cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
    /// The node's spec is wrong (a template naming an unknown attribute).
    #[error("node `{node}`: {message}")]
    Spec { node: String, message: String },
    /// An entry of `[repair] ignore` names no node or no field of it: the config's mistake.
    #[error("repair.ignore: `{entry}`: {message}")]
    Ignore { entry: String, message: String },
}

/// Collects nodes by id, then checks and freezes them into a [`Graph`].
pub struct Builder<T> {
    nodes: Vec<Pending<T>>,
    rejected: Vec<GraphError>,
}

/// A node before its dependency ids are resolved: (id, kind, deps by id, payload).
type Pending<T> = (String, &'static str, Vec<(String, Needs)>, T);

impl<T> Default for Builder<T> {
    fn default() -> Self {
        Builder {
            nodes: Vec::new(),
            rejected: Vec::new(),
        }
    }
}

impl<T> Builder<T> {
    pub fn add(
        &mut self,
        id: impl Into<String>,
        kind: &'static str,
        deps: Vec<(String, Needs)>,
        payload: T,
    ) {
        self.nodes.push((id.into(), kind, deps, payload));
    }

    /// A node that could not be added (its spec is wrong): reported by `build` with the rest.
    pub fn reject(&mut self, error: GraphError) {
        self.rejected.push(error);
    }

    /// Resolves ids, reports every duplicate and missing dependency, then looks for a cycle.
    pub fn build(self) -> Result<Graph<T>, Vec<GraphError>> {
        let mut errors = self.rejected;
        let mut index = HashMap::new();
        for (i, (id, ..)) in self.nodes.iter().enumerate() {
            if index.insert(id.clone(), i).is_some() {
                errors.push(GraphError::Duplicate(id.clone()));
            }
        }
        let mut nodes = Vec::with_capacity(self.nodes.len());
        for (id, kind, deps, payload) in self.nodes {
            let mut resolved = Vec::new();
            for (dep, needs) in deps {
                match index.get(&dep) {
                    Some(&ix) => resolved.push((ix, needs)),
                    None => errors.push(GraphError::Missing {
                        node: id.clone(),
                        missing: dep,
                    }),
                }
            }
            nodes.push(Node {
                id,
                kind,
                deps: resolved,
                payload,
            });
        }
        if errors.is_empty() {
            if let Some(cycle) = find_cycle(&nodes) {
                errors.push(GraphError::Cycle(cycle));
            }
        }
        if errors.is_empty() {
            Ok(Graph { nodes })
        } else {
            Err(errors)
        }
    }
}

impl<T> Graph<T> {
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn nodes(&self) -> &[Node<T>] {
        &self.nodes
    }

    pub fn node(&self, ix: NodeIx) -> &Node<T> {
        &self.nodes[ix]
    }

    pub fn index_of(&self, id: &str) -> Option<NodeIx> {
        self.nodes.iter().position(|n| n.id == id)
    }

    /// Dependency edges as (dependent, dependency, needs).
    pub fn edges(&self) -> impl Iterator<Item = (NodeIx, NodeIx, Needs)> + '_ {
        self.nodes
            .iter()
            .enumerate()
            .flat_map(|(i, n)| n.deps.iter().map(move |&(d, needs)| (i, d, needs)))
    }

    /// The same graph with each node's payload replaced by `f(index, node)`.
    pub fn map<U>(&self, mut f: impl FnMut(NodeIx, &Node<T>) -> U) -> Graph<U> {
        Graph {
            nodes: self
                .nodes
                .iter()
                .enumerate()
                .map(|(ix, n)| Node {
                    id: n.id.clone(),
                    kind: n.kind,
                    deps: n.deps.clone(),
                    payload: f(ix, n),
                })
                .collect(),
        }
    }

    /// The nodes `keep` selects, with the edges among them (edges to the others dropped).
    pub fn only(&self, keep: impl Fn(&Node<T>) -> bool) -> Graph<T>
    where
        T: Clone,
    {
        let kept: Vec<NodeIx> = (0..self.len())
            .filter(|&ix| keep(&self.nodes[ix]))
            .collect();
        let new_ix = |old: NodeIx| kept.iter().position(|&k| k == old);
        Graph {
            nodes: kept
                .iter()
                .map(|&ix| {
                    let n = &self.nodes[ix];
                    Node {
                        id: n.id.clone(),
                        kind: n.kind,
                        deps: n
                            .deps
                            .iter()
                            .filter_map(|&(d, needs)| new_ix(d).map(|d| (d, needs)))
                            .collect(),
                        payload: n.payload.clone(),
                    }
                })
                .collect(),
        }
    }

    /// This graph followed by `other`'s nodes (whose edges stay among themselves).
    pub fn join(&self, other: &Graph<T>) -> Graph<T>
    where
        T: Clone,
    {
        let offset = self.len();
        let copy = |n: &Node<T>, shift: usize| Node {
            id: n.id.clone(),
            kind: n.kind,
            deps: n
                .deps
                .iter()
                .map(|&(d, needs)| (d + shift, needs))
                .collect(),
            payload: n.payload.clone(),
        };
        Graph {
            nodes: self
                .nodes
                .iter()
                .map(|n| copy(n, 0))
                .chain(other.nodes.iter().map(|n| copy(n, offset)))
                .collect(),
        }
    }

    /// Every node after all of its dependencies.
    pub fn topo_order(&self) -> Vec<NodeIx> {
        let mut q = self.up_queue();
        let mut order = Vec::with_capacity(self.len());
        loop {
            let ready = q.dequeue_ready();
            if ready.is_empty() {
                break;
            }
            for ix in ready {
                q.finish(ix, Milestone::Ready);
                order.push(ix);
            }
        }
        order
    }

    /// The queue for building: a node starts when its dependencies' milestones are met.
    pub fn up_queue(&self) -> DependencyQueue {
        DependencyQueue::new(self.nodes.len(), self.edges())
    }

    /// Every node that depends on `ix`, directly or through others, in graph order.
    pub fn dependents(&self, ix: NodeIx) -> Vec<NodeIx> {
        let mut on = vec![false; self.nodes.len()];
        on[ix] = true;
        // Topological order: a node's dependencies come before it.
        for n in self.topo_order() {
            if !on[n] && self.nodes[n].deps.iter().any(|&(d, _)| on[d]) {
                on[n] = true;
            }
        }
        on[ix] = false;
        (0..self.nodes.len()).filter(|&n| on[n]).collect()
    }

    /// The queue for tearing down: a node is deleted after every node that depends on it is
    /// gone, so all edges are reversed and need the dependent's completion.
    pub fn down_queue(&self) -> DependencyQueue {
        DependencyQueue::new(
            self.nodes.len(),
            self.edges().map(|(n, d, _)| (d, n, Needs::Ready)),
        )
    }
}

/// Depth-first search for a cycle; returns its path (first node repeated at the end).
fn find_cycle<T>(nodes: &[Node<T>]) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnStack,
        Done,
    }
    fn visit<T>(
        i: usize,
        nodes: &[Node<T>],
        marks: &mut [Mark],
        stack: &mut Vec<usize>,
    ) -> Option<Vec<String>> {
        marks[i] = Mark::OnStack;
        stack.push(i);
        for &(d, _) in &nodes[i].deps {
            match marks[d] {
                Mark::OnStack => {
                    let start = stack.iter().position(|&s| s == d).unwrap_or(0);
                    let mut path: Vec<String> = stack[start..]
                        .iter()
                        .map(|&s| nodes[s].id.clone())
                        .collect();
                    path.push(nodes[d].id.clone());
                    return Some(path);
                }
                Mark::New => {
                    if let Some(p) = visit(d, nodes, marks, stack) {
                        return Some(p);
                    }
                }
                Mark::Done => {}
            }
        }
        stack.pop();
        marks[i] = Mark::Done;
        None
    }
    let mut marks = vec![Mark::New; nodes.len()];
    let mut stack = Vec::new();
    (0..nodes.len()).find_map(|i| {
        if marks[i] == Mark::New {
            visit(i, nodes, &mut marks, &mut stack)
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(id: &str, needs: Needs) -> (String, Needs) {
        (id.to_string(), needs)
    }

    #[test]
    fn reports_every_problem() {
        let mut b = Builder::default();
        b.add("a", "k", vec![dep("missing", Needs::Id)], ());
        b.add("a", "k", vec![], ());
        let errs = b.build().unwrap_err();
        assert!(errs.contains(&GraphError::Duplicate("a".into())));
        assert!(errs
            .iter()
            .any(|e| matches!(e, GraphError::Missing { missing, .. } if missing == "missing")));
    }

    #[test]
    fn dependents_are_transitive() {
        let mut b = Builder::default();
        b.add("vpc", "k", vec![], ());
        b.add("subnet", "k", vec![dep("vpc", Needs::Id)], ());
        b.add("nat", "k", vec![dep("subnet", Needs::Id)], ());
        b.add("zone", "k", vec![], ());
        let g = b.build().unwrap();
        let ids = |v: Vec<NodeIx>| {
            v.into_iter()
                .map(|i| g.node(i).id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(g.dependents(0)), ["subnet", "nat"]);
        assert_eq!(ids(g.dependents(2)), Vec::<String>::new());
        assert_eq!(ids(g.dependents(3)), Vec::<String>::new());
    }

    #[test]
    fn a_selection_keeps_its_own_edges_and_a_join_shifts_them() {
        let mut b = Builder::default();
        b.add("vpc", "k", vec![], ());
        b.add("repair-sg", "k", vec![dep("vpc", Needs::Id)], ());
        b.add("repair-task", "k", vec![dep("repair-sg", Needs::Id)], ());
        let g = b.build().unwrap();
        let part = g.only(|n| n.id.starts_with("repair-"));
        assert_eq!(part.len(), 2);
        assert!(part.node(0).deps.is_empty(), "the edge to vpc is dropped");
        assert_eq!(part.node(1).deps, vec![(0, Needs::Id)]);
        let both = g.join(&part);
        assert_eq!(both.len(), 5);
        assert_eq!(both.node(4).id, "repair-task");
        assert_eq!(both.node(4).deps, vec![(3, Needs::Id)]);
    }

    #[test]
    fn prints_cycle_path() {
        let mut b = Builder::default();
        b.add("a", "k", vec![dep("b", Needs::Id)], ());
        b.add("b", "k", vec![dep("c", Needs::Ready)], ());
        b.add("c", "k", vec![dep("a", Needs::Id)], ());
        let errs = b.build().unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].to_string(), "dependency cycle: a -> b -> c -> a");
    }
}
