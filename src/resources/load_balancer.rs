//! The application load balancer: internet-facing, in the public subnets, with the ALB
//! security group, deletion protection from config, invalid header fields dropped. Found by
//! its deterministic name, looked up once per run for it, its listeners and their rules; the
//! ELB tag helpers its listeners and target groups share.

use crate::aws::wait::expected::{LOAD_BALANCER_ACTIVE, LOAD_BALANCER_DELETED};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::types::{
    IpAddressType, LoadBalancer as AwsLb, LoadBalancerAttribute, LoadBalancerSchemeEnum,
    LoadBalancerStateEnum, LoadBalancerTypeEnum,
};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use super::{short_name, NodeCx, Resource};
use crate::aws::errors::{OrAbsent, Required};
use crate::aws::gathering::{self, Gathering};
use crate::aws::tags::{self, Tags};
use crate::aws::wait::Poll;
use crate::diff::{fields, has, tags_changed, under, Change, Changes};
use crate::error::Failure;
use crate::model::{Attrs, Inputs, Output, Ref};
use crate::policy::{grant, Grants, On, ELB_DESCRIBE};
use crate::resources::template::Attr;

fields! {
    /// The fields a load balancer is compared on, as `plan`, `drift` and `history` name them.
    enum Field {
        Scheme = "scheme",
        Type = "type",
        Subnets = "subnets",
        SecurityGroups = "security_groups",
        /// One attribute per member: `attributes.idle_timeout.timeout_seconds`.
        Attributes = "attributes",
    }
}

/// ELB names are at most 32 characters.
pub(super) const NAME_MAX: usize = 32;

#[derive(Debug, Serialize, Deserialize)]
pub struct LoadBalancer {
    pub subnets: Vec<Ref>,
    pub security_group: Ref,
    /// Ordering only: an internet-facing load balancer needs the gateway attached
    /// (PLATFORM.md: else `InvalidSubnet`).
    pub igw: Ref,
    pub deletion_protection: bool,
}

/// The environment's load balancer name.
pub fn load_balancer_name(env_full: &str) -> String {
    short_name(env_full, "alb", NAME_MAX)
}

/// The run's one lookup of the environment's load balancer, for it, its listeners and rules.
#[derive(Default)]
struct EnvLoadBalancer(OnceCell<Option<AwsLb>>);

/// The environment's load balancer, looked up by name once per run.
pub async fn find_load_balancer(cx: &NodeCx<'_>) -> Result<Option<AwsLb>, Failure> {
    let cache = cx.shared::<EnvLoadBalancer>();
    let found = cache
        .0
        .get_or_try_init(|| async {
            let out = cx
                .aws()
                .elb
                .describe_load_balancers()
                .names(load_balancer_name(cx.env_full()))
                .send()
                .await
                .or_absent()?;
            Ok::<_, Failure>(out.and_then(|o| o.load_balancers().first().cloned()))
        })
        .await?;
    Ok(found.clone())
}

/// Compares the attributes a load balancer or target group should have with its live ones,
/// one field each (`attributes.<key>`); attributes not asked for are AWS's.
pub fn diff_attributes<F: crate::diff::Field>(
    c: &mut Changes,
    field: F,
    want: BTreeMap<String, String>,
    have: &BTreeMap<String, String>,
) {
    for (k, v) in want {
        let live = have.get(&k).map(String::as_str).unwrap_or("(unset)");
        c.field(field.key(&k), v.as_str(), live);
    }
}

/// The run's gathered ELB tag reads: DescribeTags takes 20 ARNs.
#[derive(Default)]
struct ElbTags(Arc<Gathering<BTreeMap<String, String>>>);

/// Tags of one ELB resource (load balancer, target group, listener, rule): from the run's
/// bulk read by the tagging API, which answers for every kind's ARNs at once; where it leaves
/// one out, ELB's own read ([`elb_own_tags`]).
pub async fn elb_tags(cx: &NodeCx<'_>, arn: &str) -> Result<BTreeMap<String, String>, Failure> {
    cx.tags_of(arn, elb_own_tags(cx, arn)).await
}

/// Tags of one ELB resource read with those the other ELB nodes ask for at the same moment:
/// one DescribeTags per 20 ARNs.
async fn elb_own_tags(cx: &NodeCx<'_>, arn: &str) -> Result<BTreeMap<String, String>, Failure> {
    let client = cx.aws().elb.clone();
    let gathered = gathering::ask(
        cx.shared::<ElbTags>().0.clone(),
        "elb",
        arn,
        20,
        move |arns| {
            let client = client.clone();
            async move {
                let out = client
                    .describe_tags()
                    .set_resource_arns(Some(arns))
                    .send()
                    .await?;
                Ok(tags_by_arn(&out))
            }
        },
    )
    .await;
    if let Some(tags) = gathered {
        return Ok(tags);
    }
    // Not in the gathered answer: that read failed (one ARN of its 20 that no longer exists
    // fails them all), or the resource is gone. Its own read says which.
    let out = cx
        .aws()
        .elb
        .describe_tags()
        .resource_arns(arn)
        .send()
        .await?;
    // An answer without the one ARN asked for is not "no tags": it is not understood, and
    // reading it as no tags would report (and repair) identity tags as removed.
    tags_by_arn(&out)
        .remove(arn)
        .ok_or_else(|| Failure::missing(&format!("tag description for {arn}")))
}

/// A DescribeTags answer as each resource's tags, by ARN.
fn tags_by_arn(
    out: &aws_sdk_elasticloadbalancingv2::operation::describe_tags::DescribeTagsOutput,
) -> HashMap<String, BTreeMap<String, String>> {
    out.tag_descriptions()
        .iter()
        .filter_map(|d| Some((d.resource_arn()?.to_string(), tags::from_elb(d.tags()))))
        .collect()
}

/// ELB's tag type.
pub fn elb_tag_list(tags: &Tags) -> Vec<aws_sdk_elasticloadbalancingv2::types::Tag> {
    tags.iter()
        .map(|(k, v)| {
            aws_sdk_elasticloadbalancingv2::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
        })
        .collect()
}

/// Re-applies `tags` to an ELB resource.
pub async fn retag_elb(cx: &NodeCx<'_>, arn: &str) -> Result<(), Failure> {
    cx.aws()
        .elb
        .add_tags()
        .resource_arns(arn)
        .set_tags(Some(elb_tag_list(cx.tags())))
        .send()
        .await?;
    Ok(())
}

const DELETION_PROTECTION: &str = "deletion_protection.enabled";
const DROP_INVALID_HEADERS: &str = "routing.http.drop_invalid_header_fields.enabled";

pub struct ObservedLb {
    lb: AwsLb,
    attributes: BTreeMap<String, String>,
    tags: BTreeMap<String, String>,
}

fn lb_attrs(lb: &AwsLb) -> Result<Attrs, Failure> {
    let arn = lb
        .load_balancer_arn()
        .ok_or_else(|| Failure::missing("load balancer ARN"))?;
    let mut a = Attrs::id(arn).with_arn(arn);
    a.name = lb.load_balancer_name().map(String::from);
    a.dns_name = lb.dns_name().map(String::from);
    a.hosted_zone_id = lb.canonical_hosted_zone_id().map(String::from);
    a.state = lb
        .state()
        .and_then(|s| s.code())
        .map(|c| c.as_str().to_string());
    Ok(a)
}

fn lb_ready(lb: Option<&AwsLb>) -> Poll {
    match lb.and_then(|l| l.state()).and_then(|s| s.code()) {
        Some(LoadBalancerStateEnum::Active) => Poll::Ready,
        Some(LoadBalancerStateEnum::Failed) => Poll::Failed("state `failed`".into()),
        Some(other) => Poll::Pending(other.as_str().to_string()),
        None => Poll::Pending("not yet visible".into()),
    }
}

impl LoadBalancer {
    fn want_attributes(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (
                DELETION_PROTECTION.to_string(),
                self.deletion_protection.to_string(),
            ),
            (DROP_INVALID_HEADERS.to_string(), "true".to_string()),
        ])
    }

    async fn put_attributes(&self, cx: &NodeCx<'_>, arn: &str) -> Result<(), Failure> {
        let attributes = self
            .want_attributes()
            .into_iter()
            .map(|(k, v)| LoadBalancerAttribute::builder().key(k).value(v).build())
            .collect();
        cx.aws()
            .elb
            .modify_load_balancer_attributes()
            .load_balancer_arn(arn)
            .set_attributes(Some(attributes))
            .send()
            .await?;
        Ok(())
    }

    fn ids(&self, inputs: &Inputs<'_>, refs: &[Ref]) -> Result<Vec<String>, Failure> {
        let mut ids = refs
            .iter()
            .map(|r| Ok(inputs.id(r)?.to_string()))
            .collect::<Result<Vec<_>, Failure>>()?;
        ids.sort();
        Ok(ids)
    }

    async fn describe(cx: &NodeCx<'_>, arn: &str) -> Result<Option<AwsLb>, Failure> {
        Ok(cx
            .aws()
            .elb
            .describe_load_balancers()
            .load_balancer_arns(arn)
            .send()
            .await
            .or_absent()?
            .and_then(|o| o.load_balancers().first().cloned()))
    }
}

#[async_trait]
impl Resource for LoadBalancer {
    type Observed = ObservedLb;
    const KIND: &'static str = "load_balancer";
    const GRANTS: &'static Grants = &Grants {
        read: &[
            crate::policy::BULK_TAGS,
            grant(
                &[
                    "elasticloadbalancing:DescribeLoadBalancers",
                    "elasticloadbalancing:DescribeLoadBalancerAttributes",
                    "elasticloadbalancing:DescribeTags",
                ],
                On::Any(ELB_DESCRIBE),
            ),
        ],
        write: &[
            grant(&["elasticloadbalancing:CreateLoadBalancer"], On::Creating),
            grant(
                &["elasticloadbalancing:AddTags"],
                On::TagOnCreate("elasticloadbalancing:CreateAction"),
            ),
            grant(
                &[
                    "elasticloadbalancing:ModifyLoadBalancerAttributes",
                    "elasticloadbalancing:SetSubnets",
                    "elasticloadbalancing:SetSecurityGroups",
                    "elasticloadbalancing:AddTags",
                ],
                On::Tagged,
            ),
        ],
        delete: &[grant(
            &[
                "elasticloadbalancing:ModifyLoadBalancerAttributes",
                "elasticloadbalancing:DeleteLoadBalancer",
            ],
            On::Tagged,
        )],
    };
    const FIELDS: &'static [&'static str] = Field::NAMES;
    const PUBLISHES: &'static [Attr] = &[Attr::Id, Attr::Arn];

    async fn observe(&self, cx: &NodeCx<'_>) -> Result<Option<ObservedLb>, Failure> {
        let Some(lb) = find_load_balancer(cx).await? else {
            return Ok(None);
        };
        let arn = lb
            .load_balancer_arn()
            .required("load balancer ARN")?
            .to_string();
        let (attributes, tags) = tokio::try_join!(
            async {
                let out = cx
                    .aws()
                    .elb
                    .describe_load_balancer_attributes()
                    .load_balancer_arn(&arn)
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
        Ok(Some(ObservedLb {
            lb,
            attributes,
            tags,
        }))
    }

    fn attrs(&self, _cx: &NodeCx<'_>, have: &ObservedLb) -> Result<Attrs, Failure> {
        lb_attrs(&have.lb)
    }

    fn is_ready(&self, have: &ObservedLb) -> bool {
        lb_ready(Some(&have.lb)) == Poll::Ready
    }

    fn diff(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &ObservedLb,
        c: &mut Changes,
    ) -> Result<(), Failure> {
        let lb = &have.lb;
        c.immutable(
            Field::Scheme,
            "internet-facing",
            lb.scheme().map(|s| s.as_str()).unwrap_or(""),
        );
        c.immutable(
            Field::Type,
            "application",
            lb.r#type().map(|t| t.as_str()).unwrap_or(""),
        );
        let mut subnets: Vec<String> = lb
            .availability_zones()
            .iter()
            .filter_map(|z| z.subnet_id().map(String::from))
            .collect();
        subnets.sort();
        c.set(Field::Subnets, &self.ids(inputs, &self.subnets)?, &subnets);
        let mut groups = lb.security_groups().to_vec();
        groups.sort();
        c.set(
            Field::SecurityGroups,
            &self.ids(inputs, std::slice::from_ref(&self.security_group))?,
            &groups,
        );
        diff_attributes(
            c,
            Field::Attributes,
            self.want_attributes(),
            &have.attributes,
        );
        c.tags(cx.tags(), &have.tags);
        Ok(())
    }

    async fn create(&self, cx: &NodeCx<'_>, inputs: &Inputs<'_>) -> Result<Attrs, Failure> {
        let out = cx
            .aws()
            .elb
            .create_load_balancer()
            .name(load_balancer_name(cx.env_full()))
            .set_subnets(Some(self.ids(inputs, &self.subnets)?))
            .security_groups(inputs.id(&self.security_group)?)
            .scheme(LoadBalancerSchemeEnum::InternetFacing)
            .r#type(LoadBalancerTypeEnum::Application)
            .ip_address_type(IpAddressType::Ipv4)
            .set_tags(Some(elb_tag_list(cx.tags())))
            .send()
            .await?;
        let lb = out
            .load_balancers()
            .first()
            .ok_or_else(|| Failure::missing("load balancer"))?;
        let attrs = lb_attrs(lb)?;
        self.put_attributes(cx, &attrs.id).await?;
        Ok(attrs)
    }

    /// Provisioning takes a few minutes; listeners and rules need only its ARN (PLATFORM.md).
    async fn wait_ready(&self, cx: &NodeCx<'_>, attrs: Attrs) -> Result<Attrs, Failure> {
        let last = cx
            .wait_keeping(
                &format!(
                    "load balancer {} to be active",
                    attrs.name.as_deref().unwrap_or(&attrs.id)
                ),
                LOAD_BALANCER_ACTIVE,
                || async {
                    let lb = Self::describe(cx, &attrs.id).await?;
                    Ok((lb_ready(lb.as_ref()), lb))
                },
            )
            .await?;
        match last {
            Some(lb) => lb_attrs(&lb),
            None => Ok(attrs),
        }
    }

    async fn update(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &ObservedLb,
        changes: &[Change],
    ) -> Result<Attrs, Failure> {
        let elb = &cx.aws().elb;
        let arn = have.lb.load_balancer_arn().required("load balancer ARN")?;
        if has(changes, Field::Subnets) {
            elb.set_subnets()
                .load_balancer_arn(arn)
                .set_subnets(Some(self.ids(inputs, &self.subnets)?))
                .send()
                .await?;
        }
        if has(changes, Field::SecurityGroups) {
            elb.set_security_groups()
                .load_balancer_arn(arn)
                .security_groups(inputs.id(&self.security_group)?)
                .send()
                .await?;
        }
        if under(changes, Field::Attributes) {
            self.put_attributes(cx, arn).await?;
        }
        if tags_changed(changes) {
            retag_elb(cx, arn).await?;
        }
        lb_attrs(&have.lb)
    }

    fn protection(&self, _cx: &NodeCx<'_>, have: &ObservedLb) -> Option<String> {
        (have.attributes.get(DELETION_PROTECTION).map(String::as_str) == Some("true")).then(|| {
            format!(
                "load balancer {} has deletion protection",
                have.lb.load_balancer_name().unwrap_or("?")
            )
        })
    }

    /// Turns off deletion protection when asked (`--disable-protection`), deletes, and waits
    /// until it is gone (its network interfaces hold the subnets and the group until then).
    async fn delete(&self, cx: &NodeCx<'_>, have: &ObservedLb) -> Result<(), Failure> {
        let arn = have.lb.load_balancer_arn().required("load balancer ARN")?;
        let elb = &cx.aws().elb;
        if self.protection(cx, have).is_some() {
            if !cx.cx.flags.disable_protection {
                return Err(Failure::new(
                    "DeletionProtection",
                    "the load balancer has deletion protection; rerun `down` with --disable-protection to remove it",
                ));
            }
            elb.modify_load_balancer_attributes()
                .load_balancer_arn(arn)
                .attributes(
                    LoadBalancerAttribute::builder()
                        .key(DELETION_PROTECTION)
                        .value("false")
                        .build(),
                )
                .send()
                .await?;
        }
        elb.delete_load_balancer()
            .load_balancer_arn(arn)
            .send()
            .await
            .or_absent()?;
        cx.wait_gone("the load balancer", LOAD_BALANCER_DELETED, || async {
            Ok(Self::describe(cx, arn).await?.map(|lb| {
                lb.state()
                    .and_then(|s| s.code())
                    .map(|c| c.as_str().to_string())
                    .unwrap_or_default()
            }))
        })
        .await
    }

    fn outputs(&self, attrs: &Attrs) -> Vec<Output> {
        vec![super::output("alb_dns_name", &attrs.dns_name)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_elb() {
        assert_eq!(load_balancer_name("tap-prod"), "tap-prod-alb");
        let long = load_balancer_name(&format!("{}-{}", "p".repeat(12), "e".repeat(20)));
        assert!(long.len() <= 32, "{long}");
    }
}
