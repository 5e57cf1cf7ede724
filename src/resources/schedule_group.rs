//! EventBridge Scheduler schedule groups: the environment's scheduled repair lives in one,
//! tagged with the environment (schedules themselves take no tags), found by its name.
//! Its ARN is what the scheduler role's trust policy names (`aws:SourceArn`).

use crate::aws::wait::expected::SCHEDULE_GROUP_DELETED;
use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{Leaving, NodeCx, Resource};
use crate::aws::errors::{CreatedBy, OrAbsent, OrExists};
use crate::aws::tags;
use crate::diff::{tags_changed, Change, Changes};
use crate::error::Failure;
use crate::model::{Attrs, Inputs};
use crate::policy::{grant, Grants, On};
use crate::resources::template::Attr;

#[derive(Debug, Serialize, Deserialize)]
pub struct ScheduleGroup {
    /// Name suffix: the group is `<project>-<env>-<suffix>`.
    pub suffix: String,
}

pub struct Observed {
    arn: String,
    tags: BTreeMap<String, String>,
}

/// The group's name, `<project>-<env>-<suffix>`.
pub fn group_name(env_full: &str, suffix: &str) -> String {
    format!("{env_full}-{suffix}")
}

impl ScheduleGroup {
    fn name(&self, cx: &NodeCx<'_>) -> String {
        group_name(cx.env_full(), &self.suffix)
    }

    fn arn(&self, cx: &NodeCx<'_>) -> String {
        cx.arn("scheduler", &format!("schedule-group/{}", self.name(cx)))
    }

    fn attrs_of(&self, cx: &NodeCx<'_>, arn: &str) -> Attrs {
        Attrs::id(self.name(cx)).with_arn(arn)
    }

    /// The group's state, `None` once it is gone.
    async fn state(&self, cx: &NodeCx<'_>) -> Result<Option<(String, String)>, Failure> {
        let out = cx
            .aws()
            .scheduler
            .get_schedule_group()
            .name(self.name(cx))
            .send()
            .await
            .or_absent()?;
        Ok(out.map(|g| {
            (
                g.arn().unwrap_or_default().to_string(),
                g.state()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
            )
        }))
    }
}

#[async_trait]
impl Resource for ScheduleGroup {
    type Observed = Observed;
    const KIND: &'static str = "schedule_group";
    const GRANTS: &'static Grants = &Grants {
        read: &[grant(
            &[
                "scheduler:GetScheduleGroup",
                "scheduler:ListTagsForResource",
            ],
            On::Arns(&[
                "arn:${partition}:scheduler:${region}:${account}:schedule-group/${env}-${suffix}",
            ]),
        )],
        write: &[grant(
            &["scheduler:CreateScheduleGroup", "scheduler:TagResource"],
            On::Arns(&[
                "arn:${partition}:scheduler:${region}:${account}:schedule-group/${env}-${suffix}",
            ]),
        )],
        delete: &[grant(
            &["scheduler:DeleteScheduleGroup"],
            On::Arns(&[
                "arn:${partition}:scheduler:${region}:${account}:schedule-group/${env}-${suffix}",
            ]),
        )],
    };
    const PUBLISHES: &'static [Attr] = &[Attr::Id, Attr::Arn];

    fn name_part(&self) -> Option<&str> {
        Some(&self.suffix)
    }

    async fn observe(&self, cx: &NodeCx<'_>) -> Result<Option<Observed>, Failure> {
        // A group being deleted (with its schedules) is leaving: absent for `up`, which
        // creates it again once the name is free; `down` waits it out (`wait_leaving`).
        let Some((arn, state)) = self.state(cx).await? else {
            return Ok(None);
        };
        if state == "DELETING" {
            return Ok(None);
        }
        if arn.is_empty() {
            return Err(Failure::missing("schedule group ARN"));
        }
        let Some(out) = cx
            .aws()
            .scheduler
            .list_tags_for_resource()
            .resource_arn(&arn)
            .send()
            .await
            .or_absent()?
        else {
            return Ok(None);
        };
        Ok(Some(Observed {
            arn,
            tags: tags::from_scheduler(out.tags()),
        }))
    }

    fn planned_attrs(&self, cx: &NodeCx<'_>) -> Option<Attrs> {
        Some(self.attrs_of(cx, &self.arn(cx)))
    }

    fn attrs(&self, cx: &NodeCx<'_>, have: &Observed) -> Result<Attrs, Failure> {
        Ok(self.attrs_of(cx, &have.arn))
    }

    fn diff(
        &self,
        cx: &NodeCx<'_>,
        _inputs: &Inputs<'_>,
        have: &Observed,
        c: &mut Changes,
    ) -> Result<(), Failure> {
        c.tags(cx.tags(), &have.tags);
        Ok(())
    }

    async fn create(&self, cx: &NodeCx<'_>, _inputs: &Inputs<'_>) -> Result<Attrs, Failure> {
        let scheduler = &cx.aws().scheduler;
        let name = self.name(cx);
        // Made by a killed run: `ConflictException`, then tagged as asked.
        let made = scheduler
            .create_schedule_group()
            .name(&name)
            .client_token(cx.run_token(&[]))
            .set_tags(Some(tags::scheduler(cx.tags())?))
            .send()
            .await
            .or_exists(CreatedBy::Scheduler)?;
        let arn = match made {
            Some(out) => out.schedule_group_arn().to_string(),
            None => {
                let arn = self.arn(cx);
                tags::retag_scheduler(scheduler, &arn, cx.tags()).await?;
                arn
            }
        };
        Ok(self.attrs_of(cx, &arn))
    }

    async fn update(
        &self,
        cx: &NodeCx<'_>,
        _inputs: &Inputs<'_>,
        have: &Observed,
        changes: &[Change],
    ) -> Result<Attrs, Failure> {
        if tags_changed(changes) {
            tags::retag_scheduler(&cx.aws().scheduler, &have.arn, cx.tags()).await?;
        }
        Ok(self.attrs_of(cx, &have.arn))
    }

    /// Deletes the group (AWS deletes its schedules with it) and waits until it is gone.
    async fn delete(&self, cx: &NodeCx<'_>, _have: &Observed) -> Result<(), Failure> {
        cx.aws()
            .scheduler
            .delete_schedule_group()
            .name(self.name(cx))
            .client_token(cx.run_token(&["delete"]))
            .send()
            .await
            .or_absent()?;
        self.wait_leaving(cx).await.map(|_| ())
    }

    async fn wait_leaving(&self, cx: &NodeCx<'_>) -> Result<Leaving, Failure> {
        if self.state(cx).await?.is_none() {
            return Ok(Leaving::Nothing);
        }
        cx.wait_gone("schedule group", SCHEDULE_GROUP_DELETED, || async {
            Ok(self.state(cx).await?.map(|(_, s)| s))
        })
        .await?;
        Ok(Leaving::Waited)
    }
}
