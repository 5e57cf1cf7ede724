//! A pure ready-queue over the step graph, in the manner of cargo's `DependencyQueue`.
//!
//! The executor tells it which milestone a node reached (`finish`) or that it failed
//! (`fail`); the queue answers which nodes may start now and which can never start.

use super::{Needs, NodeIx};

/// What a running node has reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Milestone {
    /// Its identifiers are known (the create call returned, or it was found).
    Ids,
    /// It is ready (its waiter succeeded); implies `Ids`.
    Ready,
}

impl Milestone {
    fn meets(self, needs: Needs) -> bool {
        match needs {
            Needs::Id => true,
            Needs::Ready => self == Milestone::Ready,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting,
    Started,
    Skipped,
}

#[derive(Debug)]
pub struct DependencyQueue {
    /// For each node: dependencies not yet met.
    unmet: Vec<usize>,
    /// For each dependency: (dependent, what it needs).
    dependents: Vec<Vec<(NodeIx, Needs)>>,
    /// Highest milestone each node reached.
    reached: Vec<Option<Milestone>>,
    state: Vec<State>,
    /// Length of the longest chain of dependents behind each node: work that waits on it.
    priority: Vec<usize>,
}

impl DependencyQueue {
    /// `edges` are (dependent, dependency, needs). The graph must be acyclic.
    pub fn new(len: usize, edges: impl IntoIterator<Item = (NodeIx, NodeIx, Needs)>) -> Self {
        let mut unmet = vec![0; len];
        let mut dependents = vec![Vec::new(); len];
        for (node, dep, needs) in edges {
            unmet[node] += 1;
            dependents[dep].push((node, needs));
        }
        let mut priority = vec![None; len];
        fn depth(
            i: usize,
            dependents: &[Vec<(NodeIx, Needs)>],
            memo: &mut Vec<Option<usize>>,
        ) -> usize {
            if let Some(d) = memo[i] {
                return d;
            }
            let d = dependents[i]
                .iter()
                .map(|&(n, _)| 1 + depth(n, dependents, memo))
                .max()
                .unwrap_or(0);
            memo[i] = Some(d);
            d
        }
        for i in 0..len {
            depth(i, &dependents, &mut priority);
        }
        DependencyQueue {
            unmet,
            dependents,
            reached: vec![None; len],
            state: vec![State::Waiting; len],
            priority: priority.into_iter().map(|p| p.unwrap_or(0)).collect(),
        }
    }

    /// Nodes whose dependencies are all met and that have not started yet, longest chain
    /// first. Each is returned once: it counts as started from here on.
    pub fn dequeue_ready(&mut self) -> Vec<NodeIx> {
        let mut ready: Vec<NodeIx> = (0..self.unmet.len())
            .filter(|&i| self.state[i] == State::Waiting && self.unmet[i] == 0)
            .collect();
        ready.sort_by_key(|&i| (std::cmp::Reverse(self.priority[i]), i));
        for &i in &ready {
            self.state[i] = State::Started;
        }
        ready
    }

    /// The length of the longest chain of dependents behind `node`: how much work waits on it.
    pub fn priority(&self, node: NodeIx) -> usize {
        self.priority.get(node).copied().unwrap_or(0)
    }

    /// Records that `node` reached `milestone`, meeting the edges that needed it.
    pub fn finish(&mut self, node: NodeIx, milestone: Milestone) {
        let before = self.reached[node];
        if before >= Some(milestone) {
            return;
        }
        self.reached[node] = Some(milestone);
        for &(dependent, needs) in &self.dependents[node] {
            let was_met = before.is_some_and(|b| b.meets(needs));
            if milestone.meets(needs) && !was_met {
                self.unmet[dependent] -= 1;
            }
        }
    }

    /// Records that `node` failed. Returns every node that can now never start (its unmet
    /// dependency chain leads to `node`), each marked skipped. With `keep_met`, the failed
    /// node's own edges that its last milestone met stay met (it failed after it was made:
    /// its readiness wait); without, every node still waiting on it is skipped.
    pub fn fail(&mut self, node: NodeIx, keep_met: bool) -> Vec<NodeIx> {
        let mut skipped = Vec::new();
        let mut stack = vec![node];
        while let Some(n) = stack.pop() {
            for &(dependent, needs) in &self.dependents[n] {
                // The failed node's own edges that its last milestone met stay met.
                let met = keep_met && n == node && self.reached[n].is_some_and(|m| m.meets(needs));
                if met || self.state[dependent] != State::Waiting {
                    continue;
                }
                self.state[dependent] = State::Skipped;
                skipped.push(dependent);
                stack.push(dependent);
            }
        }
        skipped
    }

    /// Marks every node that has not started as skipped (cancellation); returns them.
    pub fn skip_all_waiting(&mut self) -> Vec<NodeIx> {
        let waiting: Vec<NodeIx> = (0..self.state.len())
            .filter(|&i| self.state[i] == State::Waiting)
            .collect();
        for &i in &waiting {
            self.state[i] = State::Skipped;
        }
        waiting
    }

    /// True when no node is left waiting.
    pub fn is_drained(&self) -> bool {
        self.state.iter().all(|s| *s != State::Waiting)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // vpc <-(id)- subnet <-(id)- nat <-(ready)- app ; vpc <-(id)- sg
    const VPC: usize = 0;
    const SUBNET: usize = 1;
    const NAT: usize = 2;
    const APP: usize = 3;
    const SG: usize = 4;

    fn queue() -> DependencyQueue {
        DependencyQueue::new(
            5,
            [
                (SUBNET, VPC, Needs::Id),
                (NAT, SUBNET, Needs::Id),
                (APP, NAT, Needs::Ready),
                (SG, VPC, Needs::Id),
            ],
        )
    }

    #[test]
    fn id_edges_start_after_ids_ready_edges_wait() {
        let mut q = queue();
        assert_eq!(q.dequeue_ready(), vec![VPC]);
        assert!(q.dequeue_ready().is_empty(), "each node is handed out once");
        q.finish(VPC, Milestone::Ids);
        // The subnet has the longer chain behind it, so it comes first.
        assert_eq!(q.dequeue_ready(), vec![SUBNET, SG]);
        q.finish(SUBNET, Milestone::Ids);
        assert_eq!(q.dequeue_ready(), vec![NAT]);
        q.finish(NAT, Milestone::Ids);
        assert!(
            q.dequeue_ready().is_empty(),
            "app needs the NAT ready, not only its id"
        );
        q.finish(NAT, Milestone::Ready);
        assert_eq!(q.dequeue_ready(), vec![APP]);
        assert!(q.is_drained());
    }

    #[test]
    fn ready_counts_once_even_after_ids() {
        let mut q = queue();
        q.dequeue_ready();
        q.finish(VPC, Milestone::Ids);
        q.finish(VPC, Milestone::Ready);
        q.finish(VPC, Milestone::Ready);
        assert_eq!(q.dequeue_ready(), vec![SUBNET, SG]);
        q.finish(SUBNET, Milestone::Ready);
        assert_eq!(q.dequeue_ready(), vec![NAT]);
    }

    #[test]
    fn failure_skips_only_dependents() {
        let mut q = queue();
        q.dequeue_ready();
        q.finish(VPC, Milestone::Ids);
        q.dequeue_ready();
        let mut skipped = q.fail(SUBNET, true);
        skipped.sort();
        assert_eq!(skipped, vec![NAT, APP]);
        assert!(
            q.is_drained(),
            "the security group started, nothing is left waiting"
        );
    }

    #[test]
    fn failure_after_ids_keeps_id_dependents() {
        let mut q = queue();
        q.dequeue_ready();
        q.finish(VPC, Milestone::Ids);
        q.dequeue_ready();
        q.finish(SUBNET, Milestone::Ids);
        q.dequeue_ready();
        q.finish(NAT, Milestone::Ids);
        // The NAT's wait failed: the app needed it ready, so it is skipped.
        assert_eq!(q.fail(NAT, true), vec![APP]);
    }

    #[test]
    fn failure_while_being_made_skips_what_has_not_started() {
        let mut q = queue();
        q.dequeue_ready();
        // The VPC published its id from its create call, then a settings call failed.
        q.finish(VPC, Milestone::Ids);
        let mut skipped = q.fail(VPC, false);
        skipped.sort();
        assert_eq!(skipped, vec![SUBNET, NAT, APP, SG]);
        assert!(q.dequeue_ready().is_empty());
        assert!(q.is_drained());
    }

    #[test]
    fn skip_all_waiting_on_cancel() {
        let mut q = queue();
        q.dequeue_ready();
        let mut rest = q.skip_all_waiting();
        rest.sort();
        assert_eq!(rest, vec![SUBNET, NAT, APP, SG]);
        assert!(q.is_drained());
    }

    #[test]
    fn reversed_edges_for_teardown() {
        // Teardown: dependents first. Edges (dependency, dependent).
        let mut q = DependencyQueue::new(
            3,
            [(0, 1, Needs::Ready), (1, 2, Needs::Ready)], // 0 after 1 after 2
        );
        assert_eq!(q.dequeue_ready(), vec![2]);
        q.finish(2, Milestone::Ids);
        assert!(q.dequeue_ready().is_empty());
        q.finish(2, Milestone::Ready);
        assert_eq!(q.dequeue_ready(), vec![1]);
    }
}
