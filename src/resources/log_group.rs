//! CloudWatch Logs log groups: KMS-encrypted, with retention, tagged at creation.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_cloudwatchlogs::types::LogGroup as AwsLogGroup;
use serde::{Deserialize, Serialize};

use super::{NodeCx, Resource};
use crate::aws::errors::{CreatedBy, OrAbsent, OrExists};
use crate::aws::retry::{self, NEW_KEY_NOT_VISIBLE};
use crate::aws::tags;
use crate::diff::{fields, has, tags_changed, Change, Changes};
use crate::error::Failure;
use crate::model::{Attrs, Inputs, Ref};
use crate::policy::{grant, Grants, On};
use crate::resources::template::Attr;

fields! {
    /// The fields a log group is compared on, as `plan`, `drift` and `history` name them.
    enum Field {
        KmsKeyId = "kms_key_id",
        RetentionInDays = "retention_in_days",
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct LogGroup {
    /// Name suffix: the group is `/<project>/<project>-<env>/<suffix>`.
    pub suffix: String,
    pub retention_days: i32,
    pub key: Ref,
}

pub struct Observed {
    group: AwsLogGroup,
    tags: BTreeMap<String, String>,
}

/// The group's name, `/<project>/<project>-<env>/<suffix>`.
pub fn log_group_name(project: &str, env_full: &str, suffix: &str) -> String {
    format!("/{project}/{env_full}/{suffix}")
}

/// The run's one listing of the environment's log groups.
#[derive(Default)]
struct EnvGroups(tokio::sync::OnceCell<Vec<AwsLogGroup>>);

/// Every log group under the environment's prefix (`/<project>/<env>/`), listed once per
/// run whatever the account holds beside it: the log group nodes share one read.
async fn env_groups(cx: &NodeCx<'_>) -> Result<Vec<AwsLogGroup>, Failure> {
    let cache = cx.shared::<EnvGroups>();
    let prefix = log_group_name(&cx.scope().project, cx.env_full(), "");
    let groups = cache
        .0
        .get_or_try_init(|| async {
            cx.aws()
                .logs
                .describe_log_groups()
                .log_group_name_prefix(&prefix)
                .into_paginator()
                .items()
                .send()
                .collect::<Result<Vec<_>, _>>()
                .await
                .map_err(|e| Failure::from(e).context("listing the environment's log groups"))
        })
        .await?;
    Ok(groups.clone())
}

impl LogGroup {
    fn name(&self, cx: &NodeCx<'_>) -> String {
        log_group_name(&cx.scope().project, cx.env_full(), &self.suffix)
    }

    /// The ARN without the `:*` suffix DescribeLogGroups adds.
    fn arn(&self, cx: &NodeCx<'_>) -> String {
        cx.arn("logs", &format!("log-group:{}", self.name(cx)))
    }

    fn attrs_of(&self, cx: &NodeCx<'_>) -> Attrs {
        Attrs::id(self.name(cx)).with_arn(self.arn(cx))
    }
}

#[async_trait]
impl Resource for LogGroup {
    type Observed = Observed;
    const KIND: &'static str = "log_group";
    const GRANTS: &'static Grants = &Grants {
        read: &[
            crate::policy::BULK_TAGS,
            grant(
                &["logs:DescribeLogGroups"],
                On::Any("DescribeLogGroups lists by name prefix: no resource-level permission"),
            ),
            grant(
                &["logs:ListTagsForResource"],
                On::Arns(&[
                    "arn:${partition}:logs:${region}:${account}:log-group:/${project}/${env}/*",
                ]),
            ),
        ],
        write: &[grant(
            &[
                "logs:CreateLogGroup",
                "logs:PutRetentionPolicy",
                "logs:AssociateKmsKey",
                "logs:TagResource",
            ],
            On::Arns(&[
                "arn:${partition}:logs:${region}:${account}:log-group:/${project}/${env}/*",
            ]),
        )],
        delete: &[grant(
            &["logs:DeleteLogGroup"],
            On::Arns(&[
                "arn:${partition}:logs:${region}:${account}:log-group:/${project}/${env}/*",
            ]),
        )],
    };
    const FIELDS: &'static [&'static str] = Field::NAMES;
    const PUBLISHES: &'static [Attr] = &[Attr::Id, Attr::Arn];
    const TAGS_READ_AHEAD: bool = true;

    async fn observe(&self, cx: &NodeCx<'_>) -> Result<Option<Observed>, Failure> {
        let logs = &cx.aws().logs;
        let name = self.name(cx);
        let found = env_groups(cx)
            .await?
            .into_iter()
            .find(|g| g.log_group_name() == Some(name.as_str()));
        let Some(group) = found.as_ref() else {
            return Ok(None);
        };
        let arn = self.arn(cx);
        let own = async {
            let listed = logs
                .list_tags_for_resource()
                .resource_arn(&arn)
                .send()
                .await
                .or_absent()?;
            Ok(listed.map(|l| tags::from_map(l.tags())))
        };
        // Deleted between the two calls: absent.
        let Some(tags) = cx.tags_of(&arn, own).await? else {
            return Ok(None);
        };
        Ok(Some(Observed {
            group: group.clone(),
            tags,
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
        c.field(
            Field::KmsKeyId,
            inputs.arn(&self.key)?,
            have.group.kms_key_id().unwrap_or("(none)"),
        );
        c.field(
            Field::RetentionInDays,
            Some(self.retention_days),
            have.group.retention_in_days(),
        );
        c.tags(cx.tags(), &have.tags);
        Ok(())
    }

    async fn create(&self, cx: &NodeCx<'_>, inputs: &Inputs<'_>) -> Result<Attrs, Failure> {
        let logs = &cx.aws().logs;
        let key_arn = inputs.arn(&self.key)?;
        let name = self.name(cx);
        // A group left by an interrupted run is there already: set its retention anyway.
        retry::on(&[&NEW_KEY_NOT_VISIBLE], || async {
            logs.create_log_group()
                .log_group_name(&name)
                .kms_key_id(key_arn)
                .set_tags(Some(tags::map(cx.tags())))
                .send()
                .await
                .or_exists(CreatedBy::Logs)
        })
        .await?;
        logs.put_retention_policy()
            .log_group_name(&name)
            .retention_in_days(self.retention_days)
            .send()
            .await?;
        Ok(self.attrs_of(cx))
    }

    async fn update(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        _have: &Observed,
        changes: &[Change],
    ) -> Result<Attrs, Failure> {
        let logs = &cx.aws().logs;
        let name = self.name(cx);
        if has(changes, Field::KmsKeyId) {
            logs.associate_kms_key()
                .log_group_name(&name)
                .kms_key_id(inputs.arn(&self.key)?)
                .send()
                .await?;
        }
        if has(changes, Field::RetentionInDays) {
            logs.put_retention_policy()
                .log_group_name(&name)
                .retention_in_days(self.retention_days)
                .send()
                .await?;
        }
        if tags_changed(changes) {
            tags::retag_logs(logs, &self.arn(cx), cx.tags()).await?;
        }
        Ok(self.attrs_of(cx))
    }

    async fn delete(&self, cx: &NodeCx<'_>, _have: &Observed) -> Result<(), Failure> {
        cx.aws()
            .logs
            .delete_log_group()
            .log_group_name(self.name(cx))
            .send()
            .await
            .or_absent()?;
        Ok(())
    }
}
