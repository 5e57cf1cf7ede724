//! The AWS Backup vault, encrypted with the CMK. It holds the recovery points, which are
//! data: `down` keeps the vault unless `--destroy-data`, which deletes the recovery points
//! and then the vault.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;

use super::{Ids, NodeCx, Resource};
use crate::aws::errors::OrAbsent;
use crate::aws::wait::{self, Poll};
use crate::diff::{Change, Changes};
use crate::error::Failure;

pub struct BackupVault {
    pub key: String,
}

pub struct Observed {
    arn: String,
    key_arn: Option<String>,
    tags: BTreeMap<String, String>,
}

/// The vault's name: `<project>-<env>`.
pub fn vault_name(env_full: &str) -> String {
    env_full.to_string()
}

async fn recovery_points(cx: &NodeCx<'_>, vault: &str) -> Result<Vec<String>, Failure> {
    let points = cx
        .cx
        .clients
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

#[async_trait]
impl Resource for BackupVault {
    type Observed = Observed;
    const KIND: &'static str = "backup_vault";

    async fn find(&self, cx: &NodeCx<'_>) -> Result<Option<Observed>, Failure> {
        let backup = &cx.cx.clients.backup;
        let Some(vault) = backup
            .describe_backup_vault()
            .backup_vault_name(vault_name(&cx.env_full()))
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
        let tags = backup.list_tags().resource_arn(&arn).send().await?;
        Ok(Some(Observed {
            key_arn: vault.encryption_key_arn().map(String::from),
            tags: tags
                .tags()
                .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
            arn,
        }))
    }

    fn ids(&self, cx: &NodeCx<'_>, have: &Observed) -> Result<Ids, Failure> {
        Ok(Ids {
            id: vault_name(&cx.env_full()),
            arn: Some(have.arn.clone()),
        })
    }

    fn diff(&self, cx: &NodeCx<'_>, have: &Observed) -> Result<Vec<Change>, Failure> {
        let key = cx.ids_of(&self.key)?;
        let mut c = Changes::default();
        c.immutable(
            "encryption_key_arn",
            key.arn(&self.key)?,
            have.key_arn.as_deref().unwrap_or("(none)"),
        );
        c.tags(&cx.tags(), &have.tags);
        Ok(c.into_vec())
    }

    async fn create(&self, cx: &NodeCx<'_>) -> Result<Ids, Failure> {
        let key = cx.ids_of(&self.key)?;
        let name = vault_name(&cx.env_full());
        let tags: HashMap<String, String> = cx.tags().into_iter().collect();
        let out = cx
            .cx
            .clients
            .backup
            .create_backup_vault()
            .backup_vault_name(&name)
            .encryption_key_arn(key.arn(&self.key)?)
            .set_backup_vault_tags(Some(tags))
            .creator_request_id(cx.token())
            .send()
            .await?;
        Ok(Ids {
            id: name,
            arn: out.backup_vault_arn().map(String::from),
        })
    }

    async fn update(
        &self,
        cx: &NodeCx<'_>,
        have: &Observed,
        changes: &[Change],
    ) -> Result<(), Failure> {
        if changes.iter().any(|c| c.field.starts_with("tags.")) {
            let tags: HashMap<String, String> = cx.tags().into_iter().collect();
            cx.cx
                .clients
                .backup
                .tag_resource()
                .resource_arn(&have.arn)
                .set_tags(Some(tags))
                .send()
                .await?;
        }
        Ok(())
    }

    fn keep_on_down(&self, cx: &NodeCx<'_>, have: &Observed) -> Option<String> {
        (!cx.cx.flags.destroy_data).then(|| {
            format!(
                "backup vault {} ({}) kept with its recovery points; `down --destroy-data` deletes them",
                vault_name(&cx.env_full()),
                have.arn
            )
        })
    }

    async fn delete(&self, cx: &NodeCx<'_>, _have: &Observed) -> Result<(), Failure> {
        let backup = &cx.cx.clients.backup;
        let name = vault_name(&cx.env_full());
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
        wait::until(
            &format!("backup vault {name} to be empty"),
            cx.env().wait_timeout,
            Duration::from_secs(2),
            |state, waited| {
                cx.progress(format!(
                    "waiting for recovery points to go ({state}, {}s)",
                    waited.as_secs()
                ))
            },
            || async {
                let left = recovery_points(cx, &name).await?.len();
                Ok(if left == 0 {
                    Poll::Ready
                } else {
                    Poll::Pending(format!("{left} left"))
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
        cx.cx.reporter.note(&format!(
            "backup vault {name} deleted with {} recovery point(s) (--destroy-data)",
            points.len()
        ));
        Ok(())
    }
}
