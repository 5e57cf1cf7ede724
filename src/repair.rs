//! What `repair` runs on each drifted node: the spec as last applied (so a pending config
//! edit is never applied), limited to the fields that also differ from the config (so it
//! never undoes a value the config already asks for).

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::{Failure, Step};
use crate::executor::{Live, Observation, Task};
use crate::model::{Action, Attrs, Inputs, NodePlan, NodeRecord, Output, RecordedIds, Ref};

pub struct RepairTask<C> {
    pub applied: Arc<dyn Task<C>>,
    pub current: Arc<dyn Task<C>>,
}

#[async_trait]
impl<C: Send + Sync + 'static> Task<C> for RepairTask<C> {
    fn node(&self) -> &str {
        self.applied.node()
    }

    fn kind(&self) -> &'static str {
        self.applied.kind()
    }

    fn grants(&self) -> &'static crate::policy::Grants {
        self.applied.grants()
    }

    /// What either spec reads: the recorded one is what runs, the config's edges order it.
    fn inputs(&self) -> Vec<Ref> {
        let mut all = self.current.inputs();
        for r in self.applied.inputs() {
            if !all.iter().any(|a| a.node == r.node) {
                all.push(r);
            }
        }
        all
    }

    async fn observe(&self, cx: &C) -> Result<Observation, Failure> {
        self.applied.observe(cx).await
    }

    async fn reconcile(
        &self,
        cx: &C,
        recorded: &RecordedIds,
        found: Observation,
    ) -> Result<Observation, Failure> {
        self.applied.reconcile(cx, recorded, found).await
    }

    async fn find_interrupted(&self, cx: &C) -> Result<Observation, Failure> {
        self.applied.find_interrupted(cx).await
    }

    fn planned_attrs(&self, cx: &C) -> Option<Attrs> {
        self.applied.planned_attrs(cx)
    }

    fn plan(&self, cx: &C, inputs: &Inputs<'_>, have: &Observation) -> Result<NodePlan, Failure> {
        let mut plan = self.applied.plan(cx, inputs, have)?;
        let current = self.current.plan(cx, inputs, have)?;
        let also_current =
            |c: &crate::diff::Change| current.action.changes().iter().any(|n| n.same_field(c));
        let keep = |changes: &[crate::diff::Change]| -> Vec<crate::diff::Change> {
            changes
                .iter()
                .filter(|c| also_current(c))
                .cloned()
                .collect()
        };
        plan.action = match &plan.action {
            Action::Update { changes } | Action::Replace { changes } => {
                let kept = keep(changes);
                if kept.is_empty() {
                    Action::Unchanged
                } else if kept.iter().any(|c| c.replace) {
                    Action::Replace { changes: kept }
                } else {
                    Action::Update { changes: kept }
                }
            }
            other => other.clone(),
        };
        Ok(plan)
    }

    async fn apply(
        &self,
        cx: &C,
        inputs: &Inputs<'_>,
        have: &Observation,
        plan: &NodePlan,
    ) -> Result<Attrs, (Step, Failure)> {
        self.applied.apply(cx, inputs, have, plan).await
    }

    async fn wait_ready(&self, cx: &C, attrs: Attrs) -> Result<Attrs, Failure> {
        self.applied.wait_ready(cx, attrs).await
    }

    fn replaceable(&self) -> bool {
        self.applied.replaceable()
    }

    fn protection(&self, cx: &C, have: &Live) -> Option<String> {
        self.applied.protection(cx, have)
    }

    fn keep_on_down(&self, cx: &C, have: &Live) -> Option<String> {
        self.applied.keep_on_down(cx, have)
    }

    async fn delete(&self, cx: &C, have: &Live) -> Result<(), Failure> {
        self.applied.delete(cx, have).await
    }

    fn outputs(&self, attrs: &Attrs) -> Vec<Output> {
        self.applied.outputs(attrs)
    }

    fn record(&self) -> NodeRecord {
        self.applied.record()
    }

    fn with_record(&self, record: &NodeRecord) -> Result<Arc<dyn Task<C>>, String> {
        self.applied.with_record(record)
    }
}
