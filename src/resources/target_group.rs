//! Target groups of IP targets, one per service, found by their deterministic names: health
//! checks, deregistration delay and lb_cookie stickiness as PLATFORM.md says.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::types::{
    Matcher, ProtocolEnum, TargetGroup as AwsTg, TargetGroupAttribute, TargetTypeEnum,
};
use serde::{Deserialize, Serialize};

use super::load_balancer::{diff_attributes, elb_tag_list, elb_tags, retag_elb, NAME_MAX};
use super::{short_name, NodeCx, Resource};
use crate::aws::errors::{OrAbsent, Required};
use crate::aws::gathering::{self, Gathering};
use crate::aws::retry::{self, TARGET_GROUP_IN_USE};
use crate::diff::{fields, tags_changed, under, Change, Changes};
use crate::error::Failure;
use crate::model::{Attrs, Inputs, Ref};
use crate::policy::{grant, Grants, On, ELB_DESCRIBE};
use crate::resources::template::Attr;

fields! {
    /// The fields a target group is compared on, as `plan`, `drift` and `history` name them.
    enum Field {
        VpcId = "vpc_id",
        Protocol = "protocol",
        Port = "port",
        TargetType = "target_type",
        HealthCheckPath = "health_check.path",
        HealthCheckProtocol = "health_check.protocol",
        HealthCheckIntervalSeconds = "health_check.interval_seconds",
        HealthCheckTimeoutSeconds = "health_check.timeout_seconds",
        HealthCheckHealthyThreshold = "health_check.healthy_threshold",
        HealthCheckUnhealthyThreshold = "health_check.unhealthy_threshold",
        HealthCheckMatcher = "health_check.matcher",
        /// Every `health_check.*` field above, as one.
        HealthCheck = "health_check",
        /// One attribute per member: `attributes.deregistration_delay.timeout_seconds`.
        Attributes = "attributes",
    }
}

/// A target group of IP targets with PLATFORM.md's health check and attributes.
#[derive(Debug, Serialize, Deserialize)]
pub struct TargetGroup {
    /// `frontend` or `backend`: the group is `<project>-<env>-<service>`.
    pub service: String,
    pub port: i32,
    pub health_path: String,
    pub vpc: Ref,
}

pub struct ObservedTg {
    tg: AwsTg,
    attributes: BTreeMap<String, String>,
    tags: BTreeMap<String, String>,
}

/// Health check: every 30 s, unhealthy after 3 failures, healthy after 2, 10 s timeout.
const HEALTH_INTERVAL: i32 = 30;
const HEALTH_TIMEOUT: i32 = 10;
const HEALTHY: i32 = 2;
const UNHEALTHY: i32 = 3;

/// The run's gathered DescribeTargetGroups reads: each name's group, `None` when absent.
#[derive(Default)]
struct Described(Arc<Gathering<Option<AwsTg>>>);

/// DescribeTargetGroups' limit of names per call.
const NAMES_PER_CALL: usize = 20;

fn tg_attrs(tg: &AwsTg) -> Result<Attrs, Failure> {
    let arn = tg
        .target_group_arn()
        .ok_or_else(|| Failure::missing("target group ARN"))?;
    let mut a = Attrs::id(arn).with_arn(arn);
    a.name = tg.target_group_name().map(String::from);
    Ok(a)
}

impl TargetGroup {
    fn name(&self, cx: &NodeCx<'_>) -> String {
        short_name(cx.env_full(), &self.service, NAME_MAX)
    }

    fn want_attributes() -> BTreeMap<String, String> {
        [
            ("deregistration_delay.timeout_seconds", "30"),
            ("stickiness.enabled", "true"),
            ("stickiness.type", "lb_cookie"),
            ("stickiness.lb_cookie.duration_seconds", "3600"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    async fn put_attributes(&self, cx: &NodeCx<'_>, arn: &str) -> Result<(), Failure> {
        let attributes = Self::want_attributes()
            .into_iter()
            .map(|(k, v)| TargetGroupAttribute::builder().key(k).value(v).build())
            .collect();
        cx.aws()
            .elb
            .modify_target_group_attributes()
            .target_group_arn(arn)
            .set_attributes(Some(attributes))
            .send()
            .await?;
        Ok(())
    }

    /// The target group by its name, read with the others observed at the same moment:
    /// DescribeTargetGroups takes 20 names. It answers not-found for all when one of them
    /// does not exist, so that answer is taken only for a read of one name; a read of several
    /// that found less than all (or failed) leaves each of its groups to read on its own,
    /// which tells absent from an error. A group the applied record does not name (a first
    /// run) is read alone at once: gathered with another absent one, it would take that
    /// failed read, then its own.
    async fn describe_gathered(&self, cx: &NodeCx<'_>) -> Result<Option<AwsTg>, Failure> {
        let client = cx.aws().elb.clone();
        let name = self.name(cx);
        if cx.recorded() == Some(false) {
            return describe_one(&client, name).await;
        }
        let gathered = gathering::ask(
            cx.shared::<Described>().0.clone(),
            "names",
            &name,
            NAMES_PER_CALL,
            move |names| {
                let client = client.clone();
                async move { describe_target_groups(&client, names).await }
            },
        )
        .await;
        match gathered {
            Some(found) => Ok(found),
            None => describe_one(&cx.aws().elb, name).await,
        }
    }
}

/// The target group named `name`, `None` when it does not exist.
async fn describe_one(
    client: &aws_sdk_elasticloadbalancingv2::Client,
    name: String,
) -> Result<Option<AwsTg>, Failure> {
    Ok(describe_target_groups(client, vec![name.clone()])
        .await?
        .remove(&name)
        .flatten())
}

/// What DescribeTargetGroups says of `names`: each group it found; for a read of one name
/// that it says does not exist, `None`. Of several names it answers not-found when any one
/// is missing, without saying which: then nothing (each is read again on its own).
async fn describe_target_groups(
    client: &aws_sdk_elasticloadbalancingv2::Client,
    names: Vec<String>,
) -> Result<HashMap<String, Option<AwsTg>>, Failure> {
    let one = (names.len() == 1).then(|| names[0].clone());
    let Some(out) = client
        .describe_target_groups()
        .set_names(Some(names))
        .send()
        .await
        .or_absent()?
    else {
        return Ok(one.into_iter().map(|name| (name, None)).collect());
    };
    Ok(out
        .target_groups()
        .iter()
        .filter_map(|tg| Some((tg.target_group_name()?.to_string(), Some(tg.clone()))))
        .collect())
}

#[async_trait]
impl Resource for TargetGroup {
    type Observed = ObservedTg;
    const KIND: &'static str = "target_group";
    const GRANTS: &'static Grants = &Grants {
        read: &[
            crate::policy::BULK_TAGS,
            grant(
                &[
                    "elasticloadbalancing:DescribeTargetGroups",
                    "elasticloadbalancing:DescribeTargetGroupAttributes",
                    "elasticloadbalancing:DescribeTags",
                ],
                On::Any(ELB_DESCRIBE),
            ),
        ],
        write: &[
            grant(&["elasticloadbalancing:CreateTargetGroup"], On::Creating),
            grant(
                &["elasticloadbalancing:AddTags"],
                On::TagOnCreate("elasticloadbalancing:CreateAction"),
            ),
            grant(
                &[
                    "elasticloadbalancing:ModifyTargetGroupAttributes",
                    "elasticloadbalancing:ModifyTargetGroup",
                    "elasticloadbalancing:AddTags",
                ],
                On::Tagged,
            ),
        ],
        delete: &[grant(
            &["elasticloadbalancing:DeleteTargetGroup"],
            On::Tagged,
        )],
    };
    const FIELDS: &'static [&'static str] = Field::NAMES;
    const PUBLISHES: &'static [Attr] = &[Attr::Id, Attr::Arn];

    async fn observe(&self, cx: &NodeCx<'_>) -> Result<Option<ObservedTg>, Failure> {
        let elb = &cx.aws().elb;
        let Some(tg) = self.describe_gathered(cx).await? else {
            return Ok(None);
        };
        let arn = tg
            .target_group_arn()
            .required("target group ARN")?
            .to_string();
        let (attributes, tags) = tokio::try_join!(
            async {
                let out = elb
                    .describe_target_group_attributes()
                    .target_group_arn(&arn)
                    .send()
                    .await?;
                Ok::<_, Failure>(
                    out.attributes()
                        .iter()
                        .filter_map(|a| Some((a.key()?.to_string(), a.value()?.to_string())))
                        .collect::<BTreeMap<_, _>>(),
                )
            },
            elb_tags(cx, &arn),
        )?;
        Ok(Some(ObservedTg {
            tg,
            attributes,
            tags,
        }))
    }

    fn attrs(&self, _cx: &NodeCx<'_>, have: &ObservedTg) -> Result<Attrs, Failure> {
        tg_attrs(&have.tg)
    }

    fn diff(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &ObservedTg,
        c: &mut Changes,
    ) -> Result<(), Failure> {
        let tg = &have.tg;
        c.immutable(
            Field::VpcId,
            inputs.id(&self.vpc)?,
            tg.vpc_id().unwrap_or(""),
        );
        c.immutable(
            Field::Protocol,
            "HTTP",
            tg.protocol().map(|p| p.as_str()).unwrap_or(""),
        );
        c.immutable(Field::Port, Some(self.port), tg.port());
        c.immutable(
            Field::TargetType,
            "ip",
            tg.target_type().map(|t| t.as_str()).unwrap_or(""),
        );
        c.field(
            Field::HealthCheckPath,
            Some(self.health_path.as_str()),
            tg.health_check_path(),
        );
        c.field(
            Field::HealthCheckProtocol,
            "HTTP",
            tg.health_check_protocol().map(|p| p.as_str()).unwrap_or(""),
        );
        c.field(
            Field::HealthCheckIntervalSeconds,
            Some(HEALTH_INTERVAL),
            tg.health_check_interval_seconds(),
        );
        c.field(
            Field::HealthCheckTimeoutSeconds,
            Some(HEALTH_TIMEOUT),
            tg.health_check_timeout_seconds(),
        );
        c.field(
            Field::HealthCheckHealthyThreshold,
            Some(HEALTHY),
            tg.healthy_threshold_count(),
        );
        c.field(
            Field::HealthCheckUnhealthyThreshold,
            Some(UNHEALTHY),
            tg.unhealthy_threshold_count(),
        );
        c.field(
            Field::HealthCheckMatcher,
            Some("200"),
            tg.matcher().and_then(|m| m.http_code()),
        );
        diff_attributes(
            c,
            Field::Attributes,
            Self::want_attributes(),
            &have.attributes,
        );
        c.tags(cx.tags(), &have.tags);
        Ok(())
    }

    async fn create(&self, cx: &NodeCx<'_>, inputs: &Inputs<'_>) -> Result<Attrs, Failure> {
        let out = cx
            .aws()
            .elb
            .create_target_group()
            .name(self.name(cx))
            .protocol(ProtocolEnum::Http)
            .port(self.port)
            .vpc_id(inputs.id(&self.vpc)?)
            .target_type(TargetTypeEnum::Ip)
            .health_check_protocol(ProtocolEnum::Http)
            .health_check_path(&self.health_path)
            .health_check_interval_seconds(HEALTH_INTERVAL)
            .health_check_timeout_seconds(HEALTH_TIMEOUT)
            .healthy_threshold_count(HEALTHY)
            .unhealthy_threshold_count(UNHEALTHY)
            .matcher(Matcher::builder().http_code("200").build())
            .set_tags(Some(elb_tag_list(cx.tags())))
            .send()
            .await?;
        let tg = out
            .target_groups()
            .first()
            .ok_or_else(|| Failure::missing("target group"))?;
        let attrs = tg_attrs(tg)?;
        self.put_attributes(cx, &attrs.id).await?;
        Ok(attrs)
    }

    async fn update(
        &self,
        cx: &NodeCx<'_>,
        _inputs: &Inputs<'_>,
        have: &ObservedTg,
        changes: &[Change],
    ) -> Result<Attrs, Failure> {
        let arn = have.tg.target_group_arn().required("target group ARN")?;
        if under(changes, Field::HealthCheck) {
            cx.aws()
                .elb
                .modify_target_group()
                .target_group_arn(arn)
                .health_check_protocol(ProtocolEnum::Http)
                .health_check_path(&self.health_path)
                .health_check_interval_seconds(HEALTH_INTERVAL)
                .health_check_timeout_seconds(HEALTH_TIMEOUT)
                .healthy_threshold_count(HEALTHY)
                .unhealthy_threshold_count(UNHEALTHY)
                .matcher(Matcher::builder().http_code("200").build())
                .send()
                .await?;
        }
        if under(changes, Field::Attributes) {
            self.put_attributes(cx, arn).await?;
        }
        if tags_changed(changes) {
            retag_elb(cx, arn).await?;
        }
        tg_attrs(&have.tg)
    }

    /// Listener rules and services let go of it a little after they are deleted.
    async fn delete(&self, cx: &NodeCx<'_>, have: &ObservedTg) -> Result<(), Failure> {
        let arn = have.tg.target_group_arn().required("target group ARN")?;
        let elb = &cx.aws().elb;
        retry::on(&[&TARGET_GROUP_IN_USE], || async {
            elb.delete_target_group()
                .target_group_arn(arn)
                .send()
                .await
                .or_absent()
                .map(|_| ())
        })
        .await
    }
}
