//! The AWS Backup vault, encrypted with the CMK. It holds the recovery points, which are
//! data: `down` keeps the vault unless `--destroy-data`, which deletes the recovery points
//! and then the vault.

use crate::aws::wait::expected::BACKUP_VAULT_EMPTY;
use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{NodeCx, Resource};
use crate::aws::errors::{CreatedBy, OrAbsent, OrExists};
use crate::aws::tags;
use crate::aws::wait::Poll;
use crate::diff::{fields, has, tags_changed, Change, Changes};
use crate::error::Failure;
use crate::model::{Attrs, Inputs, Ref};
use crate::policy::{grant, Grants, On};
use crate::resources::template::Attr;

fields! {
    /// The fields a backup vault is compared on, as `plan`, `drift` and `history` name them.
    enum Field {
        EncryptionKeyArn = "encryption_key_arn",
        AccessPolicy = "access_policy",
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct BackupVault {
    pub key: Ref,
}

pub struct Observed {
    arn: String,
    key_arn: Option<String>,
    /// A resource policy on the vault: the tool sets none, so one added by hand (letting
    /// another account copy in, or denying deletion) is drift.
    access_policy: Option<String>,
    tags: BTreeMap<String, String>,
}

/// The vault's name: `<project>-<env>`.
pub fn vault_name(env_full: &str) -> String {
    env_full.to_string()
}

async fn recovery_points(cx: &NodeCx<'_>, vault: &str) -> Result<Vec<String>, Failure> {
    let points = cx
        .aws()
        .backup
        .list_recovery_points_by_backup_vault()
        .backup_vault_name(vault)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(|e| Failure::from(e).context("listing recovery points"))?;
    Ok(points
        .iter()
        .filter_map(|p| p.recovery_point_arn().map(String::from))
        .collect())
}

fn attrs_of(cx: &NodeCx<'_>, arn: &str) -> Attrs {
    Attrs::id(vault_name(cx.env_full())).with_arn(arn)
}

#[async_trait]
impl Resource for BackupVault {
    type Observed = Observed;
    const KIND: &'static str = "backup_vault";
    const GRANTS: &'static Grants = &Grants {
        read: &[
            crate::policy::BULK_TAGS,
            grant(
                &[
                    "backup:DescribeBackupVault",
                    "backup:ListTags",
                    "backup:GetBackupVaultAccessPolicy",
                ],
                On::Arns(&["arn:${partition}:backup:${region}:${account}:backup-vault:${env}"]),
            ),
        ],
        write: &[
            grant(
                &[
                    "backup:CreateBackupVault",
                    "backup:TagResource",
                    "backup:DeleteBackupVaultAccessPolicy",
                ],
                On::Arns(&["arn:${partition}:backup:${region}:${account}:backup-vault:${env}"]),
            ),
            grant(
                &["backup-storage:MountCapsule"],
                On::Any("AWS Backup's storage action has no resource-level permission"),
            ),
            grant(
                &[
                    "kms:CreateGrant",
                    "kms:GenerateDataKey",
                    "kms:Decrypt",
                    "kms:RetireGrant",
                    "kms:DescribeKey",
                ],
                On::Tagged,
            ),
        ],
        delete: &[
            grant(
                &[
                    "backup:ListRecoveryPointsByBackupVault",
                    "backup:DeleteRecoveryPoint",
                    "backup:DeleteBackupVault",
                ],
                On::Arns(&["arn:${partition}:backup:${region}:${account}:backup-vault:${env}"]),
            ),
            grant(
                &["backup:DeleteRecoveryPoint", "rds:DeleteDBClusterSnapshot"],
                On::Arns(&[
                    "arn:${partition}:rds:${region}:${account}:cluster-snapshot:awsbackup:*",
                ]),
            ),
        ],
    };
    const FIELDS: &'static [&'static str] = Field::NAMES;
    const PUBLISHES: &'static [Attr] = &[Attr::Id, Attr::Arn];
    const TAGS_READ_AHEAD: bool = true;

    async fn observe(&self, cx: &NodeCx<'_>) -> Result<Option<Observed>, Failure> {
        let backup = &cx.aws().backup;
        let Some(vault) = backup
            .describe_backup_vault()
            .backup_vault_name(vault_name(cx.env_full()))
            .send()
            .await
            .or_absent()?
        else {
            return Ok(None);
        };
        let arn = vault
            .backup_vault_arn()
            .ok_or_else(|| Failure::missing("vault ARN"))?
            .to_string();
        let own = async {
            let listed = backup.list_tags().resource_arn(&arn).send().await?;
            Ok(Some(tags::from_map(listed.tags())))
        };
        let Some(tags) = cx.tags_of(&arn, own).await? else {
            return Ok(None);
        };
        // A vault without a policy answers ResourceNotFoundException.
        let access_policy = backup
            .get_backup_vault_access_policy()
            .backup_vault_name(vault_name(cx.env_full()))
            .send()
            .await
            .or_absent()?
            .and_then(|p| p.policy().map(String::from));
        Ok(Some(Observed {
            key_arn: vault.encryption_key_arn().map(String::from),
            access_policy,
            tags,
            arn,
        }))
    }

    fn planned_attrs(&self, cx: &NodeCx<'_>) -> Option<Attrs> {
        let name = vault_name(cx.env_full());
        Some(attrs_of(
            cx,
            &cx.arn("backup", &format!("backup-vault:{name}")),
        ))
    }

    fn attrs(&self, cx: &NodeCx<'_>, have: &Observed) -> Result<Attrs, Failure> {
        Ok(attrs_of(cx, &have.arn))
    }

    fn diff(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &Observed,
        c: &mut Changes,
    ) -> Result<(), Failure> {
        c.immutable(
            Field::EncryptionKeyArn,
            inputs.arn(&self.key)?,
            have.key_arn.as_deref().unwrap_or("(none)"),
        );
        c.field(
            Field::AccessPolicy,
            "(none)",
            have.access_policy.as_deref().unwrap_or("(none)"),
        );
        c.tags(cx.tags(), &have.tags);
        Ok(())
    }

    async fn create(&self, cx: &NodeCx<'_>, inputs: &Inputs<'_>) -> Result<Attrs, Failure> {
        let name = vault_name(cx.env_full());
        let backup = &cx.aws().backup;
        let created = backup
            .create_backup_vault()
            .backup_vault_name(&name)
            .encryption_key_arn(inputs.arn(&self.key)?)
            .set_backup_vault_tags(Some(tags::map(cx.tags())))
            .creator_request_id(cx.token(&[], 50))
            .send()
            .await
            .or_exists(CreatedBy::Backup)?;
        let arn = match created.and_then(|o| o.backup_vault_arn().map(String::from)) {
            Some(arn) => arn,
            // Made by an interrupted run: read its ARN.
            None => backup
                .describe_backup_vault()
                .backup_vault_name(&name)
                .send()
                .await?
                .backup_vault_arn()
                .ok_or_else(|| Failure::missing("vault ARN"))?
                .to_string(),
        };
        Ok(attrs_of(cx, &arn))
    }

    async fn update(
        &self,
        cx: &NodeCx<'_>,
        _inputs: &Inputs<'_>,
        have: &Observed,
        changes: &[Change],
    ) -> Result<Attrs, Failure> {
        if has(changes, Field::AccessPolicy) {
            cx.aws()
                .backup
                .delete_backup_vault_access_policy()
                .backup_vault_name(vault_name(cx.env_full()))
                .send()
                .await
                .or_absent()?;
        }
        if tags_changed(changes) {
            tags::retag_backup(&cx.aws().backup, &have.arn, cx.tags()).await?;
        }
        Ok(attrs_of(cx, &have.arn))
    }

    fn keep_on_down(&self, cx: &NodeCx<'_>, have: &Observed) -> Option<String> {
        (!cx.cx.flags.destroy_data).then(|| {
            format!(
                "backup vault {} ({}) kept with its recovery points; `down --destroy-data` deletes them",
                vault_name(cx.env_full()),
                have.arn
            )
        })
    }

    async fn delete(&self, cx: &NodeCx<'_>, _have: &Observed) -> Result<(), Failure> {
        let backup = &cx.aws().backup;
        let name = vault_name(cx.env_full());
        let points = recovery_points(cx, &name).await?;
        for arn in &points {
            backup
                .delete_recovery_point()
                .backup_vault_name(&name)
                .recovery_point_arn(arn)
                .send()
                .await
                .or_absent()?;
        }
        // Recovery point deletion is asynchronous; the vault can go once it is empty.
        cx.wait_ready(
            &format!("backup vault {name} to be empty"),
            BACKUP_VAULT_EMPTY,
            || async {
                let left = recovery_points(cx, &name).await?.len();
                Ok(if left == 0 {
                    Poll::Ready
                } else {
                    Poll::Pending(format!("{left} recovery points left"))
                })
            },
        )
        .await?;
        backup
            .delete_backup_vault()
            .backup_vault_name(&name)
            .send()
            .await
            .or_absent()?;
        cx.note(format!(
            "backup vault {name} deleted with {} recovery point(s) (--destroy-data)",
            points.len()
        ));
        Ok(())
    }
}
