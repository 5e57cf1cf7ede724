//! IAM service roles: a trust policy for one AWS service (scoped to this account) and one
//! least-privilege inline policy, both compared as JSON so a hand edit is drift.
//!
//! The inline policy is a template in the spec ([`super::template`]), filled in when used,
//! so the recorded spec says what was asked for in any account.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::template::{render, Attr, Template};
use super::{NodeCx, Resource};
use crate::aws::errors::OrAbsent;
use crate::aws::retry::{self, ROLE_DELETE_CONFLICT};
use crate::aws::tags;
use crate::diff::{fields, has, tags_changed, under, Change, Changes, Field as _};
use crate::error::Failure;
use crate::model::{Attrs, Inputs, Ref};
use crate::policy::{grant, Grants, On};

mod account;

fields! {
    /// The fields an iam role is compared on, as `plan`, `drift` and `history` name them.
    enum Field {
        Path = "path",
        TrustPolicy = "trust_policy",
        InlinePolicies = "inline_policies",
        AttachedPolicies = "attached_policies",
        /// Our inline policy, by its name: `inline_policy.tap-provision`.
        InlinePolicy = "inline_policy",
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct IamRole {
    /// Name suffix: the role is `<project>-<env>-<suffix>`.
    pub suffix: String,
    /// Service principal allowed to assume it, e.g. `vpc-flow-logs.amazonaws.com`.
    pub service: String,
    pub description: String,
    /// The inline policy, a template (see the module's doc).
    pub policy: Template,
    /// The role's path (`/tap/prod/`); `None` is `/`.
    #[serde(default)]
    pub path: Option<String>,
    /// The one resource on whose behalf the service may assume it (`aws:SourceArn`, a
    /// template: `${repair-group.arn}`), besides this account (`aws:SourceAccount`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_arn: Option<Template>,
    /// Managed policies of the environment attached to it (a policy too large to hold
    /// inline); any other attached policy is drift.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed: Vec<Ref>,
}

const POLICY_NAME: &str = "tap-provision";

pub struct Observed {
    arn: String,
    path: String,
    trust: Value,
    policy: Option<Value>,
    /// Every inline policy's name (ours is `tap-provision`).
    inline: Vec<String>,
    /// Managed policies attached to the role, by ARN: none are wanted.
    attached: Vec<String>,
    tags: BTreeMap<String, String>,
}

impl Observed {
    /// The role as IAM answers it, by whichever read: its trust policy and ours (found by
    /// its name) as documents, URL-encoded or not; every inline policy's name and attached
    /// policy, in any order. An attached policy without its ARN is an answer the tool cannot
    /// read: an error, never one policy fewer.
    fn read(
        arn: &str,
        path: &str,
        trust: Option<&str>,
        policy: Option<&str>,
        mut inline: Vec<String>,
        attached: &[aws_sdk_iam::types::AttachedPolicy],
        tags: &[aws_sdk_iam::types::Tag],
    ) -> Result<Self, Failure> {
        inline.sort();
        let mut attached = attached
            .iter()
            .map(|p| {
                p.policy_arn()
                    .map(String::from)
                    .ok_or_else(|| Failure::missing("attached policy ARN"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        attached.sort();
        Ok(Observed {
            arn: arn.to_string(),
            path: path.to_string(),
            trust: trust.map(decode_policy).transpose()?.unwrap_or(Value::Null),
            policy: policy.map(decode_policy).transpose()?,
            inline,
            attached,
            tags: tags::from_iam(tags),
        })
    }
}

/// The role's name, `<project>-<env>-<suffix>`.
pub fn role_name(env_full: &str, suffix: &str) -> String {
    format!("{env_full}-{suffix}")
}

/// IAM returns policy documents URL-encoded.
pub fn decode_policy(doc: &str) -> Result<Value, Failure> {
    let text = if doc.trim_start().starts_with('{') {
        doc.to_string()
    } else {
        let mut bytes = Vec::with_capacity(doc.len());
        let raw = doc.as_bytes();
        let mut i = 0;
        while i < raw.len() {
            if raw[i] == b'%' && i + 2 < raw.len() {
                if let Ok(b) = u8::from_str_radix(&doc[i + 1..i + 3], 16) {
                    bytes.push(b);
                    i += 3;
                    continue;
                }
            }
            bytes.push(if raw[i] == b'+' { b' ' } else { raw[i] });
            i += 1;
        }
        String::from_utf8_lossy(&bytes).into_owned()
    };
    serde_json::from_str(&text).map_err(|e| {
        Failure::new(
            "UnreadablePolicy",
            format!("IAM returned a policy document that is not JSON ({e})"),
        )
    })
}

impl IamRole {
    fn name(&self, cx: &NodeCx<'_>) -> String {
        role_name(cx.env_full(), &self.suffix)
    }

    fn trust(&self, cx: &NodeCx<'_>, inputs: &Inputs<'_>) -> Result<Value, Failure> {
        let mut only = json!({"aws:SourceAccount": cx.scope().account});
        if let Some(arn) = &self.source_arn {
            only["aws:SourceArn"] = render(arn, cx.scope(), inputs)?;
        }
        Ok(json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": {"Service": self.service},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": only}
            }]
        }))
    }

    fn policy(&self, cx: &NodeCx<'_>, inputs: &Inputs<'_>) -> Result<Value, Failure> {
        render(&self.policy, cx.scope(), inputs)
    }

    async fn put_policy(&self, cx: &NodeCx<'_>, inputs: &Inputs<'_>) -> Result<(), Failure> {
        cx.aws()
            .iam
            .put_role_policy()
            .role_name(self.name(cx))
            .policy_name(POLICY_NAME)
            .policy_document(self.policy(cx, inputs)?.to_string())
            .send()
            .await?;
        Ok(())
    }

    /// The managed policies it should have attached, sorted (as observed).
    fn managed_arns(&self, inputs: &Inputs<'_>) -> Result<Vec<String>, Failure> {
        let mut arns = self
            .managed
            .iter()
            .map(|p| inputs.arn(p).map(String::from))
            .collect::<Result<Vec<_>, _>>()?;
        arns.sort();
        Ok(arns)
    }

    async fn attach(&self, cx: &NodeCx<'_>, arns: &[String]) -> Result<(), Failure> {
        for arn in arns {
            cx.aws()
                .iam
                .attach_role_policy()
                .role_name(self.name(cx))
                .policy_arn(arn)
                .send()
                .await?;
        }
        Ok(())
    }

    /// The role by its name with IAM's own reads: the role, then its inline policy, the
    /// names of all its inline policies and its attached policies.
    async fn observe_one(&self, cx: &NodeCx<'_>) -> Result<Option<Observed>, Failure> {
        let iam = &cx.aws().iam;
        let name = self.name(cx);
        // The role first: where it is absent, its policies' three reads would each answer
        // NoSuchEntity, calls IAM's rate limit counts before any create may start.
        // Converged, this costs one round of latency and no call.
        let Some(role) = iam.get_role().role_name(&name).send().await.or_absent()? else {
            return Ok(None);
        };
        let (policy, inline, attached) = tokio::try_join!(
            async {
                iam.get_role_policy()
                    .role_name(&name)
                    .policy_name(POLICY_NAME)
                    .send()
                    .await
                    .or_absent()
            },
            async {
                iam.list_role_policies()
                    .role_name(&name)
                    .into_paginator()
                    .items()
                    .send()
                    .collect::<Result<Vec<_>, _>>()
                    .await
                    .or_absent()
            },
            async {
                iam.list_attached_role_policies()
                    .role_name(&name)
                    .into_paginator()
                    .items()
                    .send()
                    .collect::<Result<Vec<_>, _>>()
                    .await
                    .or_absent()
            },
        )?;
        let role = role.role().ok_or_else(|| Failure::missing("role"))?;
        // `None` from either list: NoSuchEntity, the role deleted since GetRole answered (any
        // other error stopped the read above); what is left then is read as no policies.
        Observed::read(
            role.arn(),
            role.path(),
            role.assume_role_policy_document(),
            policy.as_ref().map(|p| p.policy_document()),
            inline.unwrap_or_default(),
            attached.as_deref().unwrap_or_default(),
            role.tags(),
        )
        .map(Some)
    }

    fn path(&self) -> &str {
        self.path.as_deref().unwrap_or("/")
    }

    fn attrs_of(&self, cx: &NodeCx<'_>, arn: &str) -> Attrs {
        Attrs::id(self.name(cx)).with_arn(arn)
    }
}

/// The role, with or without a path.
const ROLES: &[&str] = &[
    "arn:${partition}:iam::${account}:role/${env}-${suffix}",
    "arn:${partition}:iam::${account}:role/${project}/${env_name}/${env}-${suffix}",
];

#[async_trait]
impl Resource for IamRole {
    type Observed = Observed;
    const KIND: &'static str = "iam_role";
    const GRANTS: &'static Grants = &Grants {
        read: &[
            grant(
                &[
                    "iam:GetRole",
                    "iam:GetRolePolicy",
                    "iam:ListRolePolicies",
                    "iam:ListAttachedRolePolicies",
                ],
                On::Arns(ROLES),
            ),
            grant(
                &["iam:GetAccountAuthorizationDetails"],
                On::Any("one read answers every role's policies and tags; it takes no resource"),
            ),
        ],
        write: &[
            grant(
                &[
                    "iam:CreateRole",
                    "iam:PutRolePolicy",
                    "iam:UpdateAssumeRolePolicy",
                    "iam:DeleteRolePolicy",
                    "iam:DetachRolePolicy",
                    "iam:TagRole",
                ],
                On::Arns(ROLES),
            ),
            grant(&["iam:AttachRolePolicy"], On::AttachingOwnPolicies(ROLES)),
        ],
        delete: &[grant(
            &[
                "iam:DeleteRolePolicy",
                "iam:DetachRolePolicy",
                "iam:DeleteRole",
            ],
            On::Arns(ROLES),
        )],
    };
    const FIELDS: &'static [&'static str] = Field::NAMES;
    const PUBLISHES: &'static [Attr] = &[Attr::Id, Attr::Arn];

    fn name_part(&self) -> Option<&str> {
        Some(&self.suffix)
    }

    /// Read with every other role the look observes at the same moment: one
    /// GetAccountAuthorizationDetails answers all of them ([`account`]), where each role takes
    /// four reads of its own ([`IamRole::observe_one`]). A role the applied record does not
    /// name (a first run) is read on its own at once, and so is every role once this run
    /// wrote (a repair's confirming look, a look for what a lost create made): the account's
    /// read is for a look at what was there before the run.
    async fn observe(&self, cx: &NodeCx<'_>) -> Result<Option<Observed>, Failure> {
        if cx.recorded() == Some(false) || cx.cx.wrote() {
            return self.observe_one(cx).await;
        }
        match account::role(cx, &self.name(cx)).await {
            Some(found) => found,
            None => self.observe_one(cx).await,
        }
    }

    /// What an interrupted create left, where `observe` read the account's roles (a look
    /// before any write): read by the role's own reads. Where `observe` made those reads
    /// itself (after a write: a lost create's look), it has nothing to add.
    async fn observe_interrupted(&self, cx: &NodeCx<'_>) -> Result<Option<Observed>, Failure> {
        if cx.recorded() == Some(false) || cx.cx.wrote() {
            return Ok(None);
        }
        self.observe_one(cx).await
    }

    fn planned_attrs(&self, cx: &NodeCx<'_>) -> Option<Attrs> {
        let arn = format!(
            "arn:{}:iam::{}:role{}{}",
            cx.scope().partition,
            cx.scope().account,
            self.path(),
            self.name(cx)
        );
        Some(self.attrs_of(cx, &arn))
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
        c.immutable(Field::Path, self.path(), have.path.as_str());
        c.document(Field::TrustPolicy, &self.trust(cx, inputs)?, &have.trust);
        c.document(
            Field::InlinePolicy.key(POLICY_NAME),
            &self.policy(cx, inputs)?,
            have.policy.as_ref().unwrap_or(&Value::Null),
        );
        // A policy added beside ours, inline or managed, widens the role: drift.
        let extra_inline: Vec<String> = have
            .inline
            .iter()
            .filter(|p| *p != POLICY_NAME)
            .cloned()
            .collect();
        c.set(Field::InlinePolicies, &[] as &[String], &extra_inline);
        c.set(
            Field::AttachedPolicies,
            &self.managed_arns(inputs)?,
            &have.attached,
        );
        c.tags(cx.tags(), &have.tags);
        Ok(())
    }

    async fn create(&self, cx: &NodeCx<'_>, inputs: &Inputs<'_>) -> Result<Attrs, Failure> {
        let iam = &cx.aws().iam;
        let name = self.name(cx);
        let out = iam
            .create_role()
            .role_name(&name)
            .path(self.path())
            .description(&self.description)
            .assume_role_policy_document(self.trust(cx, inputs)?.to_string())
            .set_tags(Some(tags::iam(cx.tags())?))
            .send()
            .await?;
        let arn = out
            .role()
            .map(|r| r.arn().to_string())
            .ok_or_else(|| Failure::missing("role ARN"))?;
        self.put_policy(cx, inputs).await?;
        self.attach(cx, &self.managed_arns(inputs)?).await?;
        Ok(self.attrs_of(cx, &arn))
    }

    async fn update(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &Observed,
        changes: &[Change],
    ) -> Result<Attrs, Failure> {
        let iam = &cx.aws().iam;
        if has(changes, Field::TrustPolicy) {
            iam.update_assume_role_policy()
                .role_name(self.name(cx))
                .policy_document(self.trust(cx, inputs)?.to_string())
                .send()
                .await?;
        }
        if under(changes, Field::InlinePolicy) {
            self.put_policy(cx, inputs).await?;
        }
        let name = self.name(cx);
        if has(changes, Field::InlinePolicies) {
            for extra in have.inline.iter().filter(|p| *p != POLICY_NAME) {
                iam.delete_role_policy()
                    .role_name(&name)
                    .policy_name(extra)
                    .send()
                    .await
                    .or_absent()?;
            }
        }
        if has(changes, Field::AttachedPolicies) {
            let wanted = self.managed_arns(inputs)?;
            let missing: Vec<String> = wanted
                .iter()
                .filter(|a| !have.attached.contains(a))
                .cloned()
                .collect();
            self.attach(cx, &missing).await?;
            for arn in have.attached.iter().filter(|a| !wanted.contains(a)) {
                iam.detach_role_policy()
                    .role_name(&name)
                    .policy_arn(arn)
                    .send()
                    .await
                    .or_absent()?;
            }
        }
        if tags_changed(changes) {
            tags::retag_iam_role(iam, &name, cx.tags()).await?;
        }
        Ok(self.attrs_of(cx, &have.arn))
    }

    /// Removes every policy (inline and attached, as observed), then the role.
    async fn delete(&self, cx: &NodeCx<'_>, have: &Observed) -> Result<(), Failure> {
        let iam = &cx.aws().iam;
        let name = self.name(cx);
        for policy in &have.inline {
            iam.delete_role_policy()
                .role_name(&name)
                .policy_name(policy)
                .send()
                .await
                .or_absent()?;
        }
        for arn in &have.attached {
            iam.detach_role_policy()
                .role_name(&name)
                .policy_arn(arn)
                .send()
                .await
                .or_absent()?;
        }
        retry::on(&[&ROLE_DELETE_CONFLICT], || async {
            iam.delete_role()
                .role_name(&name)
                .send()
                .await
                .or_absent()
                .map(|_| ())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_url_encoded_policies() {
        let v = decode_policy("%7B%22Version%22%3A%222012-10-17%22%7D").unwrap();
        assert_eq!(v["Version"], "2012-10-17");
        let v = decode_policy("{\"a\": 1}").unwrap();
        assert_eq!(v["a"], 1);
        assert_eq!(
            decode_policy("%7Bnot").unwrap_err().code,
            "UnreadablePolicy"
        );
    }
}
