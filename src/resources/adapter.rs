//! Adapts any [`Resource`] to the executor's [`Task`]: carries the node's id and tags beside
//! the kind's spec, turns the kind's diff into a plan, and carries the plan out.

use std::sync::Arc;

use async_trait::async_trait;

use super::declared::declared;
use super::template::Attr;
use super::{Cx, Duplicates, Leaving, NodeCx, Resource};
use crate::aws::calls::ANSWER_LOST;
use crate::aws::errors::ALREADY_EXISTS;
use crate::aws::tags::Tags;
use crate::diff::{needs_replacement, Changes};
use crate::error::{Failure, Step};
use crate::executor::{Live, Observation, Task};
use crate::model::{Action, Attrs, Inputs, NodePlan, NodeRecord, Output, RecordedIds, Ref};

/// Creates tried when each answer is lost: the first and two more.
const LOST_ANSWER_ATTEMPTS: u32 = 3;
/// How long a lost create's result may take to show in describe calls (EC2 documents
/// eventual consistency of seconds after a create).
const LOST_ANSWER_SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

pub struct Adapter<R> {
    node: String,
    tags: Tags,
    spec: R,
    /// What the spec reads, derived from it once ([`declared`]).
    inputs: Vec<Ref>,
    /// Its templates' `${node.attr}`, for the graph's check of what each node publishes.
    placeholders: Vec<(String, Attr)>,
}

impl<R: Resource> Adapter<R> {
    /// The node with its spec; an error names what is wrong with the spec's templates
    /// (an unknown attribute, an unclosed `${`).
    pub fn new(node: impl Into<String>, tags: Tags, spec: R) -> Result<Self, Vec<String>> {
        let declared = declared(&spec);
        if !declared.errors.is_empty() {
            return Err(declared.errors);
        }
        Ok(Adapter {
            node: node.into(),
            tags,
            spec,
            inputs: declared.refs,
            placeholders: declared.placeholders,
        })
    }

    /// Every `${node.attr}` its templates name.
    pub fn placeholders(&self) -> &[(String, Attr)] {
        &self.placeholders
    }

    fn ncx<'a>(&'a self, cx: &'a Cx) -> NodeCx<'a> {
        NodeCx::new(cx, &self.node, &self.tags)
    }

    /// `attrs`, when they identify the resource: an empty id or ARN is an error naming the
    /// node, never published to dependents nor kept in the applied record.
    fn identified(&self, attrs: Attrs) -> Result<Attrs, Failure> {
        if let Some(missing) = attrs.missing_identifier() {
            return Err(Failure::new(
                "MissingField",
                format!(
                    "{} {}: AWS returned an empty {missing} for it; nothing depending on it was started",
                    R::KIND,
                    self.node,
                ),
            ));
        }
        Ok(attrs)
    }

    /// Carries out `plan` (see [`Task::apply`]).
    async fn act(
        &self,
        cx: &Cx,
        inputs: &Inputs<'_>,
        have: &Observation,
        plan: &NodePlan,
    ) -> Result<Attrs, (Step, Failure)> {
        let ncx = self.ncx(cx);
        let r = &self.spec;
        match (&plan.action, have) {
            (Action::Create, _) => self.create(cx, inputs).await.map_err(|f| (Step::Create, f)),
            (Action::Update { changes }, Some(live)) => {
                let observed = self.state(live).map_err(|f| (Step::Update, f))?;
                r.update(&ncx, inputs, observed, changes)
                    .await
                    .map_err(|f| (Step::Update, f))
            }
            (Action::Replace { changes }, Some(live)) => {
                let what: Vec<String> = changes
                    .iter()
                    .filter(|c| c.replace)
                    .map(ToString::to_string)
                    .collect();
                let observed = self.state(live).map_err(|f| (Step::Delete, f))?;
                ncx.progress(format!(
                    "replacing ({}): deleting {}",
                    what.join("; "),
                    live.attrs.id
                ));
                r.delete(&ncx, observed)
                    .await
                    .map_err(|f| (Step::Delete, f))?;
                ncx.progress("replacing: creating");
                self.create(cx, inputs).await.map_err(|f| (Step::Create, f))
            }
            (action, _) => Err((
                Step::Update,
                Failure::new(
                    "Internal",
                    format!(
                        "{}: nothing to apply for `{}` (a bug in tap-provision)",
                        self.node,
                        action.label()
                    ),
                ),
            )),
        }
    }

    /// Creates it. When the answer of a create that AWS may have carried out was lost (the
    /// connection closed after the call went out, [`ANSWER_LOST`]), or a create answers that
    /// it is there already (the SDK repeated one whose answer was lost, or its name is held
    /// by one being deleted), looks again with fresh reads: found, it is settled like an
    /// update (the create's later steps may not have run); not found, a lost create is made
    /// again, and so is one whose name was held by one going away, waited out or gone since
    /// ([`Resource::wait_leaving`]); else "already there" fails.
    async fn create(&self, cx: &Cx, inputs: &Inputs<'_>) -> Result<Attrs, Failure> {
        let ncx = self.ncx(cx);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let f = match self.spec.create(&ncx, inputs).await {
                // What it published is in use by its dependents: never made a second time.
                Err(f) if inputs.published() => return Err(f),
                Err(f) if f.code == ANSWER_LOST && attempts < LOST_ANSWER_ATTEMPTS => f,
                Err(f) if ALREADY_EXISTS.contains(&f.code.as_str()) && attempts == 1 => f,
                other => return other,
            };
            ncx.progress(format!("{}; looking again", f.message));
            let fresh = cx.fresh();
            let again = self.ncx(&fresh);
            let mut found = self.spec.observe(&again).await?;
            if found.is_none() && f.code == ANSWER_LOST {
                // Where `observe` reads a source that lags a create (the tagging API), look
                // where nothing lags before making it again.
                found = self.spec.observe_interrupted(&again).await?;
            }
            if found.is_none() && f.code == ANSWER_LOST {
                // Describe calls may lag a create by a few seconds (EC2's eventual
                // consistency): one more look, a moment later, before making a second one.
                crate::timing::sleep(LOST_ANSWER_SETTLE).await;
                let later = cx.fresh();
                found = self.spec.observe(&self.ncx(&later)).await?;
            }
            let Some(have) = found else {
                if f.code != ANSWER_LOST {
                    // There, but not found as this node's: one going away (a killed `down`
                    // or someone asked to delete it) is waited out, or its name is free
                    // since, and it is made again; else not ours. Never a second create on
                    // a guess: a create of several calls may have made its first thing
                    // before a later call was refused.
                    match self.spec.wait_leaving(&again).await? {
                        Leaving::Waited | Leaving::NameFree => continue,
                        Leaving::Nothing => return Err(f),
                    }
                }
                continue;
            };
            let mut c = Changes::default();
            self.spec.diff(&again, inputs, &have, &mut c)?;
            let changes = c.changes;
            if changes.is_empty() {
                return self.spec.attrs(&again, &have);
            }
            if needs_replacement(&changes) {
                return Err(f.context(format!(
                    "found what it made, and it differs where only a replacement would fix it: {}",
                    changes
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                )));
            }
            return self.spec.update(&ncx, inputs, &have, &changes).await;
        }
    }

    /// A found resource as the executor sees it.
    fn live(&self, ncx: &NodeCx<'_>, have: R::Observed) -> Result<Live, Failure> {
        Ok(Live {
            attrs: self.identified(self.spec.attrs(ncx, &have)?)?,
            ready: self.spec.is_ready(&have),
            creating: self.spec.is_creating(&have),
            state: Box::new(have),
        })
    }

    fn state<'a>(&self, live: &'a Live) -> Result<&'a R::Observed, Failure> {
        live.state.downcast_ref::<R::Observed>().ok_or_else(|| {
            Failure::new(
                "Internal",
                format!(
                    "{}: observation of another kind (a bug in tap-provision)",
                    self.node
                ),
            )
        })
    }
}

#[async_trait]
impl<R: Resource> Task<Cx> for Adapter<R> {
    fn node(&self) -> &str {
        &self.node
    }

    fn kind(&self) -> &'static str {
        R::KIND
    }

    fn grants(&self) -> &'static crate::policy::Grants {
        R::GRANTS
    }

    fn name_part(&self) -> Option<&str> {
        self.spec.name_part()
    }

    fn inputs(&self) -> Vec<Ref> {
        self.inputs.clone()
    }

    async fn observe(&self, cx: &Cx) -> Result<Observation, Failure> {
        let ncx = self.ncx(cx);
        match self.spec.observe(&ncx).await? {
            Some(have) => Ok(Some(self.live(&ncx, have)?)),
            None => Ok(None),
        }
    }

    async fn reconcile(
        &self,
        cx: &Cx,
        recorded: &RecordedIds,
        found: Observation,
    ) -> Result<Observation, Failure> {
        let ncx = self.ncx(cx);
        let Some(live) = found else {
            // Not found by tags or name: its tags (or alias) were edited, or it is gone.
            return match self.spec.observe_recorded(&ncx, recorded).await? {
                Some(have) => {
                    tracing::info!(
                        "{}: found by the identifiers the applied record keeps ({})",
                        self.node,
                        recorded.id
                    );
                    Ok(Some(self.live(&ncx, have)?))
                }
                None => Ok(None),
            };
        };
        let found_id = live.attrs.id.clone();
        let have = live.state.downcast::<R::Observed>().map_err(|_| {
            Failure::new(
                "Internal",
                format!(
                    "{}: observation of another kind (a bug in tap-provision)",
                    self.node
                ),
            )
        })?;
        // Several carry its tags and the record names one of the others: that one it is.
        let is_recorded =
            |d: &R::Observed| self.spec.attrs(&ncx, d).is_ok_and(|a| a.id == recorded.id);
        let have = match ncx
            .shared::<Duplicates>()
            .swap(&self.node, is_recorded, *have)
        {
            Ok(chosen) => return Ok(Some(self.live(&ncx, chosen)?)),
            Err(have) => have,
        };
        match self.spec.observe_recorded(&ncx, recorded).await? {
            // The recorded one is gone (replaced, or deleted and made again): the record is
            // older than AWS, and the next write brings it up to date.
            None => Ok(Some(self.live(&ncx, have)?)),
            Some(_) => Err(Failure::new(
                "Conflict",
                format!(
                    "two {kind} resources claim to be {node}: {found_id} carries its tags, and {recorded} \
                     is the one last applied (the applied record names it) and still exists. \
                     tap-provision does not choose between them and changed nothing: keep the one \
                     that is the environment's and delete the other (or remove its `tap:node` tag), \
                     then run again",
                    kind = R::KIND,
                    node = self.node,
                    recorded = recorded.id,
                ),
            )),
        }
    }

    async fn find_interrupted(&self, cx: &Cx) -> Result<Observation, Failure> {
        let ncx = self.ncx(cx);
        match self.spec.observe_interrupted(&ncx).await? {
            Some(have) => {
                tracing::info!("{}: found where an interrupted create left it", self.node);
                Ok(Some(self.live(&ncx, have)?))
            }
            None => Ok(None),
        }
    }

    fn planned_attrs(&self, cx: &Cx) -> Option<Attrs> {
        self.spec.planned_attrs(&self.ncx(cx))
    }

    fn tags_read_ahead(&self, cx: &Cx) -> Option<String> {
        if !R::TAGS_READ_AHEAD {
            return None;
        }
        self.planned_attrs(cx)?.arn
    }

    fn reads_tags_in_bulk(&self) -> bool {
        R::GRANTS
            .read
            .iter()
            .any(|g| g.actions.contains(&crate::aws::bulk_tags::ACTION))
    }

    fn plan(&self, cx: &Cx, inputs: &Inputs<'_>, have: &Observation) -> Result<NodePlan, Failure> {
        let ncx = self.ncx(cx);
        let plan = |action, ignored, new_attrs| NodePlan {
            action,
            ignored,
            new_attrs,
        };
        let Some(live) = have else {
            if !self.spec.managed() {
                let message = self.spec.missing(&ncx);
                return Ok(plan(Action::Missing { message }, vec![], true));
            }
            return Ok(plan(Action::Create, vec![], true));
        };
        let mut c = Changes::default();
        self.spec.diff(&ncx, inputs, self.state(live)?, &mut c)?;
        c.operator_accepts(cx.ignored_fields(&self.node));
        let Changes { changes, ignored } = c;
        Ok(if changes.is_empty() || !self.spec.managed() {
            plan(Action::Unchanged, ignored, false)
        } else if needs_replacement(&changes) && !self.spec.replaceable() {
            plan(Action::Blocked { changes }, ignored, false)
        } else if needs_replacement(&changes) {
            plan(Action::Replace { changes }, ignored, true)
        } else {
            let new_attrs = self.spec.update_changes_attrs(&changes);
            plan(Action::Update { changes }, ignored, new_attrs)
        })
    }

    async fn apply(
        &self,
        cx: &Cx,
        inputs: &Inputs<'_>,
        have: &Observation,
        plan: &NodePlan,
    ) -> Result<Attrs, (Step, Failure)> {
        let step = match plan.action {
            Action::Create | Action::Replace { .. } => Step::Create,
            _ => Step::Update,
        };
        cx.wrote.store(true, std::sync::atomic::Ordering::Relaxed);
        let attrs = self.act(cx, inputs, have, plan).await?;
        self.identified(attrs).map_err(|f| (step, f))
    }

    async fn wait_ready(&self, cx: &Cx, attrs: Attrs) -> Result<Attrs, Failure> {
        let attrs = self.spec.wait_ready(&self.ncx(cx), attrs).await?;
        self.identified(attrs)
    }

    fn replaceable(&self) -> bool {
        self.spec.replaceable()
    }

    fn protection(&self, cx: &Cx, have: &Live) -> Option<String> {
        match self.state(have) {
            Ok(observed) => self.spec.protection(&self.ncx(cx), observed),
            // Cannot tell: protected, so `down` stops and says why.
            Err(f) => Some(f.message),
        }
    }

    fn keep_on_down(&self, cx: &Cx, have: &Live) -> Option<String> {
        if !self.spec.managed() {
            return Some(format!(
                "{} {} is not managed by tap-provision: left as it is",
                R::KIND,
                have.attrs.id
            ));
        }
        match self.state(have) {
            Ok(observed) => self.spec.keep_on_down(&self.ncx(cx), observed),
            // Cannot tell whether it holds data: kept.
            Err(f) => Some(f.message),
        }
    }

    /// Deletes the resource, then every duplicate `observe` found carrying its tags.
    async fn delete(&self, cx: &Cx, have: &Live) -> Result<(), Failure> {
        cx.wrote.store(true, std::sync::atomic::Ordering::Relaxed);
        let ncx = self.ncx(cx);
        self.spec.delete(&ncx, self.state(have)?).await?;
        let extra = ncx.shared::<Duplicates>().take(&self.node);
        let count = extra.len();
        for (i, dup) in extra.into_iter().enumerate() {
            match dup.downcast::<R::Observed>() {
                Ok(dup) => {
                    ncx.progress(format!("deleting duplicate {} of {count}", i + 1));
                    self.spec.delete(&ncx, &dup).await?;
                }
                Err(_) => ncx.note(format!(
                    "{}: a duplicate {} carrying its tags is left; delete it by hand",
                    self.node,
                    R::KIND
                )),
            }
        }
        Ok(())
    }

    async fn wait_leaving(&self, cx: &Cx) -> Result<bool, Failure> {
        Ok(self.spec.wait_leaving(&self.ncx(cx)).await? == Leaving::Waited)
    }

    fn outputs(&self, attrs: &Attrs) -> Vec<Output> {
        self.spec.outputs(attrs)
    }

    fn record(&self) -> NodeRecord {
        NodeRecord {
            kind: R::KIND.to_string(),
            spec: serde_json::to_value(&self.spec).unwrap_or_default(),
            tags: self.tags.clone(),
            ids: None,
        }
    }

    fn with_record(&self, record: &NodeRecord) -> Result<Arc<dyn Task<Cx>>, String> {
        if record.kind != R::KIND {
            return Err(format!("recorded as a {}, now a {}", record.kind, R::KIND));
        }
        let spec: R = serde_json::from_value(record.spec.clone()).map_err(|e| e.to_string())?;
        let adapter = Adapter::new(self.node.clone(), record.tags.clone(), spec)
            .map_err(|errors| errors.join("; "))?;
        Ok(Arc::new(adapter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::vpc::Vpc;

    #[test]
    fn an_empty_id_or_arn_is_never_published() {
        let spec = Vpc {
            cidr: "10.0.0.0/16".parse().unwrap(),
        };
        let a = Adapter::new("vpc", Vec::new(), spec).unwrap();
        assert!(a.identified(Attrs::id("vpc-1")).is_ok());
        let e = a.identified(Attrs::id("")).unwrap_err();
        assert_eq!(e.code, "MissingField");
        assert!(
            e.message.contains("vpc vpc: AWS returned an empty id"),
            "{e}"
        );
        let e = a.identified(Attrs::id("vpc-1").with_arn("")).unwrap_err();
        assert!(e.message.contains("empty ARN"), "{e}");
    }
}
