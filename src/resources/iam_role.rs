//! IAM service roles: a trust policy for one AWS service (scoped to this account) and one
//! least-privilege inline policy, both compared as JSON so a hand edit is drift.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};

use super::{Ids, NodeCx, Resource};
use crate::aws::errors::OrAbsent;
use crate::aws::retry;
use crate::aws::tags::iam_tags;
use crate::diff::{Change, Changes};
use crate::error::Failure;

/// Builds the inline policy from the node's context (ARNs need account and region).
pub type PolicyFn = Box<dyn Fn(&NodeCx<'_>) -> Value + Send + Sync>;

pub struct IamRole {
    /// Name suffix: the role is `<project>-<env>-<suffix>`.
    pub suffix: &'static str,
    /// Service principal allowed to assume it, e.g. `vpc-flow-logs.amazonaws.com`.
    pub service: &'static str,
    pub description: &'static str,
    pub policy: PolicyFn,
}

const POLICY_NAME: &str = "tap-provision";

pub struct Observed {
    arn: String,
    trust: Value,
    policy: Option<Value>,
    tags: BTreeMap<String, String>,
}

/// IAM returns policy documents URL-encoded.
fn decode_policy(doc: &str) -> Value {
    if doc.trim_start().starts_with('{') {
        return serde_json::from_str(doc).unwrap_or(Value::Null);
    }
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
    let text = String::from_utf8_lossy(&bytes);
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

impl IamRole {
    fn name(&self, cx: &NodeCx<'_>) -> String {
        format!("{}-{}", cx.env_full(), self.suffix)
    }

    fn trust(&self, cx: &NodeCx<'_>) -> Value {
        json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": {"Service": self.service},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"aws:SourceAccount": cx.cx.account_id}}
            }]
        })
    }

    async fn put_policy(&self, cx: &NodeCx<'_>) -> Result<(), Failure> {
        cx.cx
            .clients
            .iam
            .put_role_policy()
            .role_name(self.name(cx))
            .policy_name(POLICY_NAME)
            .policy_document((self.policy)(cx).to_string())
            .send()
            .await?;
        Ok(())
    }
}

#[async_trait]
impl Resource for IamRole {
    type Observed = Observed;
    const KIND: &'static str = "iam_role";

    async fn find(&self, cx: &NodeCx<'_>) -> Result<Option<Observed>, Failure> {
        let iam = &cx.cx.clients.iam;
        let name = self.name(cx);
        let Some(out) = iam.get_role().role_name(&name).send().await.or_absent()? else {
            return Ok(None);
        };
        let role = out
            .role()
            .cloned()
            .ok_or_else(|| Failure::missing("role"))?;
        let policy = iam
            .get_role_policy()
            .role_name(&name)
            .policy_name(POLICY_NAME)
            .send()
            .await
            .or_absent()?
            .map(|p| decode_policy(p.policy_document()));
        Ok(Some(Observed {
            arn: role.arn().to_string(),
            trust: role
                .assume_role_policy_document()
                .map(decode_policy)
                .unwrap_or(Value::Null),
            policy,
            tags: role
                .tags()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect(),
        }))
    }

    fn ids(&self, cx: &NodeCx<'_>, have: &Observed) -> Result<Ids, Failure> {
        Ok(Ids {
            id: self.name(cx),
            arn: Some(have.arn.clone()),
        })
    }

    fn diff(&self, cx: &NodeCx<'_>, have: &Observed) -> Result<Vec<Change>, Failure> {
        let mut c = Changes::default();
        if have.trust != self.trust(cx) {
            c.0.push(Change {
                field: "trust_policy".into(),
                want: self.trust(cx).to_string(),
                have: have.trust.to_string(),
                replace: false,
            });
        }
        let want = (self.policy)(cx);
        if have.policy.as_ref() != Some(&want) {
            c.0.push(Change {
                field: format!("inline_policy.{POLICY_NAME}"),
                want: want.to_string(),
                have: have
                    .policy
                    .as_ref()
                    .map(Value::to_string)
                    .unwrap_or_else(|| "(absent)".into()),
                replace: false,
            });
        }
        c.tags(&cx.tags(), &have.tags);
        Ok(c.into_vec())
    }

    async fn create(&self, cx: &NodeCx<'_>) -> Result<Ids, Failure> {
        let iam = &cx.cx.clients.iam;
        let name = self.name(cx);
        let arn = match iam
            .create_role()
            .role_name(&name)
            .description(self.description)
            .assume_role_policy_document(self.trust(cx).to_string())
            .set_tags(Some(iam_tags(&cx.tags())?))
            .send()
            .await
        {
            Ok(out) => out
                .role()
                .map(|r| r.arn().to_string())
                .ok_or_else(|| Failure::missing("role ARN"))?,
            Err(e) => return Err(Failure::from(e)),
        };
        self.put_policy(cx).await?;
        Ok(Ids {
            id: name,
            arn: Some(arn),
        })
    }

    async fn update(
        &self,
        cx: &NodeCx<'_>,
        _have: &Observed,
        changes: &[Change],
    ) -> Result<(), Failure> {
        let iam = &cx.cx.clients.iam;
        for ch in changes {
            if ch.field == "trust_policy" {
                iam.update_assume_role_policy()
                    .role_name(self.name(cx))
                    .policy_document(self.trust(cx).to_string())
                    .send()
                    .await?;
            } else if ch.field.starts_with("inline_policy.") {
                self.put_policy(cx).await?;
            }
        }
        if changes.iter().any(|c| c.field.starts_with("tags.")) {
            iam.tag_role()
                .role_name(self.name(cx))
                .set_tags(Some(iam_tags(&cx.tags())?))
                .send()
                .await?;
        }
        Ok(())
    }

    async fn delete(&self, cx: &NodeCx<'_>, _have: &Observed) -> Result<(), Failure> {
        let iam = &cx.cx.clients.iam;
        let name = self.name(cx);
        let inline = iam.list_role_policies().role_name(&name).send().await?;
        for policy in inline.policy_names() {
            iam.delete_role_policy()
                .role_name(&name)
                .policy_name(policy)
                .send()
                .await?;
        }
        let attached = iam
            .list_attached_role_policies()
            .role_name(&name)
            .send()
            .await?;
        for p in attached.attached_policies() {
            if let Some(arn) = p.policy_arn() {
                iam.detach_role_policy()
                    .role_name(&name)
                    .policy_arn(arn)
                    .send()
                    .await?;
            }
        }
        retry::eventually(
            Duration::from_secs(60),
            |f| f.code == "DeleteConflict",
            || async {
                iam.delete_role()
                    .role_name(&name)
                    .send()
                    .await
                    .or_absent()
                    .map(|_| ())
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn decodes_url_encoded_policies() {
        let v = super::decode_policy("%7B%22Version%22%3A%222012-10-17%22%7D");
        assert_eq!(v["Version"], "2012-10-17");
        let v = super::decode_policy("{\"a\": 1}");
        assert_eq!(v["a"], 1);
    }
}
