//! The environment's customer-managed KMS key and its alias `alias/<project>-<env>`.
//!
//! Rotation on; the key policy lets CloudWatch Logs, SNS and CloudWatch alarms use it
//! directly, and RDS, AWS Backup and Secrets Manager on behalf of the account. `down` keeps
//! it unless `--destroy-data`, which schedules its deletion.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_kms::types::{KeyMetadata, KeySpec, KeyState, KeyUsageType};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{output, NodeCx, Resource};
use crate::aws::errors::{CreatedBy, OrAbsent, OrExists};
use crate::aws::tags::{self, ENV_TAG, NODE_TAG};
use crate::diff::{fields, has, tags_changed, Change, Changes};
use crate::error::Failure;
use crate::model::{Attrs, Inputs, Output, RecordedIds};
use crate::policy::{grant, Grants, On};
use crate::resources::template::Attr;

fields! {
    /// The fields a kms key is compared on, as `plan`, `drift` and `history` name them.
    enum Field {
        KeyState = "key_state",
        Alias = "alias",
        RotationEnabled = "rotation_enabled",
        KeyPolicy = "key_policy",
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct KmsKey {
    /// Waiting period when `down --destroy-data` schedules the key's deletion (7..=30).
    pub deletion_window_days: i32,
}

pub struct Observed {
    meta: KeyMetadata,
    /// True when the alias points at this key.
    alias_ok: bool,
    /// The other key the alias names, when it does not name this one.
    alias_target: Option<String>,
    rotation: bool,
    policy: Value,
    tags: BTreeMap<String, String>,
}

/// The key `locate` found, with its tags.
struct Located {
    meta: KeyMetadata,
    alias_ok: bool,
    /// The other key the alias names, when it does not name this one.
    alias_target: Option<String>,
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
    let suffix = super::dns_suffix(partition);
    let via: Vec<String> = ["rds", "backup", "secretsmanager"]
        .iter()
        .map(|s| format!("{s}.{region}.{suffix}"))
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
                "Principal": {"Service": format!("logs.{region}.{suffix}")},
                "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                "Resource": "*",
                "Condition": {"ArnLike": {
                    "kms:EncryptionContext:aws:logs:arn": format!("arn:{partition}:logs:{region}:{account}:log-group:*")
                }}
            },
            {
                // CloudWatch publishes alarm notifications to the encrypted alerts topic: the
                // statement AWS documents for it ("CloudWatch alarm, SNS topic with SSE").
                "Sid": "CloudWatchAlarmsPublish",
                "Effect": "Allow",
                "Principal": {"Service": "cloudwatch.amazonaws.com"},
                "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                "Resource": "*"
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
        let scope = cx.scope();
        key_policy(
            &scope.partition,
            &scope.region,
            &scope.account,
            &scope.env_full,
        )
    }

    /// The key the alias names, when it carries this node's tags; else a key carrying them,
    /// found by the tagging API in one read whatever the account holds (an earlier run
    /// stopped between CreateKey and CreateAlias, or the alias was pointed at another key by
    /// hand). Keys pending deletion are skipped there. A key the alias names that lost its
    /// identity tags is still it, unless it says it belongs to another environment or node.
    async fn locate(&self, cx: &NodeCx<'_>) -> Result<Option<Located>, Failure> {
        let (by_alias, alias_target, untagged) = self.by_alias(cx).await?;
        if by_alias.is_some() {
            return Ok(by_alias);
        }
        let arns: Vec<String> = cx
            .aws()
            .tagging
            .get_resources()
            .resource_type_filters("kms:key")
            .tag_filters(tag_filter(ENV_TAG, cx.env_full()))
            .tag_filters(tag_filter(NODE_TAG, cx.node))
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| Failure::from(e).context("finding the KMS key by its tags"))?
            .iter()
            .filter_map(|m| m.resource_arn().map(String::from))
            .collect();
        for arn in arns {
            // The tagging API can lag a tag edit: the key's own tags decide.
            let Some(found) = self.key(cx, &arn).await? else {
                continue;
            };
            if tagged_as_ours(cx, &tags::from_kms(&found.1)) {
                return Ok(Some(Located {
                    meta: found.0,
                    alias_ok: false,
                    alias_target,
                    tags: tags::from_kms(&found.1),
                }));
            }
        }
        Ok(untagged)
    }

    /// The key the alias names when it carries this node's tags (found); else the key the
    /// alias points at (drift on the alias), and that key when it lost its identity tags
    /// without saying it belongs to another environment or node (tag drift: the alias, like
    /// a name, still says it is ours).
    async fn by_alias(
        &self,
        cx: &NodeCx<'_>,
    ) -> Result<(Option<Located>, Option<String>, Option<Located>), Failure> {
        let kms = &cx.aws().kms;
        let alias = cx.scope().kms_alias();
        let Some(out) = kms.describe_key().key_id(&alias).send().await.or_absent()? else {
            return Ok((None, None, None));
        };
        let meta = out
            .key_metadata()
            .cloned()
            .ok_or_else(|| Failure::missing("key metadata"))?;
        let own = || async {
            let listed = kms
                .list_resource_tags()
                .key_id(meta.key_id())
                .send()
                .await?;
            Ok::<_, Failure>(tags::from_kms(listed.tags()))
        };
        // From the run's bulk read when it answers for the key, else its own read. The bulk
        // read can lag a tag edit: it may say "ours", never "not ours" alone, so an answer
        // that does not say ours is read again from the key itself before anything follows
        // from it (a key taken for another's could lead to a second one).
        let mut tags = match meta.arn() {
            Some(arn) => cx.tags_of(arn, own()).await?,
            None => own().await?,
        };
        if !tagged_as_ours(cx, &tags) {
            tags = own().await?;
        }
        let located = |meta, tags| Located {
            meta,
            alias_ok: true,
            alias_target: None,
            tags,
        };
        if tagged_as_ours(cx, &tags) {
            return Ok((Some(located(meta, tags)), None, None));
        }
        let target = Some(meta.key_id().to_string());
        let claimed_elsewhere = tags::claimed_elsewhere(&tags, cx.env_full(), cx.node).is_some();
        Ok((
            None,
            target,
            (!claimed_elsewhere).then(|| located(meta, tags)),
        ))
    }

    /// A key not pending deletion, with its tags; `None` when gone or going. A key whose
    /// tags cannot be read fails (so an unreadable key never leads to a second one).
    async fn key(
        &self,
        cx: &NodeCx<'_>,
        id: &str,
    ) -> Result<Option<(KeyMetadata, Vec<aws_sdk_kms::types::Tag>)>, Failure> {
        let kms = &cx.aws().kms;
        let Some(out) = kms.describe_key().key_id(id).send().await.or_absent()? else {
            return Ok(None);
        };
        let meta = out
            .key_metadata()
            .cloned()
            .ok_or_else(|| Failure::missing("key metadata"))?;
        if meta.key_state() == Some(&KeyState::PendingDeletion) {
            return Ok(None);
        }
        let tags = kms
            .list_resource_tags()
            .key_id(meta.key_id())
            .send()
            .await
            .map_err(|e| unreadable_tags(cx, meta.key_id(), e.into()))?;
        Ok(Some((meta, tags.tags().to_vec())))
    }

    /// A located key with its rotation status and policy.
    async fn observed(&self, cx: &NodeCx<'_>, located: Located) -> Result<Observed, Failure> {
        let Located {
            meta,
            alias_ok,
            alias_target,
            tags,
        } = located;
        let kms = &cx.aws().kms;
        let id = meta.key_id().to_string();
        if meta.key_state() == Some(&KeyState::PendingDeletion) {
            // Rotation status and policy cannot be read usefully; the diff names the state.
            return Ok(Observed {
                meta,
                alias_ok,
                alias_target,
                rotation: false,
                policy: Value::Null,
                tags: BTreeMap::new(),
            });
        }
        let (rotation, policy) = tokio::try_join!(
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
        )?;
        let policy = serde_json::from_str(policy.policy().unwrap_or("null")).map_err(|e| {
            Failure::new(
                "UnreadablePolicy",
                format!("the key policy of KMS key {id} is not JSON: {e}"),
            )
        })?;
        Ok(Observed {
            meta,
            alias_ok,
            alias_target,
            rotation: rotation.key_rotation_enabled(),
            policy,
            tags,
        })
    }

    async fn set_alias(&self, cx: &NodeCx<'_>, key_id: &str, exists: bool) -> Result<(), Failure> {
        let kms = &cx.aws().kms;
        let alias = cx.scope().kms_alias();
        if exists {
            kms.update_alias()
                .alias_name(alias)
                .target_key_id(key_id)
                .send()
                .await?;
        } else {
            let created = kms
                .create_alias()
                .alias_name(&alias)
                .target_key_id(key_id)
                .send()
                .await
                .or_exists(CreatedBy::Kms)?;
            // Made meanwhile (by hand, or a concurrent run): point it at this key.
            if created.is_none() {
                kms.update_alias()
                    .alias_name(alias)
                    .target_key_id(key_id)
                    .send()
                    .await?;
            }
        }
        Ok(())
    }

    async fn put_policy(&self, cx: &NodeCx<'_>, id: &str) -> Result<(), Failure> {
        cx.aws()
            .kms
            .put_key_policy()
            .key_id(id)
            .policy_name("default")
            .policy(self.policy(cx).to_string())
            .send()
            .await?;
        Ok(())
    }
}

/// The key carries this node's identity tags.
fn tagged_as_ours(cx: &NodeCx<'_>, tags: &BTreeMap<String, String>) -> bool {
    tags::ours(tags, cx.env_full(), cx.node)
}

fn tag_filter(key: &str, value: &str) -> aws_sdk_resourcegroupstagging::types::TagFilter {
    aws_sdk_resourcegroupstagging::types::TagFilter::builder()
        .key(key)
        .values(value)
        .build()
}

/// A key whose tags cannot be read could be this environment's: an error that says what to
/// allow, never "not ours" (which would make a second key).
fn unreadable_tags(cx: &NodeCx<'_>, id: &str, f: Failure) -> Failure {
    let fix = if f.code == "AccessDeniedException" {
        format!(
            "; allow kms:ListResourceTags on it to this identity, or point the alias {} at this \
             environment's key, so tap-provision can tell whether it is this environment's \
             before it would make one",
            cx.scope().kms_alias()
        )
    } else {
        String::new()
    };
    let f = f.context(format!("reading the tags of KMS key {id}"));
    Failure {
        message: format!("{}{fix}", f.message),
        ..f
    }
}

fn attrs_of(meta: &KeyMetadata) -> Attrs {
    let mut a = Attrs::id(meta.key_id());
    a.arn = meta.arn().map(String::from);
    a.state = meta.key_state().map(|s| s.as_str().to_string());
    a
}

#[async_trait]
impl Resource for KmsKey {
    type Observed = Observed;
    const KIND: &'static str = "kms_key";
    const GRANTS: &'static Grants = &Grants {
        read: &[
            grant(&[crate::aws::bulk_tags::ACTION], On::Any("the key's tags are read in bulk by ARN, and the key is found by its tags when its alias is gone (the tagging API takes no resource)")),
            grant(
                &["kms:ListKeys", "kms:ListResourceTags"],
                On::Any("after an interrupted create, every key's tags are read (the tagging API may lag a new key)"),
            ),
            grant(&["kms:DescribeKey", "kms:GetKeyRotationStatus", "kms:GetKeyPolicy"], On::Tagged),
        ],
        write: &[
            grant(&["kms:CreateKey", "kms:TagResource"], On::Creating),
            grant(
                &["kms:EnableKeyRotation", "kms:PutKeyPolicy", "kms:CancelKeyDeletion", "kms:EnableKey", "kms:TagResource", "kms:CreateAlias", "kms:UpdateAlias"],
                On::Tagged,
            ),
            grant(&["kms:CreateAlias", "kms:UpdateAlias"], On::Arns(&["arn:${partition}:kms:${region}:${account}:alias/${env}"])),
        ],
        delete: &[
            grant(&["kms:ScheduleKeyDeletion", "kms:DeleteAlias"], On::Tagged),
            grant(&["kms:DeleteAlias"], On::Arns(&["arn:${partition}:kms:${region}:${account}:alias/${env}"])),
        ],
    };
    const FIELDS: &'static [&'static str] = Field::NAMES;
    const PUBLISHES: &'static [Attr] = &[Attr::Id, Attr::Arn];

    async fn observe(&self, cx: &NodeCx<'_>) -> Result<Option<Observed>, Failure> {
        match self.locate(cx).await? {
            Some(located) => Ok(Some(self.observed(cx, located).await?)),
            None => Ok(None),
        }
    }

    /// The key the record names when neither the alias nor the tags lead to it (both were
    /// edited); a key scheduled for deletion out of band is still it (`repair` cancels that).
    async fn observe_recorded(
        &self,
        cx: &NodeCx<'_>,
        recorded: &RecordedIds,
    ) -> Result<Option<Observed>, Failure> {
        let kms = &cx.aws().kms;
        let Some(out) = kms
            .describe_key()
            .key_id(&recorded.id)
            .send()
            .await
            .or_absent()?
        else {
            return Ok(None);
        };
        let meta = out
            .key_metadata()
            .cloned()
            .ok_or_else(|| Failure::missing("key metadata"))?;
        let listed = kms
            .list_resource_tags()
            .key_id(meta.key_id())
            .send()
            .await?;
        let tags = tags::from_kms(listed.tags());
        cx.not_claimed(Self::KIND, meta.key_id(), &tags)?;
        let alias = cx.scope().kms_alias();
        let alias_target = kms
            .describe_key()
            .key_id(&alias)
            .send()
            .await
            .or_absent()?
            .and_then(|o| o.key_metadata().map(|m| m.key_id().to_string()));
        let alias_ok = alias_target.as_deref() == Some(meta.key_id());
        let located = Located {
            meta,
            alias_ok,
            alias_target: alias_target.filter(|_| !alias_ok),
            tags,
        };
        Ok(Some(self.observed(cx, located).await?))
    }

    /// After a create an interrupted run started, the tagging API may not list the new key
    /// yet: every key of the account is read, one by one, where nothing lags.
    async fn observe_interrupted(&self, cx: &NodeCx<'_>) -> Result<Option<Observed>, Failure> {
        let mut keys = cx.aws().kms.list_keys().into_paginator().items().send();
        while let Some(entry) = keys.next().await {
            let entry = entry.map_err(Failure::from)?;
            let Some(id) = entry.key_id() else { continue };
            let tags = cx
                .aws()
                .kms
                .list_resource_tags()
                .key_id(id)
                .send()
                .await
                .map_err(|e| unreadable_tags(cx, id, e.into()))?;
            if !tagged_as_ours(cx, &tags::from_kms(tags.tags())) {
                continue;
            }
            if let Some((meta, tags)) = self.key(cx, id).await? {
                let alias_target = self.by_alias(cx).await?.1;
                let located = Located {
                    alias_ok: alias_target.as_deref() == Some(meta.key_id()),
                    alias_target,
                    meta,
                    tags: tags::from_kms(&tags),
                };
                return Ok(Some(self.observed(cx, located).await?));
            }
        }
        Ok(None)
    }

    fn attrs(&self, _cx: &NodeCx<'_>, have: &Observed) -> Result<Attrs, Failure> {
        Ok(attrs_of(&have.meta))
    }

    fn diff(
        &self,
        cx: &NodeCx<'_>,
        _inputs: &Inputs<'_>,
        have: &Observed,
        c: &mut Changes,
    ) -> Result<(), Failure> {
        let state = have
            .meta
            .key_state()
            .map(|s| s.as_str())
            .unwrap_or("unknown");
        c.field(Field::KeyState, "Enabled", state);
        let alias = cx.scope().kms_alias();
        let alias_have = match (&have.alias_ok, &have.alias_target) {
            (true, _) => alias.clone(),
            (false, Some(other)) => format!("{alias} names key {other}"),
            (false, None) => "(absent)".into(),
        };
        c.field(Field::Alias, alias.as_str(), alias_have.as_str());
        if state != "PendingDeletion" {
            c.field(Field::RotationEnabled, true, have.rotation);
            c.document(Field::KeyPolicy, &self.policy(cx), &have.policy);
            c.tags(cx.tags(), &have.tags);
        }
        Ok(())
    }

    async fn create(&self, cx: &NodeCx<'_>, _inputs: &Inputs<'_>) -> Result<Attrs, Failure> {
        let kms = &cx.aws().kms;
        let out = kms
            .create_key()
            .description(format!(
                "{}: data encryption key (tap-provision)",
                cx.env_full()
            ))
            .key_usage(KeyUsageType::EncryptDecrypt)
            .key_spec(KeySpec::SymmetricDefault)
            .policy(self.policy(cx).to_string())
            .set_tags(Some(tags::kms(cx.tags())?))
            .send()
            .await?;
        let meta = out
            .key_metadata()
            .ok_or_else(|| Failure::missing("key metadata"))?;
        kms.enable_key_rotation()
            .key_id(meta.key_id())
            .send()
            .await?;
        self.set_alias(cx, meta.key_id(), false).await?;
        Ok(attrs_of(meta))
    }

    async fn update(
        &self,
        cx: &NodeCx<'_>,
        _inputs: &Inputs<'_>,
        have: &Observed,
        changes: &[Change],
    ) -> Result<Attrs, Failure> {
        let kms = &cx.aws().kms;
        let id = have.key_id();
        let pending = have.meta.key_state() == Some(&KeyState::PendingDeletion);
        if has(changes, Field::KeyState) {
            if pending {
                kms.cancel_key_deletion().key_id(id).send().await?;
            }
            kms.enable_key().key_id(id).send().await?;
        }
        if has(changes, Field::Alias) {
            self.set_alias(cx, id, have.alias_target.is_some()).await?;
        }
        // Rotation and policy were not readable while deletion was pending: set both.
        if pending || has(changes, Field::RotationEnabled) {
            kms.enable_key_rotation().key_id(id).send().await?;
        }
        if pending || has(changes, Field::KeyPolicy) {
            self.put_policy(cx, id).await?;
        }
        if pending || tags_changed(changes) {
            tags::retag_kms(kms, id, cx.tags()).await?;
        }
        let mut a = attrs_of(&have.meta);
        a.state = Some("Enabled".into());
        Ok(a)
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
                cx.scope().kms_alias(),
                have.meta.arn().unwrap_or(have.key_id())
            )
        })
    }

    /// Schedules deletion after the configured window and frees the alias, so a later `up`
    /// makes a new key. Cancellable with `aws kms cancel-key-deletion` until the window ends.
    async fn delete(&self, cx: &NodeCx<'_>, have: &Observed) -> Result<(), Failure> {
        let kms = &cx.aws().kms;
        let window = self.deletion_window_days;
        kms.schedule_key_deletion()
            .key_id(have.key_id())
            .pending_window_in_days(window)
            .send()
            .await?;
        if have.alias_ok {
            kms.delete_alias()
                .alias_name(cx.scope().kms_alias())
                .send()
                .await
                .or_absent()?;
        }
        cx.note(format!(
            "KMS key {} scheduled for deletion in {window} days (cancel with `aws kms cancel-key-deletion --key-id {}`)",
            have.key_id(),
            have.key_id()
        ));
        Ok(())
    }

    fn outputs(&self, attrs: &Attrs) -> Vec<Output> {
        vec![output("kms_key_arn", &attrs.arn)]
    }
}
