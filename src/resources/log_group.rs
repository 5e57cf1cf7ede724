//! CloudWatch Logs log groups: KMS-encrypted, with retention, tagged at creation.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_cloudwatchlogs::types::LogGroup as AwsLogGroup;

use super::{Ids, NodeCx, Resource};
use crate::aws::errors::OrAbsent;
use crate::aws::retry;
use crate::diff::{Change, Changes};
use crate::error::Failure;

pub struct LogGroup {
    /// Name suffix: the group is `/<project>/<project>-<env>/<suffix>`.
    pub suffix: &'static str,
    pub retention_days: i32,
    /// Node of the KMS key.
    pub key: String,
}

pub struct Observed {
    group: AwsLogGroup,
    tags: BTreeMap<String, String>,
}

impl LogGroup {
    pub fn name_for(project: &str, env_full: &str, suffix: &str) -> String {
        format!("/{project}/{env_full}/{suffix}")
    }

    fn name(&self, cx: &NodeCx<'_>) -> String {
        Self::name_for(&cx.env().project, &cx.env_full(), self.suffix)
    }

    /// The ARN without the `:*` suffix DescribeLogGroups adds.
    fn arn(&self, cx: &NodeCx<'_>) -> String {
        cx.arn("logs", &format!("log-group:{}", self.name(cx)))
    }
}

#[async_trait]
impl Resource for LogGroup {
    type Observed = Observed;
    const KIND: &'static str = "log_group";

    async fn find(&self, cx: &NodeCx<'_>) -> Result<Option<Observed>, Failure> {
        let logs = &cx.cx.clients.logs;
        let name = self.name(cx);
        let out = logs
            .describe_log_groups()
            .log_group_name_prefix(&name)
            .send()
            .await?;
        let Some(group) = out
            .log_groups()
            .iter()
            .find(|g| g.log_group_name() == Some(name.as_str()))
        else {
            return Ok(None);
        };
        let tags = logs
            .list_tags_for_resource()
            .resource_arn(self.arn(cx))
            .send()
            .await?;
        let tags = tags
            .tags()
            .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        Ok(Some(Observed {
            group: group.clone(),
            tags,
        }))
    }

    fn ids(&self, cx: &NodeCx<'_>, _have: &Observed) -> Result<Ids, Failure> {
        Ok(Ids {
            id: self.name(cx),
            arn: Some(self.arn(cx)),
        })
    }

    fn diff(&self, cx: &NodeCx<'_>, have: &Observed) -> Result<Vec<Change>, Failure> {
        let key = cx.ids_of(&self.key)?;
        let mut c = Changes::default();
        c.field(
            "kms_key_id",
            key.arn(&self.key)?,
            have.group.kms_key_id().unwrap_or("(none)"),
        );
        c.field(
            "retention_in_days",
            Some(self.retention_days),
            have.group.retention_in_days(),
        );
        c.tags(&cx.tags(), &have.tags);
        Ok(c.into_vec())
    }

    async fn create(&self, cx: &NodeCx<'_>) -> Result<Ids, Failure> {
        let logs = &cx.cx.clients.logs;
        let key = cx.ids_of(&self.key)?;
        let key_arn = key.arn(&self.key)?.to_string();
        let name = self.name(cx);
        let tags: HashMap<String, String> = cx.tags().into_iter().collect();
        // PLATFORM.md: a new KMS key may not be visible to Logs yet: retry "could not be
        // found" for 2 minutes. "not allowed to be used" is the key policy: fail.
        retry::eventually(
            Duration::from_secs(120),
            |f| f.code == "InvalidParameterException" && f.message.contains("could not be found"),
            || async {
                match logs
                    .create_log_group()
                    .log_group_name(&name)
                    .kms_key_id(&key_arn)
                    .set_tags(Some(tags.clone()))
                    .send()
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(e) => {
                        let f = Failure::from(e);
                        if f.code == "ResourceAlreadyExistsException" {
                            Ok(())
                        } else {
                            Err(f)
                        }
                    }
                }
            },
        )
        .await?;
        logs.put_retention_policy()
            .log_group_name(&name)
            .retention_in_days(self.retention_days)
            .send()
            .await?;
        Ok(Ids {
            id: name,
            arn: Some(self.arn(cx)),
        })
    }

    async fn update(
        &self,
        cx: &NodeCx<'_>,
        _have: &Observed,
        changes: &[Change],
    ) -> Result<(), Failure> {
        let logs = &cx.cx.clients.logs;
        let name = self.name(cx);
        for ch in changes {
            match ch.field.as_str() {
                "kms_key_id" => {
                    let key = cx.ids_of(&self.key)?;
                    logs.associate_kms_key()
                        .log_group_name(&name)
                        .kms_key_id(key.arn(&self.key)?)
                        .send()
                        .await?;
                }
                "retention_in_days" => {
                    logs.put_retention_policy()
                        .log_group_name(&name)
                        .retention_in_days(self.retention_days)
                        .send()
                        .await?;
                }
                _ => {}
            }
        }
        if changes.iter().any(|c| c.field.starts_with("tags.")) {
            let tags: HashMap<String, String> = cx.tags().into_iter().collect();
            logs.tag_resource()
                .resource_arn(self.arn(cx))
                .set_tags(Some(tags))
                .send()
                .await?;
        }
        Ok(())
    }

    async fn delete(&self, cx: &NodeCx<'_>, _have: &Observed) -> Result<(), Failure> {
        cx.cx
            .clients
            .logs
            .delete_log_group()
            .log_group_name(self.name(cx))
            .send()
            .await
            .or_absent()?;
        Ok(())
    }
}
