//! S3 buckets, private and encrypted: all four Block Public Access settings, objects owned
//! by the bucket owner (no ACLs), versioning, default encryption, a policy that refuses any
//! request not made over TLS, lifecycle rules. Found by their deterministic name
//! `<project>-<env>-<suffix>-<account>`; every read checks the expected owner, so a bucket of
//! that name in another account is an error, never ours.
//!
//! A bucket that holds data keeps it on `down`: it is deleted (every object version first)
//! only with `--destroy-data`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration, ExpirationStatus,
    LifecycleRule, ObjectOwnership, PublicAccessBlockConfiguration,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

mod settings;

use super::template::Attr;
use super::{NodeCx, Resource};
use crate::aws::errors::{CreatedBy, OrAbsent, OrExists};
use crate::aws::tags;
use crate::diff::{fields, has_any, tags_changed, Change, Changes};
use crate::error::Failure;
use crate::model::{Attrs, Inputs, Ref};
use crate::policy::{grant, Grants, On};

fields! {
    /// The fields a resource is compared on, as `plan`, `drift` and `history` name them.
    enum Field {
        Versioning = "versioning",
        Encryption = "encryption",
        EncryptionKey = "encryption_key",
        ObjectOwnership = "object_ownership",
        Policy = "policy",
        Lifecycle = "lifecycle",
        BlockPublicAcls = "block_public_acls",
        IgnorePublicAcls = "ignore_public_acls",
        BlockPublicPolicy = "block_public_policy",
        RestrictPublicBuckets = "restrict_public_buckets",
    }
}

/// The buckets this run's creates found made already, by this account (CreateBucket answered
/// BucketAlreadyOwnedByYou: a run that made it before, perhaps one running now). us-east-1
/// answers a bucket already ours as if made now, so none is found there.
#[derive(Default)]
struct FoundMade(std::sync::Mutex<std::collections::BTreeSet<String>>);

/// Whether a create of this run found bucket `name` made already ([`FoundMade`]).
pub fn found_made(cx: &super::Cx, name: &str) -> bool {
    cx.shared
        .get::<FoundMade>()
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .contains(name)
}

/// Default encryption of new objects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encryption {
    /// SSE-S3 (AES256): readable by any principal the policy admits.
    S3Managed,
    /// SSE-KMS with the environment's key.
    Kms(Ref),
}

/// Lifecycle of the bucket's objects; `None` leaves that part out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifecycle {
    pub expire_days: Option<i32>,
    pub noncurrent_expire_days: Option<i32>,
    pub abort_incomplete_upload_days: Option<i32>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct S3Bucket {
    /// Name part: the bucket is `<project>-<env>-<suffix>-<account>`.
    pub suffix: String,
    /// What the bucket is for, in messages.
    pub purpose: String,
    pub versioning: bool,
    pub encryption: Encryption,
    pub lifecycle: Lifecycle,
    /// True when its objects are data: `down` keeps the bucket unless `--destroy-data`.
    pub holds_data: bool,
    /// True when CloudFront delivers standard logs to it: that needs ACLs, so objects are
    /// owned by the bucket owner where the writer allows (`BucketOwnerPreferred`) rather than
    /// always (`BucketOwnerEnforced`, ACLs off).
    #[serde(default)]
    pub log_delivery: bool,
    /// False when a `bucket_policy` node owns the policy (it names other nodes).
    #[serde(default = "owns_policy")]
    pub owns_policy: bool,
}

fn owns_policy() -> bool {
    true
}

/// The statement every bucket's policy starts with: refuse any request not made over TLS.
pub fn deny_insecure_transport(partition: &str, bucket: &str) -> Value {
    let arn = format!("arn:{partition}:s3:::{bucket}");
    json!({
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [arn.clone(), format!("{arn}/*")],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}}
    })
}

/// The bucket name for `suffix` in an environment and account (pure): at most 63 characters
/// (project 12, env 20, suffix 8, account 12).
pub fn bucket_name(env_full: &str, suffix: &str, account: &str) -> String {
    format!("{env_full}-{suffix}-{account}")
}

pub struct Observed {
    name: String,
    public_access_block: Option<PublicAccessBlockConfiguration>,
    versioning: Option<BucketVersioningStatus>,
    encryption: Option<(String, Option<String>)>,
    policy: Value,
    ownership: Option<ObjectOwnership>,
    lifecycle: Lifecycle,
    tags: BTreeMap<String, String>,
}

pub(crate) const LIFECYCLE_RULE: &str = "tap-provision";

impl S3Bucket {
    fn name(&self, cx: &NodeCx<'_>) -> String {
        bucket_name(cx.env_full(), &self.suffix, &cx.scope().account)
    }

    fn attrs_of(&self, cx: &NodeCx<'_>) -> Attrs {
        let name = self.name(cx);
        let mut a = Attrs::id(&name).with_arn(format!("arn:{}:s3:::{name}", cx.scope().partition));
        a.dns_name = Some(format!(
            "{name}.s3.{}.{}",
            cx.scope().region,
            cx.scope().dns_suffix()
        ));
        a
    }

    /// The bucket policy: refuse every request not made over TLS.
    pub(super) fn policy(&self, cx: &NodeCx<'_>) -> Value {
        json!({
            "Version": "2012-10-17",
            "Statement": [deny_insecure_transport(&cx.scope().partition, &self.name(cx))]
        })
    }

    pub(super) fn ownership(&self) -> ObjectOwnership {
        if self.log_delivery {
            ObjectOwnership::BucketOwnerPreferred
        } else {
            ObjectOwnership::BucketOwnerEnforced
        }
    }

    pub(super) fn want_encryption(
        &self,
        inputs: &Inputs<'_>,
    ) -> Result<(String, Option<String>), Failure> {
        Ok(match &self.encryption {
            Encryption::S3Managed => ("AES256".into(), None),
            Encryption::Kms(key) => ("aws:kms".into(), Some(inputs.arn(key)?.to_string())),
        })
    }
}

fn lifecycle_of(rules: &[LifecycleRule]) -> Lifecycle {
    let Some(r) = rules
        .iter()
        .find(|r| r.status() == &ExpirationStatus::Enabled)
    else {
        return Lifecycle::default();
    };
    Lifecycle {
        expire_days: r.expiration().and_then(|e| e.days()),
        noncurrent_expire_days: r
            .noncurrent_version_expiration()
            .and_then(|e| e.noncurrent_days()),
        abort_incomplete_upload_days: r
            .abort_incomplete_multipart_upload()
            .and_then(|a| a.days_after_initiation()),
    }
}

#[async_trait]
impl Resource for S3Bucket {
    type Observed = Observed;
    const KIND: &'static str = "s3_bucket";
    const GRANTS: &'static Grants = &Grants {
        read: &[
            crate::policy::BULK_TAGS,
            grant(
                &[
                    "s3:GetBucketPublicAccessBlock",
                    "s3:GetBucketVersioning",
                    "s3:GetEncryptionConfiguration",
                    "s3:GetBucketPolicy",
                    "s3:GetBucketOwnershipControls",
                    "s3:GetLifecycleConfiguration",
                    "s3:GetBucketTagging",
                ],
                On::Arns(&["arn:${partition}:s3:::${env}-${suffix}-${account}"]),
            ),
        ],
        write: &[grant(
            &[
                "s3:CreateBucket",
                "s3:PutBucketOwnershipControls",
                "s3:PutBucketTagging",
                "s3:PutBucketPublicAccessBlock",
                "s3:PutEncryptionConfiguration",
                "s3:PutBucketVersioning",
                "s3:PutBucketPolicy",
                "s3:PutLifecycleConfiguration",
            ],
            On::Arns(&["arn:${partition}:s3:::${env}-${suffix}-${account}"]),
        )],
        delete: &[
            grant(
                &["s3:ListBucket", "s3:ListBucketVersions", "s3:DeleteBucket"],
                On::Arns(&["arn:${partition}:s3:::${env}-${suffix}-${account}"]),
            ),
            grant(
                &["s3:DeleteObject", "s3:DeleteObjectVersion"],
                On::Arns(&["arn:${partition}:s3:::${env}-${suffix}-${account}/*"]),
            ),
        ],
    };
    const FIELDS: &'static [&'static str] = Field::NAMES;

    fn name_part(&self) -> Option<&str> {
        Some(&self.suffix)
    }
    const PUBLISHES: &'static [Attr] = &[Attr::Id, Attr::Arn];
    const TAGS_READ_AHEAD: bool = true;

    async fn observe(&self, cx: &NodeCx<'_>) -> Result<Option<Observed>, Failure> {
        let s3 = &cx.aws().s3;
        let name = self.name(cx);
        let owner = cx.scope().account.as_str();
        let named = |op: &'static str| move |f: Failure| f.context(op);
        // Versioning first, from this account's bucket only: it says whether the bucket is
        // there (NoSuchBucket) and is ours (a bucket of that name in another account is an
        // error), as a HeadBucket would, and is one of the settings besides. A bucket never
        // versioned answers with no status, never "not found".
        let Some(versioning) = s3
            .get_bucket_versioning()
            .bucket(&name)
            .expected_bucket_owner(owner)
            .send()
            .await
            .or_absent()
            .map_err(named("GetBucketVersioning"))?
        else {
            return Ok(None);
        };
        let (pab, encryption, policy, ownership, lifecycle, tags) = tokio::try_join!(
            async {
                s3.get_public_access_block()
                    .bucket(&name)
                    .send()
                    .await
                    .or_absent()
                    .map_err(named("GetPublicAccessBlock"))
            },
            async {
                s3.get_bucket_encryption()
                    .bucket(&name)
                    .send()
                    .await
                    .or_absent()
                    .map_err(named("GetBucketEncryption"))
            },
            async {
                // A policy owned by a `bucket_policy` node is that node's to read.
                if !self.owns_policy {
                    return Ok(None);
                }
                s3.get_bucket_policy()
                    .bucket(&name)
                    .send()
                    .await
                    .or_absent()
                    .map_err(named("GetBucketPolicy"))
            },
            async {
                s3.get_bucket_ownership_controls()
                    .bucket(&name)
                    .send()
                    .await
                    .or_absent()
                    .map_err(named("GetBucketOwnershipControls"))
            },
            async {
                s3.get_bucket_lifecycle_configuration()
                    .bucket(&name)
                    .send()
                    .await
                    .or_absent()
                    .map_err(named("GetBucketLifecycleConfiguration"))
            },
            async {
                let arn = format!("arn:{}:s3:::{name}", cx.scope().partition);
                let own = async {
                    s3.get_bucket_tagging()
                        .bucket(&name)
                        .send()
                        .await
                        .or_absent()
                        .map(|t| t.map(|t| tags::from_s3(t.tag_set())))
                        .map_err(named("GetBucketTagging"))
                };
                cx.tags_of(&arn, own).await
            },
        )?;
        let encryption = encryption.and_then(|e| {
            let rule = e.server_side_encryption_configuration()?.rules().first()?;
            let default = rule.apply_server_side_encryption_by_default()?;
            Some((
                default.sse_algorithm().as_str().to_string(),
                default.kms_master_key_id().map(String::from),
            ))
        });
        Ok(Some(Observed {
            public_access_block: pab.and_then(|p| p.public_access_block_configuration().cloned()),
            versioning: versioning.status().cloned(),
            encryption,
            policy: match policy.as_ref().and_then(|p| p.policy()) {
                None => Value::Null,
                Some(text) => serde_json::from_str(text).map_err(|e| {
                    Failure::new(
                        "UnreadablePolicy",
                        format!("the policy of bucket {name} is not JSON: {e}"),
                    )
                })?,
            },
            ownership: ownership.and_then(|o| {
                o.ownership_controls()?
                    .rules()
                    .first()
                    .map(|r| r.object_ownership().clone())
            }),
            lifecycle: lifecycle
                .map(|l| lifecycle_of(l.rules()))
                .unwrap_or_default(),
            tags: tags.unwrap_or_default(),
            name,
        }))
    }

    fn planned_attrs(&self, cx: &NodeCx<'_>) -> Option<Attrs> {
        Some(self.attrs_of(cx))
    }

    fn attrs(&self, cx: &NodeCx<'_>, _have: &Observed) -> Result<Attrs, Failure> {
        Ok(self.attrs_of(cx))
    }

    fn diff(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &Observed,
        c: &mut Changes,
    ) -> Result<(), Failure> {
        let pab = have.public_access_block.as_ref();
        for (field, value) in [
            (
                Field::BlockPublicAcls,
                pab.and_then(|p| p.block_public_acls()),
            ),
            (
                Field::IgnorePublicAcls,
                pab.and_then(|p| p.ignore_public_acls()),
            ),
            (
                Field::BlockPublicPolicy,
                pab.and_then(|p| p.block_public_policy()),
            ),
            (
                Field::RestrictPublicBuckets,
                pab.and_then(|p| p.restrict_public_buckets()),
            ),
        ] {
            c.field(field, true, value.unwrap_or(false));
        }
        c.field(
            Field::Versioning,
            if self.versioning {
                "Enabled"
            } else {
                "Suspended"
            },
            have.versioning
                .as_ref()
                .map(|v| v.as_str())
                .unwrap_or("(off)"),
        );
        let (algorithm, key) = self.want_encryption(inputs)?;
        let have_encryption = have.encryption.clone().unwrap_or(("(none)".into(), None));
        c.field(
            Field::Encryption,
            algorithm.as_str(),
            have_encryption.0.as_str(),
        );
        if let Some(key) = key {
            c.key(
                Field::EncryptionKey,
                &key,
                have_encryption.1.as_deref(),
                false,
            );
        }
        c.field(
            Field::ObjectOwnership,
            self.ownership().as_str(),
            have.ownership
                .as_ref()
                .map(|o| o.as_str())
                .unwrap_or("(none)"),
        );
        if self.owns_policy {
            c.document(Field::Policy, &self.policy(cx), &have.policy);
        }
        if self.lifecycle != Lifecycle::default() {
            c.field(Field::Lifecycle, &self.lifecycle, &have.lifecycle);
        }
        c.tags(cx.tags(), &have.tags);
        Ok(())
    }

    async fn create(&self, cx: &NodeCx<'_>, inputs: &Inputs<'_>) -> Result<Attrs, Failure> {
        let name = self.name(cx);
        let region = cx.scope().region.as_str();
        // us-east-1 takes no location constraint.
        let config = (region != "us-east-1").then(|| {
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region))
                .build()
        });
        // A bucket made by an interrupted run is ours already (BucketAlreadyOwnedByYou);
        // one of that name in another account is an error that names the bucket.
        let made = cx
            .aws()
            .s3
            .create_bucket()
            .bucket(&name)
            .set_create_bucket_configuration(config)
            .object_ownership(self.ownership())
            .send()
            .await
            .or_exists(CreatedBy::S3)
            .map_err(|f| f.context(format!("creating bucket {name}")))?;
        if made.is_none() {
            cx.shared::<FoundMade>()
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(name.clone());
            // Asked only to exist, it does: its tags and settings are left to whoever made
            // it (another run may be writing them now, and S3 refuses a second configuration
            // write at once) or to the node's next look.
            if inputs.exist_only() {
                return Ok(self.attrs_of(cx));
            }
        }
        // Tags first, so the bucket is recognisable as the environment's at once; then the
        // settings, none of which holds data, so a repeat after an interruption is harmless.
        self.put_tags(cx, &name, &BTreeMap::new()).await?;
        if inputs.exist_only() {
            return Ok(self.attrs_of(cx));
        }
        self.put_public_access_block(cx, &name).await?;
        if made.is_none() {
            // Made before (BucketAlreadyOwnedByYou), so the ownership given to this create
            // did not apply. In us-east-1, CreateBucket answers a bucket already ours as if
            // made now: one this tool made has had its ownership from its own create, and
            // `diff` compares it, so the next look puts it right in any other case.
            self.put_ownership(cx, &name).await?;
        }
        self.put_encryption(cx, inputs, &name).await?;
        self.put_versioning(cx, &name).await?;
        if self.owns_policy {
            self.put_policy(cx, &name).await?;
        }
        self.put_lifecycle(cx, &name).await?;
        Ok(self.attrs_of(cx))
    }

    async fn update(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &Observed,
        changes: &[Change],
    ) -> Result<Attrs, Failure> {
        let name = &have.name;
        let any = |fields: &[Field]| has_any(changes, fields);
        if any(&[
            Field::BlockPublicAcls,
            Field::IgnorePublicAcls,
            Field::BlockPublicPolicy,
            Field::RestrictPublicBuckets,
        ]) {
            self.put_public_access_block(cx, name).await?;
        }
        if any(&[Field::ObjectOwnership]) {
            self.put_ownership(cx, name).await?;
        }
        if any(&[Field::Encryption, Field::EncryptionKey]) {
            self.put_encryption(cx, inputs, name).await?;
        }
        if any(&[Field::Versioning]) {
            self.put_versioning(cx, name).await?;
        }
        if any(&[Field::Policy]) {
            self.put_policy(cx, name).await?;
        }
        if any(&[Field::Lifecycle]) {
            self.put_lifecycle(cx, name).await?;
        }
        if tags_changed(changes) {
            self.put_tags(cx, name, &have.tags).await?;
        }
        Ok(self.attrs_of(cx))
    }

    fn keep_on_down(&self, cx: &NodeCx<'_>, have: &Observed) -> Option<String> {
        (self.holds_data && !cx.cx.flags.destroy_data).then(|| {
            format!(
                "bucket {} ({}) kept with its objects; `down --destroy-data` deletes them",
                have.name, self.purpose
            )
        })
    }

    async fn delete(&self, cx: &NodeCx<'_>, have: &Observed) -> Result<(), Failure> {
        let deleted = self.empty(cx, &have.name).await?;
        cx.aws()
            .s3
            .delete_bucket()
            .bucket(&have.name)
            .send()
            .await
            .or_absent()?;
        if deleted > 0 {
            cx.note(format!(
                "bucket {} ({}) deleted with {deleted} object version(s)",
                have.name, self.purpose
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_fit_s3() {
        let longest = super::bucket_name(
            &format!("{}-{}", "p".repeat(12), "e".repeat(20)),
            "state",
            "123456789012",
        );
        assert!(longest.len() <= 63, "{}", longest.len());
    }
}
