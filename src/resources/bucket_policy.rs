//! A bucket's policy where it names other nodes (the static bucket admits only its
//! CloudFront distribution or origin access identity), so it cannot be set with the bucket:
//! the TLS-only statement every bucket has, then the spec's statements, compared as JSON.
//!
//! Deleting it puts back the TLS-only statement alone: a bucket `down` keeps for its data
//! stays refusing plain HTTP, and admits nobody else.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::s3_bucket::{bucket_name, deny_insecure_transport};
use super::template::{render, Template};
use super::{NodeCx, Resource};
use crate::aws::errors::OrAbsent;
use crate::diff::{fields, Change, Changes};
use crate::error::Failure;
use crate::model::{Attrs, Inputs, Ref};
use crate::policy::{grant, Grants, On};

fields! {
    /// The fields a bucket policy is compared on, as `plan`, `drift` and `history` name them.
    enum Field {
        Policy = "policy",
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct BucketPolicy {
    /// The bucket's name part, as its `s3_bucket` node has it.
    pub suffix: String,
    pub bucket: Ref,
    /// Statements after the TLS-only one: templates ([`super::template`]).
    pub statements: Vec<Template>,
}

pub struct Observed {
    policy: Value,
}

impl BucketPolicy {
    fn name(&self, cx: &NodeCx<'_>) -> String {
        bucket_name(cx.env_full(), &self.suffix, &cx.scope().account)
    }

    fn document(&self, cx: &NodeCx<'_>, inputs: &Inputs<'_>) -> Result<Value, Failure> {
        let mut statements = vec![deny_insecure_transport(
            &cx.scope().partition,
            &self.name(cx),
        )];
        for s in &self.statements {
            statements.push(render(s, cx.scope(), inputs)?);
        }
        Ok(json!({"Version": "2012-10-17", "Statement": statements}))
    }

    async fn put(&self, cx: &NodeCx<'_>, policy: &Value) -> Result<(), Failure> {
        cx.aws()
            .s3
            .put_bucket_policy()
            .bucket(self.name(cx))
            .expected_bucket_owner(&cx.scope().account)
            .policy(policy.to_string())
            .send()
            .await?;
        Ok(())
    }
}

#[async_trait]
impl Resource for BucketPolicy {
    type Observed = Observed;
    const KIND: &'static str = "bucket_policy";
    const GRANTS: &'static Grants = &Grants {
        read: &[grant(
            &["s3:GetBucketPolicy"],
            On::Arns(&["arn:${partition}:s3:::${env}-${suffix}-${account}"]),
        )],
        write: &[grant(
            &["s3:PutBucketPolicy"],
            On::Arns(&["arn:${partition}:s3:::${env}-${suffix}-${account}"]),
        )],
        delete: &[grant(
            &["s3:PutBucketPolicy"],
            On::Arns(&["arn:${partition}:s3:::${env}-${suffix}-${account}"]),
        )],
    };
    const FIELDS: &'static [&'static str] = Field::NAMES;

    fn name_part(&self) -> Option<&str> {
        Some(&self.suffix)
    }

    /// Present when the bucket has a policy at all; a policy without our statements is a
    /// change, not an absence.
    async fn observe(&self, cx: &NodeCx<'_>) -> Result<Option<Observed>, Failure> {
        let name = self.name(cx);
        let out = cx
            .aws()
            .s3
            .get_bucket_policy()
            .bucket(&name)
            .expected_bucket_owner(&cx.scope().account)
            .send()
            .await
            .or_absent()?;
        let Some(text) = out.as_ref().and_then(|o| o.policy()) else {
            return Ok(None);
        };
        let policy = serde_json::from_str(text).map_err(|e| {
            Failure::new(
                "UnreadablePolicy",
                format!("the policy of bucket {name} is not JSON: {e}"),
            )
        })?;
        Ok(Some(Observed { policy }))
    }

    fn attrs(&self, cx: &NodeCx<'_>, _have: &Observed) -> Result<Attrs, Failure> {
        Ok(Attrs::id(self.name(cx)))
    }

    fn diff(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &Observed,
        c: &mut Changes,
    ) -> Result<(), Failure> {
        c.document(Field::Policy, &self.document(cx, inputs)?, &have.policy);
        Ok(())
    }

    async fn create(&self, cx: &NodeCx<'_>, inputs: &Inputs<'_>) -> Result<Attrs, Failure> {
        self.put(cx, &self.document(cx, inputs)?).await?;
        Ok(Attrs::id(self.name(cx)))
    }

    async fn update(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        _have: &Observed,
        _changes: &[Change],
    ) -> Result<Attrs, Failure> {
        self.create(cx, inputs).await
    }

    async fn delete(&self, cx: &NodeCx<'_>, _have: &Observed) -> Result<(), Failure> {
        let tls_only = json!({
            "Version": "2012-10-17",
            "Statement": [deny_insecure_transport(&cx.scope().partition, &self.name(cx))]
        });
        match self.put(cx, &tls_only).await {
            Err(f) if crate::aws::errors::is_not_found(&f) => Ok(()),
            other => other,
        }
    }
}
