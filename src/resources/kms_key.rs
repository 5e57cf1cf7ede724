//! The environment's customer-managed KMS key and its alias `alias/<project>-<env>`.
//!
//! Rotation on; the key policy lets CloudWatch Logs, SNS and CloudWatch alarms use it
//! directly, and RDS, AWS Backup and Secrets Manager on behalf of the account. `down` keeps
//! it unless `--destroy-data`, which schedules its deletion.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_kms::types::{KeyMetadata, KeySpec, KeyState, KeyUsageType};
use serde_json::{json, Value};

use super::{Ids, NodeCx, Resource};
use crate::aws::errors::OrAbsent;
use crate::aws::tags::kms_tags;
use crate::aws::tags::{ENV_TAG, NODE_TAG};
use crate::diff::{Change, Changes};
use crate::error::Failure;

pub struct KmsKey;

pub struct Observed {
    meta: KeyMetadata,
    /// True when the alias points at this key.
    alias_ok: bool,
    /// True when the alias exists (pointing elsewhere if `alias_ok` is false).
    alias_exists: bool,
    rotation: bool,
    policy: Value,
    tags: BTreeMap<String, String>,
}

impl Observed {
    fn key_id(&self) -> &str {
        self.meta.key_id()
    }
}

/// The key policy (pure, from partition, region and account).
pub fn key_policy(partition: &str, region: &str, account: &str, env_full: &str) -> Value {
    let root = format!("arn:{partition}:iam::{account}:root");
    let via: Vec<String> = ["rds", "backup", "secretsmanager"]
        .iter()
        .map(|s| format!("{s}.{region}.amazonaws.com"))
        .collect();
    json!({
        "Version": "2012-10-17",
        "Id": format!("{env_full}-key-policy"),
        "Statement": [
            {
                "Sid": "AccountAdministration",
                "Effect": "Allow",
                "Principal": {"AWS": root},
                "Action": "kms:*",
                "Resource": "*"
            },
            {
                "Sid": "CloudWatchLogs",
                "Effect": "Allow",
                "Principal": {"Service": format!("logs.{region}.amazonaws.com")},
                "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                "Resource": "*",
                "Condition": {"ArnLike": {
                    "kms:EncryptionContext:aws:logs:arn": format!("arn:{partition}:logs:{region}:{account}:log-group:*")
                }}
            },
            {
                "Sid": "SnsAndAlarms",
                "Effect": "Allow",
                "Principal": {"Service": ["sns.amazonaws.com", "cloudwatch.amazonaws.com"]},
                "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:SourceAccount": account}}
            },
            {
                "Sid": "RdsBackupSecretsManagerForTheAccount",
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:CreateGrant", "kms:DescribeKey"],
                "Resource": "*",
                "Condition": {"StringEquals": {"kms:CallerAccount": account, "kms:ViaService": via}}
            }
        ]
    })
}

impl KmsKey {
    fn policy(&self, cx: &NodeCx<'_>) -> Value {
        key_policy(
            &cx.cx.partition,
            &cx.env().region,
            &cx.cx.account_id,
            &cx.env_full(),
        )
    }

    /// The key the alias names; else a key carrying this node's tags (an earlier run
    /// stopped between CreateKey and CreateAlias). Keys pending deletion are skipped there.
    async fn locate(&self, cx: &NodeCx<'_>) -> Result<Option<(KeyMetadata, bool, bool)>, Failure> {
        let kms = &cx.cx.clients.kms;
        if let Some(out) = kms
            .describe_key()
            .key_id(cx.env().kms_alias())
            .send()
            .await
            .or_absent()?
        {
            let meta = out
                .key_metadata()
                .cloned()
                .ok_or_else(|| Failure::missing("key metadata"))?;
            return Ok(Some((meta, true, true)));
        }
        let env_full = cx.env_full();
        let mut keys = kms.list_keys().into_paginator().items().send();
        while let Some(entry) = keys.next().await {
            let entry = entry.map_err(Failure::from)?;
            let Some(id) = entry.key_id() else { continue };
            let tags = match kms.list_resource_tags().key_id(id).send().await {
                Ok(t) => t,
                // Keys of other principals or AWS-managed keys may not be readable.
                Err(_) => continue,
            };
            let has = |k: &str, v: &str| {
                tags.tags()
                    .iter()
                    .any(|t| t.tag_key() == k && t.tag_value() == v)
            };
            if has(ENV_TAG, &env_full) && has(NODE_TAG, cx.node) {
                let meta = kms.describe_key().key_id(id).send().await?;
                let meta = meta
                    .key_metadata()
                    .cloned()
                    .ok_or_else(|| Failure::missing("key metadata"))?;
                if meta.key_state() != Some(&KeyState::PendingDeletion) {
                    return Ok(Some((meta, false, false)));
                }
            }
        }
        Ok(None)
    }

    async fn set_alias(&self, cx: &NodeCx<'_>, key_id: &str, exists: bool) -> Result<(), Failure> {
        let kms = &cx.cx.clients.kms;
        if exists {
            kms.update_alias()
                .alias_name(cx.env().kms_alias())
                .target_key_id(key_id)
                .send()
                .await?;
        } else {
            kms.create_alias()
                .alias_name(cx.env().kms_alias())
                .target_key_id(key_id)
                .send()
                .await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Resource for KmsKey {
    type Observed = Observed;
    const KIND: &'static str = "kms_key";

    async fn find(&self, cx: &NodeCx<'_>) -> Result<Option<Observed>, Failure> {
        let Some((meta, alias_ok, alias_exists)) = self.locate(cx).await? else {
            return Ok(None);
        };
        let kms = &cx.cx.clients.kms;
        let id = meta.key_id().to_string();
        if meta.key_state() == Some(&KeyState::PendingDeletion) {
            // Rotation status and policy cannot be read usefully; the diff names the state.
            return Ok(Some(Observed {
                meta,
                alias_ok,
                alias_exists,
                rotation: false,
                policy: Value::Null,
                tags: BTreeMap::new(),
            }));
        }
        let (rotation, policy, tags) = tokio::try_join!(
            async {
                kms.get_key_rotation_status()
                    .key_id(&id)
                    .send()
                    .await
                    .map_err(Failure::from)
            },
            async {
                kms.get_key_policy()
                    .key_id(&id)
                    .policy_name("default")
                    .send()
                    .await
                    .map_err(Failure::from)
            },
            async {
                kms.list_resource_tags()
                    .key_id(&id)
                    .send()
                    .await
                    .map_err(Failure::from)
            },
        )?;
        let policy = serde_json::from_str(policy.policy().unwrap_or("null")).unwrap_or(Value::Null);
        let tags = tags
            .tags()
            .iter()
            .map(|t| (t.tag_key().to_string(), t.tag_value().to_string()))
            .collect();
        Ok(Some(Observed {
            meta,
            alias_ok,
            alias_exists,
            rotation: rotation.key_rotation_enabled(),
            policy,
            tags,
        }))
    }

    fn ids(&self, _cx: &NodeCx<'_>, have: &Observed) -> Result<Ids, Failure> {
        Ok(Ids {
            id: have.key_id().to_string(),
            arn: have.meta.arn().map(String::from),
        })
    }

    fn diff(&self, cx: &NodeCx<'_>, have: &Observed) -> Result<Vec<Change>, Failure> {
        let mut c = Changes::default();
        let state = have
            .meta
            .key_state()
            .map(|s| s.as_str())
            .unwrap_or("unknown");
        c.field("key_state", "Enabled", state);
        c.field(
            "alias",
            cx.env().kms_alias().as_str(),
            if have.alias_ok {
                cx.env().kms_alias()
            } else {
                "(absent)".into()
            }
            .as_str(),
        );
        if state != "PendingDeletion" {
            c.field("rotation_enabled", true, have.rotation);
            if have.policy != self.policy(cx) {
                c.0.push(Change {
                    field: "key_policy".into(),
                    want: "the tap-provision key policy".into(),
                    have: "a different policy".into(),
                    replace: false,
                });
            }
            c.tags(&cx.tags(), &have.tags);
        }
        Ok(c.into_vec())
    }

    async fn create(&self, cx: &NodeCx<'_>) -> Result<Ids, Failure> {
        let kms = &cx.cx.clients.kms;
        let out = kms
            .create_key()
            .description(format!(
                "{}: data encryption key (tap-provision)",
                cx.env_full()
            ))
            .key_usage(KeyUsageType::EncryptDecrypt)
            .key_spec(KeySpec::SymmetricDefault)
            .policy(self.policy(cx).to_string())
            .set_tags(Some(kms_tags(&cx.tags())?))
            .send()
            .await?;
        let meta = out
            .key_metadata()
            .ok_or_else(|| Failure::missing("key metadata"))?;
        let id = meta.key_id().to_string();
        kms.enable_key_rotation().key_id(&id).send().await?;
        self.set_alias(cx, &id, false).await?;
        Ok(Ids {
            id,
            arn: meta.arn().map(String::from),
        })
    }

    async fn update(
        &self,
        cx: &NodeCx<'_>,
        have: &Observed,
        changes: &[Change],
    ) -> Result<(), Failure> {
        let kms = &cx.cx.clients.kms;
        let id = have.key_id();
        for ch in changes {
            match ch.field.as_str() {
                "key_state" => {
                    if ch.have == "PendingDeletion" {
                        kms.cancel_key_deletion().key_id(id).send().await?;
                    }
                    kms.enable_key().key_id(id).send().await?;
                }
                "alias" => self.set_alias(cx, id, have.alias_exists).await?,
                "rotation_enabled" => {
                    kms.enable_key_rotation().key_id(id).send().await?;
                }
                "key_policy" => {
                    kms.put_key_policy()
                        .key_id(id)
                        .policy_name("default")
                        .policy(self.policy(cx).to_string())
                        .send()
                        .await?;
                }
                _ => {}
            }
        }
        let pending = have.meta.key_state() == Some(&KeyState::PendingDeletion);
        if pending || changes.iter().any(|c| c.field.starts_with("tags.")) {
            kms.tag_resource()
                .key_id(id)
                .set_tags(Some(kms_tags(&cx.tags())?))
                .send()
                .await?;
        }
        if pending {
            // Rotation and policy were not readable while deletion was pending: set both.
            kms.enable_key_rotation().key_id(id).send().await?;
            kms.put_key_policy()
                .key_id(id)
                .policy_name("default")
                .policy(self.policy(cx).to_string())
                .send()
                .await?;
        }
        Ok(())
    }

    fn keep_on_down(&self, cx: &NodeCx<'_>, have: &Observed) -> Option<String> {
        if have.meta.key_state() == Some(&KeyState::PendingDeletion) {
            return Some(format!(
                "KMS key {} is already scheduled for deletion",
                have.key_id()
            ));
        }
        (!cx.cx.flags.destroy_data).then(|| {
            format!(
                "KMS key {} ({}) kept: it encrypts the environment's data; `down --destroy-data` schedules its deletion",
                cx.env().kms_alias(),
                have.meta.arn().unwrap_or(have.key_id())
            )
        })
    }

    /// Schedules deletion after the configured window and frees the alias, so a later `up`
    /// makes a new key. Cancellable with `aws kms cancel-key-deletion` until the window ends.
    async fn delete(&self, cx: &NodeCx<'_>, have: &Observed) -> Result<(), Failure> {
        let kms = &cx.cx.clients.kms;
        let window = cx.env().encryption.key_deletion_window_days;
        kms.schedule_key_deletion()
            .key_id(have.key_id())
            .pending_window_in_days(window)
            .send()
            .await?;
        if have.alias_ok {
            kms.delete_alias()
                .alias_name(cx.env().kms_alias())
                .send()
                .await
                .or_absent()?;
        }
        cx.cx.reporter.note(&format!(
            "KMS key {} scheduled for deletion in {window} days (cancel with `aws kms cancel-key-deletion --key-id {}`)",
            have.key_id(),
            have.key_id()
        ));
        Ok(())
    }
}
