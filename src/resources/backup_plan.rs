//! The AWS Backup plan of the cluster and its selection, managed together: one rule on the
//! config's cron schedule (AWS Backup rejects `rate()`), with start and completion windows
//! and retention, selecting the cluster with the backup role.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_backup::types::{BackupPlanInput, BackupRuleInput, BackupSelection, Lifecycle};

use super::aurora_cluster::cluster_name;
use super::{Ids, NodeCx, Resource};
use crate::aws::errors::OrAbsent;
use crate::aws::retry;
use crate::diff::{Change, Changes};
use crate::error::Failure;

pub struct BackupPlan {
    pub vault: String,
    pub role: String,
    pub cluster: String,
}

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
    fn want_rule(&self, cx: &NodeCx<'_>) -> Rule {
        let b = &cx.env().backup;
        Rule {
            vault: super::backup_vault::vault_name(&cx.env_full()),
            schedule: b.schedule.clone(),
            start_window: Some(b.start_window_minutes),
            completion_window: Some(b.completion_window_minutes),
            delete_after_days: Some(b.retention_days),
        }
    }

    fn cluster_arn(&self, cx: &NodeCx<'_>) -> String {
        cx.arn("rds", &format!("cluster:{}", cluster_name(&cx.env_full())))
    }

    fn plan_input(&self, cx: &NodeCx<'_>) -> Result<BackupPlanInput, Failure> {
        let r = self.want_rule(cx);
        let rule = BackupRuleInput::builder()
            .rule_name("every-6-hours")
            .target_backup_vault_name(&r.vault)
            .schedule_expression(&r.schedule)
            .start_window_minutes(r.start_window.unwrap_or(60))
            .completion_window_minutes(r.completion_window.unwrap_or(120))
            .lifecycle(
                Lifecycle::builder()
                    .delete_after_days(r.delete_after_days.unwrap_or(7))
                    .build(),
            )
            .set_recovery_point_tags(Some(cx.tags().into_iter().collect()))
            .build()
            .map_err(bad_input)?;
        BackupPlanInput::builder()
            .backup_plan_name(plan_name(cx))
            .rules(rule)
            .build()
            .map_err(bad_input)
    }

    async fn create_selection(&self, cx: &NodeCx<'_>, plan_id: &str) -> Result<(), Failure> {
        let role = cx.ids_of(&self.role)?;
        let selection = BackupSelection::builder()
            .selection_name(plan_name(cx))
            .iam_role_arn(role.arn(&self.role)?)
            .resources(self.cluster_arn(cx))
            .build()
            .map_err(bad_input)?;
        let backup = &cx.cx.clients.backup;
        // PLATFORM.md: a new backup role "cannot be assumed" for a while: retry 2 minutes.
        retry::eventually(
            Duration::from_secs(120),
            |f| {
                f.code == "InvalidParameterValueException"
                    && f.message.contains("cannot be assumed")
            },
            || async {
                backup
                    .create_backup_selection()
                    .backup_plan_id(plan_id)
                    .backup_selection(selection.clone())
                    .creator_request_id(format!("{}-selection", cx.token()))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(Failure::from)
            },
        )
        .await
    }

    async fn delete_selections(
        &self,
        cx: &NodeCx<'_>,
        plan_id: &str,
        selections: &[Selection],
    ) -> Result<(), Failure> {
        for s in selections {
            cx.cx
                .clients
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

    async fn find(&self, cx: &NodeCx<'_>) -> Result<Option<Observed>, Failure> {
        let backup = &cx.cx.clients.backup;
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
                backup
                    .list_tags()
                    .resource_arn(&arn)
                    .send()
                    .await
                    .map_err(Failure::from)
            },
            async {
                backup
                    .list_backup_selections()
                    .backup_plan_id(&id)
                    .send()
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
        for s in listed.backup_selections_list() {
            let Some(sid) = s.selection_id() else {
                continue;
            };
            let full = backup
                .get_backup_selection()
                .backup_plan_id(&id)
                .selection_id(sid)
                .send()
                .await?;
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
            tags: tags
                .tags()
                .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
        }))
    }

    fn ids(&self, _cx: &NodeCx<'_>, have: &Observed) -> Result<Ids, Failure> {
        Ok(Ids {
            id: have.id.clone(),
            arn: Some(have.arn.clone()),
        })
    }

    fn diff(&self, cx: &NodeCx<'_>, have: &Observed) -> Result<Vec<Change>, Failure> {
        let mut c = Changes::default();
        c.field("rules", vec![self.want_rule(cx)], have.rules.clone());
        let role = cx.ids_of(&self.role)?;
        let want = (
            role.arn(&self.role)?.to_string(),
            vec![self.cluster_arn(cx)],
        );
        let got: Vec<(String, Vec<String>)> = have
            .selections
            .iter()
            .map(|s| (s.role_arn.clone(), s.resources.clone()))
            .collect();
        c.field("selection", vec![want], got);
        c.tags(&cx.tags(), &have.tags);
        Ok(c.into_vec())
    }

    async fn create(&self, cx: &NodeCx<'_>) -> Result<Ids, Failure> {
        let tags: HashMap<String, String> = cx.tags().into_iter().collect();
        let out = cx
            .cx
            .clients
            .backup
            .create_backup_plan()
            .backup_plan(self.plan_input(cx)?)
            .set_backup_plan_tags(Some(tags))
            .creator_request_id(cx.token())
            .send()
            .await?;
        let id = out
            .backup_plan_id()
            .ok_or_else(|| Failure::missing("backup plan id"))?
            .to_string();
        self.create_selection(cx, &id).await?;
        Ok(Ids {
            id,
            arn: out.backup_plan_arn().map(String::from),
        })
    }

    async fn update(
        &self,
        cx: &NodeCx<'_>,
        have: &Observed,
        changes: &[Change],
    ) -> Result<(), Failure> {
        let backup = &cx.cx.clients.backup;
        for ch in changes {
            match ch.field.as_str() {
                "rules" => {
                    backup
                        .update_backup_plan()
                        .backup_plan_id(&have.id)
                        .backup_plan(self.plan_input(cx)?)
                        .send()
                        .await?;
                }
                // Selections cannot be changed in place; they hold no data: replace.
                "selection" => {
                    self.delete_selections(cx, &have.id, &have.selections)
                        .await?;
                    self.create_selection(cx, &have.id).await?;
                }
                _ => {}
            }
        }
        if changes.iter().any(|c| c.field.starts_with("tags.")) {
            let tags: HashMap<String, String> = cx.tags().into_iter().collect();
            backup
                .tag_resource()
                .resource_arn(&have.arn)
                .set_tags(Some(tags))
                .send()
                .await?;
        }
        Ok(())
    }

    async fn delete(&self, cx: &NodeCx<'_>, have: &Observed) -> Result<(), Failure> {
        self.delete_selections(cx, &have.id, &have.selections)
            .await?;
        cx.cx
            .clients
            .backup
            .delete_backup_plan()
            .backup_plan_id(&have.id)
            .send()
            .await
            .or_absent()?;
        Ok(())
    }
}
