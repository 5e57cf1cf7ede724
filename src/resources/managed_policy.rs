//! IAM customer-managed policies: for a role whose least-privilege policy is larger than
//! IAM lets a role hold inline (10,240 characters), the policy is split into managed ones
//! (6,144 characters each) attached to it. Named `<project>-<env>-<suffix>` under the
//! environment's path, tagged, compared as JSON (the default version's document): a hand
//! edit is drift, put back as a new default version.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::iam_role::decode_policy;
use super::template::{render, Attr, Template};
use super::{NodeCx, Resource};
use crate::aws::errors::{CreatedBy, OrAbsent, OrExists, Required};
use crate::aws::tags;
use crate::diff::{fields, has, tags_changed, Change, Changes};
use crate::error::Failure;
use crate::model::{Attrs, Inputs};
use crate::policy::{grant, Grants, On};

fields! {
    /// The fields a managed policy is compared on, as `plan`, `drift` and `history` name them.
    enum Field {
        Document = "document",
    }
}

/// IAM keeps at most this many versions of a policy.
const MAX_VERSIONS: usize = 5;

const POLICIES: On =
    On::Arns(&["arn:${partition}:iam::${account}:policy/${project}/${env_name}/${env}-*"]);

#[derive(Debug, Serialize, Deserialize)]
pub struct ManagedPolicy {
    /// Name suffix: the policy is `<project>-<env>-<suffix>`.
    pub suffix: String,
    pub description: String,
    /// The document, a template ([`super::template`]).
    pub document: Template,
    /// Its path, `/<project>/<env>/`.
    pub path: String,
    /// Looked for first in one listing of the path, shared by the run's policies: set where
    /// most are expected absent (a removal looks for every part an earlier `up` could have
    /// made), so each absent one costs no call of its own.
    /// Left out of the spec when false, so records written before it compare equal.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub listed: bool,
}

/// The run's one listing of the customer-managed policies under a path, by path.
#[derive(Default)]
struct PathPolicies(tokio::sync::Mutex<BTreeMap<String, Vec<String>>>);

/// The ARNs of the policies under `path` (`ListPolicies`, local scope, by path prefix: only
/// the environment's, whatever the account holds beside them), listed once per run.
async fn policies_under(cx: &NodeCx<'_>, path: &str) -> Result<Vec<String>, Failure> {
    let cache = cx.shared::<PathPolicies>();
    let mut listed = cache.0.lock().await;
    if let Some(arns) = listed.get(path) {
        return Ok(arns.clone());
    }
    let arns = cx
        .aws()
        .iam
        .list_policies()
        .scope(aws_sdk_iam::types::PolicyScopeType::Local)
        .path_prefix(path)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(|e| Failure::from(e).context(format!("listing the policies under {path}")))?
        .iter()
        .map(|p| p.arn().required("policy ARN").map(String::from))
        .collect::<Result<Vec<_>, Failure>>()?;
    listed.insert(path.to_string(), arns.clone());
    Ok(arns)
}

pub struct Observed {
    arn: String,
    document: Value,
    tags: BTreeMap<String, String>,
}

impl ManagedPolicy {
    fn name(&self, cx: &NodeCx<'_>) -> String {
        format!("{}-{}", cx.env_full(), self.suffix)
    }

    fn arn(&self, cx: &NodeCx<'_>) -> String {
        format!(
            "arn:{}:iam::{}:policy{}{}",
            cx.scope().partition,
            cx.scope().account,
            self.path,
            self.name(cx)
        )
    }

    fn attrs_of(&self, cx: &NodeCx<'_>, arn: &str) -> Attrs {
        Attrs::id(self.name(cx)).with_arn(arn)
    }

    fn document(&self, cx: &NodeCx<'_>, inputs: &Inputs<'_>) -> Result<Value, Failure> {
        render(&self.document, cx.scope(), inputs)
    }

    /// Its versions, oldest first: (id, is the default).
    async fn versions(&self, cx: &NodeCx<'_>, arn: &str) -> Result<Vec<(String, bool)>, Failure> {
        let mut all: Vec<_> = cx
            .aws()
            .iam
            .list_policy_versions()
            .policy_arn(arn)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await?
            .into_iter()
            .map(|v| {
                // A version without its id or date cannot be ordered or pruned: an error,
                // never a guess at which one to delete.
                Ok((
                    v.create_date()
                        .map(|d| d.secs())
                        .ok_or_else(|| Failure::missing("policy version's date"))?,
                    v.version_id().required("policy version id")?.to_string(),
                    v.is_default_version(),
                ))
            })
            .collect::<Result<Vec<_>, Failure>>()?;
        all.sort();
        Ok(all.into_iter().map(|(_, id, d)| (id, d)).collect())
    }

    /// Removes non-default versions until `keep` are left at most.
    async fn prune(&self, cx: &NodeCx<'_>, arn: &str, keep: usize) -> Result<(), Failure> {
        let versions = self.versions(cx, arn).await?;
        let excess = versions.len().saturating_sub(keep);
        for (id, _) in versions.iter().filter(|(_, d)| !d).take(excess) {
            cx.aws()
                .iam
                .delete_policy_version()
                .policy_arn(arn)
                .version_id(id)
                .send()
                .await
                .or_absent()?;
        }
        Ok(())
    }
}

#[async_trait]
impl Resource for ManagedPolicy {
    type Observed = Observed;
    const KIND: &'static str = "managed_policy";
    const FIELDS: &'static [&'static str] = Field::NAMES;
    const PUBLISHES: &'static [Attr] = &[Attr::Id, Attr::Arn];
    const GRANTS: &'static Grants = &Grants {
        read: &[
            grant(&["iam:GetPolicy", "iam:GetPolicyVersion"], POLICIES),
            grant(
                &["iam:ListPolicies"],
                On::Any("ListPolicies lists by path prefix: no resource-level permission"),
            ),
        ],
        write: &[grant(
            &[
                "iam:CreatePolicy",
                "iam:CreatePolicyVersion",
                "iam:ListPolicyVersions",
                "iam:DeletePolicyVersion",
                "iam:TagPolicy",
            ],
            POLICIES,
        )],
        delete: &[grant(
            &[
                "iam:ListPolicyVersions",
                "iam:DeletePolicyVersion",
                "iam:DeletePolicy",
            ],
            POLICIES,
        )],
    };

    async fn observe(&self, cx: &NodeCx<'_>) -> Result<Option<Observed>, Failure> {
        let iam = &cx.aws().iam;
        let arn = self.arn(cx);
        if self.listed && !policies_under(cx, &self.path).await?.contains(&arn) {
            return Ok(None);
        }
        let Some(out) = iam.get_policy().policy_arn(&arn).send().await.or_absent()? else {
            return Ok(None);
        };
        let policy = out.policy().ok_or_else(|| Failure::missing("policy"))?;
        let version = policy.default_version_id().required("default version id")?;
        let Some(v) = iam
            .get_policy_version()
            .policy_arn(&arn)
            .version_id(version)
            .send()
            .await
            .or_absent()?
        else {
            return Ok(None);
        };
        let document = v
            .policy_version()
            .and_then(|v| v.document())
            .map(decode_policy)
            .transpose()?
            .unwrap_or(Value::Null);
        Ok(Some(Observed {
            arn,
            document,
            tags: tags::from_iam(policy.tags()),
        }))
    }

    fn planned_attrs(&self, cx: &NodeCx<'_>) -> Option<Attrs> {
        Some(self.attrs_of(cx, &self.arn(cx)))
    }

    fn attrs(&self, cx: &NodeCx<'_>, have: &Observed) -> Result<Attrs, Failure> {
        Ok(self.attrs_of(cx, &have.arn))
    }

    fn diff(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &Observed,
        c: &mut Changes,
    ) -> Result<(), Failure> {
        c.document(Field::Document, &self.document(cx, inputs)?, &have.document);
        c.tags(cx.tags(), &have.tags);
        Ok(())
    }

    async fn create(&self, cx: &NodeCx<'_>, inputs: &Inputs<'_>) -> Result<Attrs, Failure> {
        let iam = &cx.aws().iam;
        // Made by a killed run: `EntityAlreadyExists`; the next look compares its document.
        iam.create_policy()
            .policy_name(self.name(cx))
            .path(&self.path)
            .description(&self.description)
            .policy_document(self.document(cx, inputs)?.to_string())
            .set_tags(Some(tags::iam(cx.tags())?))
            .send()
            .await
            .or_exists(CreatedBy::Iam)?;
        Ok(self.attrs_of(cx, &self.arn(cx)))
    }

    async fn update(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &Observed,
        changes: &[Change],
    ) -> Result<Attrs, Failure> {
        let iam = &cx.aws().iam;
        if has(changes, Field::Document) {
            // Room for the new version: IAM keeps five.
            self.prune(cx, &have.arn, MAX_VERSIONS - 1).await?;
            iam.create_policy_version()
                .policy_arn(&have.arn)
                .policy_document(self.document(cx, inputs)?.to_string())
                .set_as_default(true)
                .send()
                .await?;
        }
        if tags_changed(changes) {
            iam.tag_policy()
                .policy_arn(&have.arn)
                .set_tags(Some(tags::iam(cx.tags())?))
                .send()
                .await?;
        }
        Ok(self.attrs_of(cx, &have.arn))
    }

    /// Its other versions, then the policy (the roles it is attached to go first: they
    /// depend on it).
    async fn delete(&self, cx: &NodeCx<'_>, have: &Observed) -> Result<(), Failure> {
        self.prune(cx, &have.arn, 1).await?;
        cx.aws()
            .iam
            .delete_policy()
            .policy_arn(&have.arn)
            .send()
            .await
            .or_absent()?;
        Ok(())
    }
}
