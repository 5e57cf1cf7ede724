//! One module per resource kind, all the same shape: the [`Resource`] trait. The executor
//! sees them only through [`Adapter`], its [`Task`](crate::executor::Task).
//!
//! A kind's struct is its node's whole desired spec: built from the config in `stack/`,
//! serialized into the applied record, and read back by `drift` and `repair`. So a kind
//! reads the environment only through [`Scope`] (names, account, region), never the config.

mod adapter;
pub mod aurora_cluster;
pub mod aurora_instance;
pub mod backup_plan;
pub mod backup_vault;
pub mod bucket_policy;
pub mod certificate;
pub mod dashboard;
pub mod db_subnet_group;
pub mod declared;
pub mod distribution;
pub mod dns_record;
pub mod ecs_cluster;
pub mod ecs_service;
pub mod eip;
pub mod flow_log;
pub mod hosted_zone;
pub mod iam_role;
pub mod internet_gateway;
pub mod kms_key;
pub mod listener;
pub mod load_balancer;
pub mod log_group;
pub mod managed_policy;
pub mod metric_alarm;
pub mod nat_gateway;
pub mod origin_access;
pub mod route_table;
pub mod s3_bucket;
pub mod schedule;
pub mod schedule_group;
pub mod secret;
pub mod security_group;
pub mod service_scaling;
pub mod sns_topic;
pub mod subnet;
pub mod target_group;
pub mod task_definition;
pub mod template;
pub mod vpc;

pub use adapter::Adapter;

use std::any::Any;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::aws::ec2::Ec2Item;
use crate::aws::tags::Tags;
use crate::aws::wait::{self, Poll};
use crate::aws::{client_token, Clients, Shared};
use crate::diff::{Change, Changes};
use crate::error::Failure;
use crate::model::{Attrs, Events, Inputs, Output, RecordedIds, RunFlags};

/// Who and where the environment is: everything a kind may know of it besides its spec.
#[derive(Debug, Clone)]
pub struct Scope {
    pub project: String,
    /// `prod`.
    pub env: String,
    /// `<project>-<env>`, the environment's identity on every resource.
    pub env_full: String,
    pub region: String,
    pub account: String,
    /// `aws`, `aws-cn`, `aws-us-gov`: from the caller's ARN.
    pub partition: String,
}

impl Scope {
    /// An ARN in the environment's region and account.
    pub fn arn(&self, service: &str, resource: &str) -> String {
        format!(
            "arn:{}:{service}:{}:{}:{resource}",
            self.partition, self.region, self.account
        )
    }

    /// The KMS alias of the environment's customer-managed key.
    pub fn kms_alias(&self) -> String {
        format!("alias/{}", self.env_full)
    }

    /// The DNS suffix of the partition's service endpoints: `amazonaws.com`, or
    /// `amazonaws.com.cn` in China.
    pub fn dns_suffix(&self) -> &'static str {
        dns_suffix(&self.partition)
    }

    /// The hosted zone every CloudFront distribution's alias records name, in this partition.
    pub fn cloudfront_zone_id(&self) -> &'static str {
        match self.partition.as_str() {
            "aws-cn" => "Z3RFFRIM2A3IF5",
            _ => "Z2FDTNDATAQYW2",
        }
    }
}

/// The DNS suffix of `partition`'s service endpoints (pure).
pub fn dns_suffix(partition: &str) -> &'static str {
    match partition {
        "aws-cn" => "amazonaws.com.cn",
        _ => "amazonaws.com",
    }
}

/// Everything a run shares: clients, scope, settings, per-run caches, the events sink.
/// A resource's live tags, as compared.
pub type TagMap = std::collections::BTreeMap<String, String>;

pub struct Cx {
    pub aws: Clients,
    pub scope: Scope,
    /// Upper bound of any single readiness wait (`timeouts.wait_seconds`).
    pub wait_timeout: Duration,
    pub flags: RunFlags,
    /// Unique to this run (its start, in nanoseconds): tokens of APIs that must never see a
    /// token twice once the resource is gone ([`NodeCx::run_token`]).
    pub run_id: String,
    /// Per-run caches of batched reads, one per type ([`Shared`]).
    pub shared: Shared,
    pub events: Arc<dyn Events>,
    /// `[repair] ignore`: `node.field` entries the operator accepts drifting; no plan acts
    /// on them ([`Changes::operator_accepts`]).
    pub ignore: Arc<Vec<String>>,
    /// Set once the run is interrupted: every readiness wait ends at its next poll
    /// ([`crate::aws::wait::STOPPED`]).
    pub stop: Arc<std::sync::atomic::AtomicBool>,
    /// Set once a node of the run acts on its resource: from then on nodes read their own
    /// tags rather than in bulk ([`Cx::tags_in_bulk`]), as the tagging API may not show the
    /// run's own writes yet (a repair's confirming look, a look for what a lost create made).
    pub wrote: Arc<std::sync::atomic::AtomicBool>,
}

impl Cx {
    /// The same run context with empty caches, for a second pass of reads.
    pub fn fresh(&self) -> Cx {
        Cx {
            aws: self.aws.clone(),
            scope: self.scope.clone(),
            wait_timeout: self.wait_timeout,
            flags: self.flags,
            run_id: self.run_id.clone(),
            shared: Shared::default(),
            events: self.events.clone(),
            ignore: self.ignore.clone(),
            stop: self.stop.clone(),
            wrote: self.wrote.clone(),
        }
    }

    /// Whether a node of this run acted on its resource yet.
    pub fn wrote(&self) -> bool {
        self.wrote.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether tags may be read in bulk ([`crate::aws::bulk_tags`]): until this run writes.
    pub fn tags_in_bulk(&self) -> bool {
        !self.wrote()
    }

    /// Asks now for the tags of `arns` in bulk ([`crate::aws::bulk_tags::prefetch`]), ARNs
    /// known before the nodes that read them find them; nothing once this run wrote.
    pub fn read_tags_ahead(&self, arns: Vec<String>) {
        if self.tags_in_bulk() {
            crate::aws::bulk_tags::prefetch(&self.shared.get(), &self.aws, arns);
        }
    }

    /// Tells the nodes which of them the applied record names, read before the look
    /// started ([`NodeCx::recorded`]); `names` empty when there is no record (a first run).
    pub fn record_names(&self, names: std::collections::BTreeSet<String>) {
        // Set once per look: a second call (none is made) keeps the first.
        let _ = self.shared.get::<RecordNames>().0.set(names);
    }

    /// The fields of `node` that `[repair] ignore` lists.
    pub fn ignored_fields<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.ignore.iter().filter_map(move |entry| {
            entry
                .split_once('.')
                .filter(|(n, _)| *n == node)
                .map(|(_, field)| field)
        })
    }
}

/// The nodes the applied record names (applied, or started by a run that stopped), when the
/// run read the record before its look ([`Cx::record_names`]).
#[derive(Default)]
struct RecordNames(std::sync::OnceLock<std::collections::BTreeSet<String>>);

/// The context one node's steps run in.
pub struct NodeCx<'a> {
    pub cx: &'a Cx,
    pub node: &'a str,
    tags: &'a Tags,
}

impl<'a> NodeCx<'a> {
    pub fn new(cx: &'a Cx, node: &'a str, tags: &'a Tags) -> Self {
        NodeCx { cx, node, tags }
    }

    pub fn aws(&self) -> &'a Clients {
        &self.cx.aws
    }

    pub fn scope(&self) -> &'a Scope {
        &self.cx.scope
    }

    pub fn env_full(&self) -> &'a str {
        &self.cx.scope.env_full
    }

    /// The tags this node's resource carries.
    pub fn tags(&self) -> &'a Tags {
        self.tags
    }

    /// The idempotency token of this node's create call, from what the call depends on
    /// (see [`client_token`]), at most `max_len` characters.
    pub fn token(&self, parts: &[&str], max_len: usize) -> String {
        client_token(self.env_full(), self.node, parts, max_len)
    }

    /// A token unique to this run, as hex only (ACM allows `\w{1,32}`): SDK retries within
    /// the run reuse it; another run, which first finds what this one made by its tags or
    /// name, never does, so a resource deleted in between is never answered again (ACM, for
    /// an hour, and Route53 and CloudFront, forever, return or refuse a token seen before).
    pub fn run_token(&self, parts: &[&str]) -> String {
        let mut all: Vec<&str> = parts.to_vec();
        all.push(&self.cx.run_id);
        let token = client_token(self.env_full(), self.node, &all, 64);
        token.rsplit('-').next().unwrap_or(&token).to_string()
    }

    pub fn arn(&self, service: &str, resource: &str) -> String {
        self.cx.scope.arn(service, resource)
    }

    pub fn shared<T: Default + Send + Sync + 'static>(&self) -> Arc<T> {
        self.cx.shared.get::<T>()
    }

    /// Whether the applied record names this node, when the run read the record before this
    /// look (`None` when it did not). Only a hint, for reads that cost less gathered with
    /// others when the resources exist and less alone when they do not (a first run): never
    /// what decides whether a resource exists.
    pub fn recorded(&self) -> Option<bool> {
        self.shared::<RecordNames>()
            .0
            .get()
            .map(|names| names.contains(self.node))
    }

    /// The tags of `arn`: from the run's bulk read ([`crate::aws::bulk_tags`]) when it
    /// answers for it, else from `own`, the node's read with its service's call. `T` is what
    /// `own` answers: the tags, or `Option` of them where its read can find the resource gone
    /// (`None`). Only `own` fails: a bulk read that fails leaves it to `own`.
    pub async fn tags_of<T, F>(&self, arn: &str, own: F) -> Result<T, Failure>
    where
        T: From<TagMap>,
        F: std::future::Future<Output = Result<T, Failure>>,
    {
        if self.cx.tags_in_bulk() {
            if let Some(tags) = crate::aws::bulk_tags::of(self.shared(), &self.cx.aws, arn).await {
                return Ok(T::from(tags));
            }
        }
        own.await
    }

    /// Tells the reporter what this node is doing now.
    pub fn progress(&self, message: impl AsRef<str>) {
        self.cx.events.node_progress(self.node, message.as_ref());
    }

    /// Something the user should know after the run.
    pub fn note(&self, message: impl AsRef<str>) {
        self.cx.events.note(message.as_ref());
    }

    /// The one live EC2 resource tagged as this node; warns when there are several
    /// (a create retried on an API that ignores idempotency tokens).
    pub async fn ec2_find<T: Ec2Item>(&self, what: &str) -> Result<Option<T>, Failure> {
        let found = crate::aws::ec2::tagged_as::<T>(
            &self.cx.shared,
            &self.cx.aws.ec2,
            self.env_full(),
            self.node,
        )
        .await?;
        Ok(self.single(what, found))
    }

    /// The EC2 resource the applied record names, whatever its tags ([`Resource::observe_recorded`]).
    pub async fn ec2_recorded<T: Ec2Item>(
        &self,
        what: &str,
        recorded: &RecordedIds,
    ) -> Result<Option<T>, Failure> {
        let found = crate::aws::ec2::by_id::<T>(&self.cx.aws.ec2, &recorded.id).await?;
        if let Some(item) = &found {
            self.not_claimed(what, &recorded.id, &crate::aws::tags::from_ec2(item.tags()))?;
        }
        Ok(found)
    }

    /// An error when a resource found by the applied record's identifiers now says it
    /// belongs to another environment or node.
    pub fn not_claimed(
        &self,
        what: &str,
        id: &str,
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), Failure> {
        match crate::aws::tags::claimed_elsewhere(tags, self.env_full(), self.node) {
            None => Ok(()),
            Some(says) => Err(crate::aws::tags::claimed_error(
                what,
                id,
                self.env_full(),
                self.node,
                &says,
            )),
        }
    }

    /// Picks the one resource among several carrying this node's tags, warning about the
    /// rest (made by someone else, or by a create retried where AWS ignored its token) and
    /// keeping them for `down`, which deletes them all ([`Duplicates`]).
    pub fn single<T: Send + Sync + 'static>(&self, what: &str, found: Vec<T>) -> Option<T> {
        let count = found.len();
        let mut found = found.into_iter();
        let first = found.next();
        let rest: Vec<Box<dyn Any + Send + Sync>> = found
            .map(|t| Box::new(t) as Box<dyn Any + Send + Sync>)
            .collect();
        if !rest.is_empty() {
            let message = format!(
                "{}: {count} {what} resources carry this node's tags; using one, the other {} \
                 left as they are (`down` deletes them all)",
                self.node,
                rest.len()
            );
            tracing::warn!("{message}");
            self.cx.events.warn(&message);
            self.shared::<Duplicates>().keep(self.node, rest);
        }
        first
    }

    /// Polls until ready, with progress and the run's wait timeout.
    pub async fn wait_ready<F, Fut>(
        &self,
        what: &str,
        expected: wait::Expected,
        poll: F,
    ) -> Result<(), Failure>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Poll, Failure>>,
    {
        wait::until(
            what,
            self.cx.wait_timeout,
            expected,
            &self.cx.stop,
            |state, waited| {
                self.progress(format!(
                    "waiting for {what} ({state}, {}s)",
                    waited.as_secs()
                ))
            },
            poll,
        )
        .await
    }

    /// Polls until ready, like [`NodeCx::wait_ready`], where each poll also reads something
    /// (a description, an ETag): answers the last one read, `None` when no poll read any.
    pub async fn wait_keeping<T, F, Fut>(
        &self,
        what: &str,
        expected: wait::Expected,
        mut poll: F,
    ) -> Result<Option<T>, Failure>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(Poll, Option<T>), Failure>>,
    {
        let last = std::sync::Mutex::new(None);
        self.wait_ready(what, expected, || {
            let fut = poll();
            let last = &last;
            async move {
                let (state, read) = fut.await?;
                if read.is_some() {
                    *last.lock().unwrap_or_else(|e| e.into_inner()) = read;
                }
                Ok(state)
            }
        })
        .await?;
        Ok(last.into_inner().unwrap_or_else(|e| e.into_inner()))
    }

    /// Polls until the resource is gone: `state` answers `None` once it is, else its state.
    pub async fn wait_gone<F, Fut>(
        &self,
        what: &str,
        expected: wait::Expected,
        mut state: F,
    ) -> Result<(), Failure>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<String>, Failure>>,
    {
        let what = format!("{what} to be deleted");
        self.wait_ready(&what, expected, || {
            let fut = state();
            async move {
                Ok(match fut.await? {
                    None => Poll::Ready,
                    Some(s) => Poll::Pending(s),
                })
            }
        })
        .await
    }
}

/// Resources found beside the one a node uses, carrying the same tags ([`NodeCx::single`]),
/// by node: `down` deletes them after the node's own.
#[derive(Default)]
pub struct Duplicates {
    by_node: std::sync::Mutex<std::collections::HashMap<String, Vec<Box<dyn Any + Send + Sync>>>>,
}

impl Duplicates {
    fn keep(&self, node: &str, extra: Vec<Box<dyn Any + Send + Sync>>) {
        let mut all = self.by_node.lock().unwrap_or_else(|e| e.into_inner());
        all.insert(node.to_string(), extra);
    }

    /// The duplicates found of `node`, handed over once.
    pub fn take(&self, node: &str) -> Vec<Box<dyn Any + Send + Sync>> {
        let mut all = self.by_node.lock().unwrap_or_else(|e| e.into_inner());
        all.remove(node).unwrap_or_default()
    }

    /// Takes the duplicate of `node` that `pick` chooses, keeping `instead` in its place.
    pub fn swap<T: Send + Sync + 'static>(
        &self,
        node: &str,
        pick: impl Fn(&T) -> bool,
        instead: T,
    ) -> Result<T, T> {
        let mut all = self.by_node.lock().unwrap_or_else(|e| e.into_inner());
        let Some(list) = all.get_mut(node) else {
            return Err(instead);
        };
        let Some(at) = list
            .iter()
            .position(|d| d.downcast_ref::<T>().is_some_and(&pick))
        else {
            return Err(instead);
        };
        match list.remove(at).downcast::<T>() {
            Ok(chosen) => {
                list.push(Box::new(instead));
                Ok(*chosen)
            }
            Err(other) => {
                list.insert(at, other);
                Err(instead)
            }
        }
    }
}

/// What [`Resource::wait_leaving`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leaving {
    /// Nothing of this node's going away, as far as the kind can tell.
    Nothing,
    /// One was going away; it is gone now.
    Waited,
    /// Nothing holds its name now (a kind whose names are unique and read by name): a create
    /// its name refused moments ago may go again, the deletion having ended in between.
    NameFree,
}

/// One kind of AWS resource. What it reads of other nodes is declared once, in its spec:
/// its [`Ref`] fields and the placeholders of its [`template::Template`]s
/// ([`declared::declared`]). Each step may run twice, or be cancelled at any `.await`, and
/// the next run still converges: `observe` sees what a half-finished `create` left (it is
/// tagged, or named, in the create call), and `diff` names what is missing.
#[async_trait]
pub trait Resource: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// What `observe` found of the live resource.
    type Observed: Send + Sync + 'static;

    /// Kind name for messages and the graph, e.g. `nat_gateway`.
    const KIND: &'static str;

    /// The attributes it publishes that another node's template may name (`${node.arn}`);
    /// a template naming another is an error when the graph is built. `arn_suffix` goes
    /// with `arn`.
    const PUBLISHES: &'static [template::Attr] = &[template::Attr::Id];

    /// True when it reads its tags through [`NodeCx::tags_of`] for the ARN its name gives
    /// ([`Resource::planned_attrs`]): a look asks the tagging API for them as it starts.
    const TAGS_READ_AHEAD: bool = false;

    /// The fields its diff names (its `fields!` enum's names; `tags.<key>` besides, and a
    /// keyed field's members): what `[repair] ignore` may list for its nodes.
    const FIELDS: &'static [&'static str] = &[];

    /// The IAM actions its steps call, each scoped ([`crate::policy`]): what a verb's
    /// least-privilege policy is made of.
    const GRANTS: &'static crate::policy::Grants = &crate::policy::Grants::NONE;

    /// Its own part of its name (`state` of `tap-prod-state-<account>`): what `${suffix}`
    /// stands for in its [`Self::GRANTS`], for a kind whose service has no tag condition
    /// that would keep a name prefix from reaching another environment's resources.
    fn name_part(&self) -> Option<&str> {
        None
    }

    /// False for a lookup-only node: something outside the environment that must exist and
    /// that `up` never creates, changes or deletes.
    fn managed(&self) -> bool {
        true
    }

    /// What to do when a lookup-only node is not found.
    fn missing(&self, cx: &NodeCx<'_>) -> String {
        format!("{} {} not found", Self::KIND, cx.node)
    }

    /// The live resource, by its tags or deterministic name; `None` when absent. Read-only,
    /// and independent of every other node.
    async fn observe(&self, cx: &NodeCx<'_>) -> Result<Option<Self::Observed>, Failure>;

    /// The live resource by the identifiers the applied record keeps (its id, ARN), for a
    /// kind found by tags or by an attribute that can be edited out of band (an alias):
    /// `None` when that resource is gone (or going: a NAT gateway `deleted`). A resource
    /// that now says it belongs to another environment or node is an error, never taken.
    /// Default `None`: the kind is found by a name nobody can change without replacing it.
    async fn observe_recorded(
        &self,
        _cx: &NodeCx<'_>,
        _recorded: &RecordedIds,
    ) -> Result<Option<Self::Observed>, Failure> {
        Ok(None)
    }

    /// The live resource a create an interrupted run started may have left, where `observe`
    /// reads a source that can lag behind a create (the tagging API): looked for only when
    /// `observe` found nothing and the applied record's `started` names the node. Default
    /// `None`: `observe` already reads where nothing lags.
    async fn observe_interrupted(
        &self,
        _cx: &NodeCx<'_>,
    ) -> Result<Option<Self::Observed>, Failure> {
        Ok(None)
    }

    /// What the found resource publishes.
    fn attrs(&self, cx: &NodeCx<'_>, have: &Self::Observed) -> Result<Attrs, Failure>;

    /// The attributes it will have once created, where they follow from its name alone (a
    /// role's ARN, a log group's name): `plan` shows its dependents' fields as they will be
    /// rather than as unknown.
    fn planned_attrs(&self, _cx: &NodeCx<'_>) -> Option<Attrs> {
        None
    }

    /// True when the found resource is ready for dependents that need readiness.
    fn is_ready(&self, _have: &Self::Observed) -> bool {
        true
    }

    /// True when the found resource is not ready because it is still being made (by this
    /// run, or by a killed one before it): a run that did not change it waits for that only,
    /// never for an existing resource busy with something else (a service scaling out).
    /// Default: not ready means being made.
    fn is_creating(&self, have: &Self::Observed) -> bool {
        !self.is_ready(have)
    }

    /// What differs between the spec and `have` (pure: no AWS call). Values AWS owns go to
    /// `Changes::owned_by_aws` with the reason.
    fn diff(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &Self::Observed,
        c: &mut Changes,
    ) -> Result<(), Failure>;

    /// Creates it, tagged, and returns as soon as its identifiers are known.
    async fn create(&self, cx: &NodeCx<'_>, inputs: &Inputs<'_>) -> Result<Attrs, Failure>;

    /// Waits until it is ready for dependents that need readiness. Default: ready at once.
    async fn wait_ready(&self, _cx: &NodeCx<'_>, attrs: Attrs) -> Result<Attrs, Failure> {
        Ok(attrs)
    }

    /// Puts back what `diff` found; never called with changes that need replacement.
    async fn update(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &Self::Observed,
        changes: &[Change],
    ) -> Result<Attrs, Failure>;

    /// True when its update gives it new attributes (a task definition's new revision): `plan`
    /// shows its dependents' fields as unknown until then.
    fn update_changes_attrs(&self, _changes: &[Change]) -> bool {
        false
    }

    /// True when `up` may replace it (delete, then create) for a change AWS cannot make in
    /// place: it holds no data and nothing pins it.
    fn replaceable(&self) -> bool {
        false
    }

    /// Deletes it and waits until it is gone. A resource already gone is success.
    async fn delete(&self, cx: &NodeCx<'_>, have: &Self::Observed) -> Result<(), Failure>;

    /// When `observe` found nothing (`down`, or a create refused as already there): waits
    /// out a deletion already under way (a killed `down`, or someone, asked for it), so what
    /// this node stands on can go next, or its name is free again. Default: the kind has no
    /// slow deletion.
    async fn wait_leaving(&self, _cx: &NodeCx<'_>) -> Result<Leaving, Failure> {
        Ok(Leaving::Nothing)
    }

    /// Deletion protection that stops `down` before it deletes anything, unless
    /// `--disable-protection`: what is protected, in words.
    fn protection(&self, _cx: &NodeCx<'_>, _have: &Self::Observed) -> Option<String> {
        None
    }

    /// Why `down` keeps it (data, unless `--destroy-data`); `None` to delete.
    fn keep_on_down(&self, _cx: &NodeCx<'_>, _have: &Self::Observed) -> Option<String> {
        None
    }

    /// What it contributes to the outputs printed after `up` and by `status`.
    fn outputs(&self, _attrs: &Attrs) -> Vec<Output> {
        Vec::new()
    }
}

/// `<env_full>-<suffix>`, or, when longer than `max` (ELB's 32), its start and a short hash
/// of the whole, so names stay unique and deterministic.
pub fn short_name(env_full: &str, suffix: &str, max: usize) -> String {
    let full = format!("{env_full}-{suffix}");
    if full.len() <= max {
        return full;
    }
    let hash = client_token(env_full, suffix, &[], 64);
    let hash = &hash[hash.len() - 8..];
    let keep = max - hash.len() - 1;
    format!("{}-{hash}", full[..keep].trim_end_matches('-'))
}

/// The output entry `key = value`.
pub fn output(key: &'static str, value: impl Serialize) -> Output {
    Output {
        key,
        value: serde_json::to_value(value).unwrap_or_default(),
        list: false,
    }
}

/// An output entry collected with the other nodes' under `key` into a list.
pub fn output_item(key: &'static str, value: impl Serialize) -> Output {
    Output {
        list: true,
        ..output(key, value)
    }
}

/// Runs an EC2 delete, treating "not found" as success and retrying while network
/// interfaces drain (and the other `rules`).
pub async fn ec2_delete<F, Fut, T>(
    rules: &[&crate::aws::retry::Rule],
    mut call: F,
) -> Result<(), Failure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    use crate::aws::errors::OrAbsent;
    let mut all: Vec<&crate::aws::retry::Rule> = vec![&crate::aws::retry::ENIS_DRAINING];
    all.extend_from_slice(rules);
    crate::aws::retry::on(&all, || {
        let fut = call();
        async move { fut.await.or_absent().map(|_| ()) }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recorded_duplicate_is_taken_and_the_other_kept_for_down() {
        let d = Duplicates::default();
        d.keep("vpc", vec![Box::new("vpc-2".to_string()), Box::new(7_u32)]);
        // Nothing recorded among them: the caller keeps its own.
        assert_eq!(
            d.swap("vpc", |v: &String| v == "vpc-9", "vpc-1".to_string()),
            Err("vpc-1".to_string())
        );
        assert_eq!(
            d.swap("vpc", |v: &String| v == "vpc-2", "vpc-1".to_string()),
            Ok("vpc-2".to_string())
        );
        let left: Vec<String> = d
            .take("vpc")
            .into_iter()
            .filter_map(|b| b.downcast::<String>().ok().map(|s| *s))
            .collect();
        assert_eq!(
            left,
            ["vpc-1"],
            "the one found by tags becomes the duplicate"
        );
        assert_eq!(
            d.swap("subnet", |_: &String| true, "x".to_string()),
            Err("x".to_string())
        );
    }

    #[test]
    fn endpoints_and_the_cloudfront_zone_follow_the_partition() {
        let scope = |partition: &str| Scope {
            project: "tap".into(),
            env: "prod".into(),
            env_full: "tap-prod".into(),
            region: "cn-north-1".into(),
            account: "123456789012".into(),
            partition: partition.into(),
        };
        assert_eq!(scope("aws").dns_suffix(), "amazonaws.com");
        assert_eq!(scope("aws-us-gov").dns_suffix(), "amazonaws.com");
        assert_eq!(scope("aws-cn").dns_suffix(), "amazonaws.com.cn");
        assert_ne!(
            scope("aws").cloudfront_zone_id(),
            scope("aws-cn").cloudfront_zone_id()
        );
        let policy = kms_key::key_policy("aws-cn", "cn-north-1", "123456789012", "tap-prod");
        let text = policy.to_string();
        assert!(text.contains("logs.cn-north-1.amazonaws.com.cn"), "{text}");
        assert!(text.contains("rds.cn-north-1.amazonaws.com.cn"), "{text}");
    }
}
