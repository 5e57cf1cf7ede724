//! One module per resource kind, all the same shape: the [`Resource`] trait. The executor
//! sees them only through the object-safe [`Node`] adapter.

pub mod aurora_cluster;
pub mod aurora_instance;
pub mod backup_plan;
pub mod backup_vault;
pub mod db_subnet_group;
pub mod flow_log;
pub mod iam_role;
pub mod internet_gateway;
pub mod kms_key;
pub mod log_group;
pub mod nat_gateway;
pub mod route_table;
pub mod security_group;
pub mod subnet;
pub mod vpc;

mod eip;
pub use eip::ElasticIp;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::aws::errors::OrAbsent;
use crate::aws::inventory::Ec2Inventory;
use crate::aws::{client_token, tags, Clients};
use crate::config::EnvConfig;
use crate::diff::{needs_replacement, Change};
use crate::error::{Failure, NodeError, Step};
use crate::output::Reporter;

/// Identifiers a resource publishes to its dependents once its create call returned.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Ids {
    /// The primary id: `vpc-…`, `subnet-…`, a key id, a log group name, a role name.
    pub id: String,
    /// The ARN, where dependents need one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
}

impl Ids {
    pub fn id(id: impl Into<String>) -> Ids {
        Ids {
            id: id.into(),
            arn: None,
        }
    }

    pub fn arn(&self, node: &str) -> Result<&str, Failure> {
        self.arn
            .as_deref()
            .ok_or_else(|| Failure::new("MissingField", format!("{node} published no ARN")))
    }
}

/// What `down` was told about data and protection.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunFlags {
    /// `--destroy-data`: no final snapshot; the KMS key, backup vault and recovery points go.
    pub destroy_data: bool,
    /// `--disable-protection`: turn deletion protection off, then delete.
    pub disable_protection: bool,
}

/// Everything a run shares: clients, the environment, the account, batched finds, the ids
/// published so far, the reporter.
pub struct Cx {
    pub clients: Clients,
    pub env: Arc<EnvConfig>,
    pub account_id: String,
    /// `aws`, `aws-cn`, `aws-us-gov`: from the caller's ARN.
    pub partition: String,
    pub ec2: Ec2Inventory,
    /// The cluster's instances, described once per run for every instance node.
    pub db_instances: tokio::sync::OnceCell<Vec<aws_sdk_rds::types::DbInstance>>,
    pub reporter: Arc<Reporter>,
    pub flags: RunFlags,
    /// Bounds the number of nodes issuing API calls at once (`--parallelism`).
    pub permits: Arc<Semaphore>,
    board: Mutex<HashMap<String, Ids>>,
}

impl Cx {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        clients: Clients,
        env: Arc<EnvConfig>,
        account_id: String,
        partition: String,
        reporter: Arc<Reporter>,
        flags: RunFlags,
        parallelism: usize,
    ) -> Cx {
        let ec2 = Ec2Inventory::new(clients.ec2.clone(), env.full_name());
        Cx {
            clients,
            env,
            account_id,
            partition,
            ec2,
            db_instances: tokio::sync::OnceCell::new(),
            reporter,
            flags,
            permits: Arc::new(Semaphore::new(parallelism.max(1))),
            board: Mutex::new(HashMap::new()),
        }
    }

    /// Every node's published ids, for the run's outputs.
    pub fn published(&self) -> BTreeMap<String, Ids> {
        self.board
            .lock()
            .map(|b| b.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    fn publish(&self, node: &str, ids: Ids) {
        if let Ok(mut b) = self.board.lock() {
            b.insert(node.to_string(), ids);
        }
    }
}

/// The context one node's steps run in.
pub struct NodeCx<'a> {
    pub cx: &'a Cx,
    pub node: &'a str,
}

impl NodeCx<'_> {
    pub fn env(&self) -> &EnvConfig {
        &self.cx.env
    }

    pub fn env_full(&self) -> String {
        self.cx.env.full_name()
    }

    /// The tags this node's resource carries.
    pub fn tags(&self) -> Vec<(String, String)> {
        tags::standard(&self.cx.env, self.node)
    }

    /// The idempotency token of this node's create call.
    pub fn token(&self) -> String {
        client_token(&self.env_full(), self.node)
    }

    /// The ids a dependency published. The graph guarantees it ran first.
    pub fn ids_of(&self, dep: &str) -> Result<Ids, Failure> {
        self.cx
            .board
            .lock()
            .ok()
            .and_then(|b| b.get(dep).cloned())
            .ok_or_else(|| {
                Failure::new(
                    "MissingDependency",
                    format!("dependency `{dep}` has published no ids (a graph edge is missing)"),
                )
            })
    }

    /// Tells the reporter what this node is doing now.
    pub fn progress(&self, message: impl Into<String>) {
        self.cx.reporter.node_progress(self.node, &message.into());
    }

    pub fn arn(&self, service: &str, resource: &str) -> String {
        format!(
            "arn:{}:{service}:{}:{}:{resource}",
            self.cx.partition, self.cx.env.region, self.cx.account_id
        )
    }
}

/// One kind of AWS resource. Each step may run twice, or be cancelled at any `.await`, and
/// the next run still converges: `find` sees what a half-finished `create` left (it is
/// tagged in the create call), and `diff` names what is missing.
#[async_trait]
pub trait Resource: Send + Sync + 'static {
    /// What `find` observed of the live resource.
    type Observed: Send + Sync;

    /// Kind name for messages and the graph, e.g. `nat_gateway`.
    const KIND: &'static str;

    /// True for kinds that can carry deletion protection (see `protection`).
    const PROTECTABLE: bool = false;

    /// The live resource, by tags or deterministic name; `None` when absent.
    async fn find(&self, cx: &NodeCx<'_>) -> Result<Option<Self::Observed>, Failure>;

    /// Identifiers of a found resource.
    fn ids(&self, cx: &NodeCx<'_>, have: &Self::Observed) -> Result<Ids, Failure>;

    /// What differs between the config and `have`. Reads dependencies' ids, calls no AWS.
    fn diff(&self, cx: &NodeCx<'_>, have: &Self::Observed) -> Result<Vec<Change>, Failure>;

    /// Creates it, tagged, and returns as soon as its identifiers are known.
    async fn create(&self, cx: &NodeCx<'_>) -> Result<Ids, Failure>;

    /// True when the found resource is already ready, so `up` need not poll it again.
    fn is_ready(&self, _have: &Self::Observed) -> bool {
        true
    }

    /// Waits until it is ready for dependents that need readiness. Default: ready at once.
    async fn wait_ready(&self, _cx: &NodeCx<'_>, _ids: &Ids) -> Result<(), Failure> {
        Ok(())
    }

    /// Puts back what `diff` found; never called with changes that need replacement.
    async fn update(
        &self,
        cx: &NodeCx<'_>,
        have: &Self::Observed,
        changes: &[Change],
    ) -> Result<(), Failure>;

    /// Deletes it and waits until it is gone. A resource already gone is success.
    async fn delete(&self, cx: &NodeCx<'_>, have: &Self::Observed) -> Result<(), Failure>;

    /// Deletion protection that stops `down` before it deletes anything, unless
    /// `--disable-protection`: what is protected, in words.
    fn protection(&self, _cx: &NodeCx<'_>, _have: &Self::Observed) -> Option<String> {
        None
    }

    /// Why `down` keeps it (data, unless `--destroy-data`); `None` to delete.
    fn keep_on_down(&self, _cx: &NodeCx<'_>, _have: &Self::Observed) -> Option<String> {
        None
    }
}

/// What happened to one node in a run.
#[derive(Debug)]
pub enum Outcome {
    Created(Ids),
    Updated(Ids, Vec<Change>),
    Unchanged(Ids),
    Deleted,
    /// `down` found nothing to delete.
    Absent,
    /// `down` kept it on purpose, with the reason and how to remove it.
    Kept(String),
    Failed(NodeError),
    Skipped(String),
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Created(_) => "created",
            Outcome::Updated(..) => "updated",
            Outcome::Unchanged(_) => "unchanged",
            Outcome::Deleted => "deleted",
            Outcome::Absent => "absent",
            Outcome::Kept(_) => "kept",
            Outcome::Failed(_) => "failed",
            Outcome::Skipped(_) => "skipped",
        }
    }

    /// True when the run changed something in AWS.
    pub fn is_change(&self) -> bool {
        matches!(
            self,
            Outcome::Created(_) | Outcome::Updated(..) | Outcome::Deleted
        )
    }
}

/// The executor's view of a node: two entry points returning boxed futures.
#[async_trait]
pub trait Node: Send + Sync {
    /// Converge: find, then create or update, publish ids (`ids_known`), wait until ready.
    async fn up(&self, cx: &NodeCx<'_>, ids_known: &(dyn Fn() + Send + Sync)) -> Outcome;
    /// Remove: find, then delete (or keep data), waiting until it is gone.
    async fn down(&self, cx: &NodeCx<'_>) -> Outcome;
    /// What deletion protection would stop `down` here (finds only protectable kinds).
    async fn protection(&self, cx: &NodeCx<'_>) -> Result<Option<String>, NodeError>;
}

/// Adapts any [`Resource`] to [`Node`], attaching node and step to every failure.
pub struct Adapter<R>(pub R);

fn node_error<R: Resource>(cx: &NodeCx<'_>, step: Step, failure: Failure) -> Outcome {
    Outcome::Failed(NodeError {
        env: cx.env_full(),
        node: cx.node.to_string(),
        kind: R::KIND,
        step,
        failure,
    })
}

/// What the converge step did, before readiness.
enum Converged {
    Created,
    Unchanged,
    Updated(Vec<Change>),
}

impl<R: Resource> Adapter<R> {
    /// Find, then create or update. Returns the ids, what happened, and whether the
    /// resource is already known to be ready (found unchanged and ready: no poll needed).
    async fn converge(&self, cx: &NodeCx<'_>) -> Result<(Ids, Converged, bool), (Step, Failure)> {
        let r = &self.0;
        let Some(have) = r.find(cx).await.map_err(|e| (Step::Find, e))? else {
            cx.progress("creating");
            let ids = r.create(cx).await.map_err(|e| (Step::Create, e))?;
            return Ok((ids, Converged::Created, false));
        };
        let ids = r.ids(cx, &have).map_err(|e| (Step::Find, e))?;
        let changes = r.diff(cx, &have).map_err(|e| (Step::Find, e))?;
        if changes.is_empty() {
            return Ok((ids, Converged::Unchanged, r.is_ready(&have)));
        }
        if needs_replacement(&changes) {
            let what: Vec<String> = changes
                .iter()
                .filter(|c| c.replace)
                .map(ToString::to_string)
                .collect();
            return Err((
                Step::Update,
                Failure::new(
                    "NeedsReplacement",
                    format!(
                        "{} ({}) differs in a way AWS cannot change in place: {}; restore the config value, or remove the resource and run `up` again",
                        cx.node,
                        ids.id,
                        what.join("; ")
                    ),
                ),
            ));
        }
        cx.progress(format!("updating {} field(s)", changes.len()));
        r.update(cx, &have, &changes)
            .await
            .map_err(|e| (Step::Update, e))?;
        Ok((ids, Converged::Updated(changes), false))
    }
}

#[async_trait]
impl<R: Resource> Node for Adapter<R> {
    async fn up(&self, cx: &NodeCx<'_>, ids_known: &(dyn Fn() + Send + Sync)) -> Outcome {
        let permit = cx.cx.permits.acquire().await;
        let (ids, converged, ready) = match self.converge(cx).await {
            Ok(done) => done,
            Err((step, e)) => return node_error::<R>(cx, step, e),
        };
        // Identifiers are known: Needs::Id dependents may start while this one waits.
        cx.cx.publish(cx.node, ids.clone());
        drop(permit);
        ids_known();
        if !ready {
            if let Err(e) = self.0.wait_ready(cx, &ids).await {
                return node_error::<R>(cx, Step::Wait, e);
            }
        }
        match converged {
            Converged::Created => Outcome::Created(ids),
            Converged::Unchanged => Outcome::Unchanged(ids),
            Converged::Updated(changes) => Outcome::Updated(ids, changes),
        }
    }

    async fn protection(&self, cx: &NodeCx<'_>) -> Result<Option<String>, NodeError> {
        if !R::PROTECTABLE {
            return Ok(None);
        }
        match self.0.find(cx).await {
            Ok(Some(have)) => Ok(self.0.protection(cx, &have)),
            Ok(None) => Ok(None),
            Err(failure) => Err(NodeError {
                env: cx.env_full(),
                node: cx.node.to_string(),
                kind: R::KIND,
                step: Step::Find,
                failure,
            }),
        }
    }

    async fn down(&self, cx: &NodeCx<'_>) -> Outcome {
        let r = &self.0;
        let _permit = cx.cx.permits.acquire().await;
        let have = match r.find(cx).await {
            Ok(Some(h)) => h,
            Ok(None) => return Outcome::Absent,
            Err(e) => return node_error::<R>(cx, Step::Find, e),
        };
        if let Some(reason) = r.keep_on_down(cx, &have) {
            return Outcome::Kept(reason);
        }
        cx.progress("deleting");
        match r.delete(cx, &have).await {
            Ok(()) => Outcome::Deleted,
            Err(e) => node_error::<R>(cx, Step::Delete, e),
        }
    }
}

/// Picks the one live resource among those tagged as this node, warning about duplicates
/// (a create retried on an API that ignores idempotency tokens).
pub fn single<'a, T>(cx: &NodeCx<'_>, kind: &str, found: Vec<&'a T>) -> Option<&'a T> {
    if found.len() > 1 {
        tracing::warn!(
            node = cx.node,
            "{} {kind} resources carry this node's tags; using the first",
            found.len()
        );
        cx.cx.reporter.warn(&format!(
            "{}: {} {kind} resources carry this node's tags; using the first",
            cx.node,
            found.len()
        ));
    }
    found.into_iter().next()
}

/// Re-applies this node's tags to an EC2 resource when `changes` name a tag.
pub async fn retag_ec2(cx: &NodeCx<'_>, id: &str, changes: &[Change]) -> Result<(), Failure> {
    if changes.iter().any(|c| c.field.starts_with("tags.")) {
        cx.cx
            .clients
            .ec2
            .create_tags()
            .resources(id)
            .set_tags(Some(tags::ec2_tags(&cx.tags())))
            .send()
            .await?;
    }
    Ok(())
}

/// Runs an EC2 delete, treating "not found" as success and retrying `DependencyViolation`
/// (and the other `retry_codes`) while ENIs and associations drain, up to `budget`.
pub async fn ec2_delete<F, Fut, T>(
    budget: std::time::Duration,
    retry_codes: &[&str],
    mut call: F,
) -> Result<(), Failure>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Failure>>,
{
    crate::aws::retry::eventually(
        budget,
        |f| f.code == "DependencyViolation" || retry_codes.contains(&f.code.as_str()),
        || {
            let fut = call();
            async move { fut.await.or_absent().map(|_| ()) }
        },
    )
    .await
}
