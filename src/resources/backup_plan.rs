//! The AWS Backup plan of the cluster and its selection, managed together: one rule on the
//! config's cron schedule (AWS Backup rejects `rate()`), with start and completion windows
//! and retention, selecting the cluster with the backup role.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_backup::types::{BackupPlanInput, BackupRuleInput, BackupSelection, Lifecycle};
use serde::{Deserialize, Serialize};

use super::{NodeCx, Resource};
use crate::aws::errors::OrAbsent;
use crate::aws::retry::{self, NEW_ROLE_BACKUP};
use crate::aws::tags;
use crate::diff::{fields, has, tags_changed, under, Change, Changes};
use crate::error::Failure;
use crate::model::{Attrs, Inputs, Ref};
use crate::policy::{grant, Grants, On};
use crate::resources::template::Attr;

fields! {
    /// The fields a backup plan is compared on, as `plan`, `drift` and `history` name them.
    enum Field {
        RuleCount = "rule_count",
        RuleTargetVault = "rule.target_vault",
        RuleSchedule = "rule.schedule",
        RuleStartWindowMinutes = "rule.start_window_minutes",
        RuleCompletionWindowMinutes = "rule.completion_window_minutes",
        RuleDeleteAfterDays = "rule.delete_after_days",
        SelectionCount = "selection_count",
        SelectionRole = "selection.role",
        SelectionResources = "selection.resources",
        /// Every `rule.*` field above, as one.
        Rule = "rule",
        /// Every `selection.*` field above, as one.
        Selection = "selection",
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct BackupPlan {
    pub vault: Ref,
    pub role: Ref,
    pub cluster: Ref,
    /// A `cron(...)` expression.
    pub schedule: String,
    pub start_window_minutes: i64,
    pub completion_window_minutes: i64,
    pub retention_days: i64,
}

const RULE_NAME: &str = "every-6-hours";

/// The rule as compared.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    vault: String,
    schedule: String,
    start_window: Option<i64>,
    completion_window: Option<i64>,
    delete_after_days: Option<i64>,
}

/// The selection as compared.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Selection {
    id: String,
    role_arn: String,
    resources: Vec<String>,
}

pub struct Observed {
    id: String,
    arn: String,
    rules: Vec<Rule>,
    selections: Vec<Selection>,
    tags: BTreeMap<String, String>,
}

fn plan_name(cx: &NodeCx<'_>) -> String {
    format!("{}-db", cx.env_full())
}

fn bad_input(e: impl std::fmt::Display) -> Failure {
    Failure::new("InvalidInput", e.to_string())
}

impl BackupPlan {
    fn plan_input(&self, cx: &NodeCx<'_>, inputs: &Inputs<'_>) -> Result<BackupPlanInput, Failure> {
        let rule = BackupRuleInput::builder()
            .rule_name(RULE_NAME)
            .target_backup_vault_name(inputs.id(&self.vault)?)
            .schedule_expression(&self.schedule)
            .start_window_minutes(self.start_window_minutes)
            .completion_window_minutes(self.completion_window_minutes)
            .lifecycle(
                Lifecycle::builder()
                    .delete_after_days(self.retention_days)
                    .build(),
            )
            .set_recovery_point_tags(Some(tags::map(cx.tags())))
            .build()
            .map_err(bad_input)?;
        BackupPlanInput::builder()
            .backup_plan_name(plan_name(cx))
            .rules(rule)
            .build()
            .map_err(bad_input)
    }

    async fn create_selection(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        plan_id: &str,
    ) -> Result<(), Failure> {
        let selection = BackupSelection::builder()
            .selection_name(plan_name(cx))
            .iam_role_arn(inputs.arn(&self.role)?)
            .resources(inputs.arn(&self.cluster)?)
            .build()
            .map_err(bad_input)?;
        let backup = &cx.aws().backup;
        retry::on(&[&NEW_ROLE_BACKUP], || async {
            backup
                .create_backup_selection()
                .backup_plan_id(plan_id)
                .backup_selection(selection.clone())
                .creator_request_id(cx.token(&["selection", plan_id], 50))
                .send()
                .await
                .map(|_| ())
                .map_err(Failure::from)
        })
        .await
    }

    async fn delete_selections(
        &self,
        cx: &NodeCx<'_>,
        plan_id: &str,
        selections: &[Selection],
    ) -> Result<(), Failure> {
        for s in selections {
            cx.aws()
                .backup
                .delete_backup_selection()
                .backup_plan_id(plan_id)
                .selection_id(&s.id)
                .send()
                .await
                .or_absent()?;
        }
        Ok(())
    }
}

#[async_trait]
impl Resource for BackupPlan {
    type Observed = Observed;
    const KIND: &'static str = "backup_plan";
    const GRANTS: &'static Grants = &Grants {
        read: &[
            crate::policy::BULK_TAGS,
            grant(
                &["backup:ListBackupPlans"],
                On::Any("ListBackupPlans lists the account's plans: no resource-level permission"),
            ),
            grant(
                &[
                    "backup:GetBackupPlan",
                    "backup:ListTags",
                    "backup:ListBackupSelections",
                    "backup:GetBackupSelection",
                ],
                On::Tagged,
            ),
        ],
        write: &[
            grant(
                &["backup:CreateBackupPlan", "backup:TagResource"],
                On::Creating,
            ),
            grant(
                &[
                    "backup:CreateBackupSelection",
                    "backup:UpdateBackupPlan",
                    "backup:DeleteBackupSelection",
                    "backup:TagResource",
                ],
                On::Tagged,
            ),
            grant(
                &["iam:PassRole"],
                On::Arns(&["arn:${partition}:iam::${account}:role/${env}-backup"]),
            ),
        ],
        delete: &[grant(
            &["backup:DeleteBackupSelection", "backup:DeleteBackupPlan"],
            On::Tagged,
        )],
    };
    const FIELDS: &'static [&'static str] = Field::NAMES;
    const PUBLISHES: &'static [Attr] = &[Attr::Id, Attr::Arn];

    async fn observe(&self, cx: &NodeCx<'_>) -> Result<Option<Observed>, Failure> {
        let backup = &cx.aws().backup;
        let name = plan_name(cx);
        let plans = backup
            .list_backup_plans()
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| Failure::from(e).context("ListBackupPlans"))?;
        let Some(plan) = plans
            .iter()
            .find(|p| p.backup_plan_name() == Some(name.as_str()))
        else {
            return Ok(None);
        };
        let id = plan
            .backup_plan_id()
            .ok_or_else(|| Failure::missing("backup plan id"))?
            .to_string();
        let arn = plan
            .backup_plan_arn()
            .ok_or_else(|| Failure::missing("backup plan ARN"))?
            .to_string();
        let (got, tags, listed) = tokio::try_join!(
            async {
                backup
                    .get_backup_plan()
                    .backup_plan_id(&id)
                    .send()
                    .await
                    .map_err(Failure::from)
            },
            async {
                // From the run's bulk read when it answers for the plan, else its own read.
                let own = async {
                    let listed = backup.list_tags().resource_arn(&arn).send().await?;
                    Ok(tags::from_map(listed.tags()))
                };
                cx.tags_of(&arn, own).await
            },
            async {
                backup
                    .list_backup_selections()
                    .backup_plan_id(&id)
                    .into_paginator()
                    .items()
                    .send()
                    .collect::<Result<Vec<_>, _>>()
                    .await
                    .map_err(Failure::from)
            },
        )?;
        let rules = got
            .backup_plan()
            .map(|p| {
                p.rules()
                    .iter()
                    .map(|r| Rule {
                        vault: r.target_backup_vault_name().to_string(),
                        schedule: r.schedule_expression().unwrap_or("").to_string(),
                        start_window: r.start_window_minutes(),
                        completion_window: r.completion_window_minutes(),
                        delete_after_days: r.lifecycle().and_then(|l| l.delete_after_days()),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut selections = Vec::new();
        for s in &listed {
            let Some(sid) = s.selection_id() else {
                continue;
            };
            let Some(full) = backup
                .get_backup_selection()
                .backup_plan_id(&id)
                .selection_id(sid)
                .send()
                .await
                .or_absent()?
            else {
                continue;
            };
            let sel = full.backup_selection();
            selections.push(Selection {
                id: sid.to_string(),
                role_arn: sel
                    .map(|s| s.iam_role_arn().to_string())
                    .unwrap_or_default(),
                resources: sel.map(|s| s.resources().to_vec()).unwrap_or_default(),
            });
        }
        Ok(Some(Observed {
            id,
            arn,
            rules,
            selections,
            tags,
        }))
    }

    fn attrs(&self, _cx: &NodeCx<'_>, have: &Observed) -> Result<Attrs, Failure> {
        Ok(Attrs::id(&have.id).with_arn(&have.arn))
    }

    /// The one rule property by property, the one selection (role and resources): a second
    /// rule or selection added by hand is drift.
    fn diff(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &Observed,
        c: &mut Changes,
    ) -> Result<(), Failure> {
        c.field(Field::RuleCount, 1, have.rules.len());
        if let Some(r) = have.rules.first() {
            c.field(
                Field::RuleTargetVault,
                inputs.id(&self.vault)?,
                r.vault.as_str(),
            );
            c.field(
                Field::RuleSchedule,
                self.schedule.as_str(),
                r.schedule.as_str(),
            );
            c.field(
                Field::RuleStartWindowMinutes,
                Some(self.start_window_minutes),
                r.start_window,
            );
            c.field(
                Field::RuleCompletionWindowMinutes,
                Some(self.completion_window_minutes),
                r.completion_window,
            );
            c.field(
                Field::RuleDeleteAfterDays,
                Some(self.retention_days),
                r.delete_after_days,
            );
        }
        c.field(Field::SelectionCount, 1, have.selections.len());
        if let Some(s) = have.selections.first() {
            c.field(
                Field::SelectionRole,
                inputs.arn(&self.role)?,
                s.role_arn.as_str(),
            );
            c.field(
                Field::SelectionResources,
                vec![inputs.arn(&self.cluster)?.to_string()],
                s.resources.clone(),
            );
        }
        c.tags(cx.tags(), &have.tags);
        Ok(())
    }

    async fn create(&self, cx: &NodeCx<'_>, inputs: &Inputs<'_>) -> Result<Attrs, Failure> {
        let out = cx
            .aws()
            .backup
            .create_backup_plan()
            .backup_plan(self.plan_input(cx, inputs)?)
            .set_backup_plan_tags(Some(tags::map(cx.tags())))
            .creator_request_id(cx.token(&[], 50))
            .send()
            .await?;
        let id = out
            .backup_plan_id()
            .ok_or_else(|| Failure::missing("backup plan id"))?
            .to_string();
        self.create_selection(cx, inputs, &id).await?;
        let mut a = Attrs::id(id);
        a.arn = out.backup_plan_arn().map(String::from);
        Ok(a)
    }

    async fn update(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &Observed,
        changes: &[Change],
    ) -> Result<Attrs, Failure> {
        let backup = &cx.aws().backup;
        if has(changes, Field::RuleCount) || under(changes, Field::Rule) {
            backup
                .update_backup_plan()
                .backup_plan_id(&have.id)
                .backup_plan(self.plan_input(cx, inputs)?)
                .send()
                .await?;
        }
        // Selections cannot be changed in place; they hold no data: replace them.
        if has(changes, Field::SelectionCount) || under(changes, Field::Selection) {
            self.delete_selections(cx, &have.id, &have.selections)
                .await?;
            self.create_selection(cx, inputs, &have.id).await?;
        }
        if tags_changed(changes) {
            tags::retag_backup(backup, &have.arn, cx.tags()).await?;
        }
        Ok(Attrs::id(&have.id).with_arn(&have.arn))
    }

    async fn delete(&self, cx: &NodeCx<'_>, have: &Observed) -> Result<(), Failure> {
        self.delete_selections(cx, &have.id, &have.selections)
            .await?;
        cx.aws()
            .backup
            .delete_backup_plan()
            .backup_plan_id(&have.id)
            .send()
            .await
            .or_absent()?;
        Ok(())
    }
}
