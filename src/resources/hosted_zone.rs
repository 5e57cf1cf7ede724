//! The environment's public Route53 hosted zone. Normally it exists outside the environment
//! (the company's DNS, delegated to this account): a lookup-only node, found by id or name,
//! never created, changed or deleted; `up` stops before it creates anything when it is
//! missing. An environment file that says `create_zone = true` (meant for `local`) lets the
//! tool make it, tagged, with a caller reference derived from the environment.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_route53::types::{HostedZone as AwsZone, TagResourceType};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use super::{output, NodeCx, Resource};
use crate::aws::errors::{CreatedBy, OrAbsent, OrExists};
use crate::aws::tags;
use crate::diff::{tags_changed, Change, Changes};
use crate::error::Failure;
use crate::model::{Attrs, Inputs, Output};
use crate::policy::{grant, Grants, On};

#[derive(Debug, Serialize, Deserialize)]
pub struct HostedZone {
    /// The zone's domain, e.g. `example.com` (the platform's domain or a parent of it).
    pub name: String,
    /// The zone's id when the config gives one (`Z0123…`); else it is found by name.
    pub id: Option<String>,
    /// True when the tool makes and owns the zone (`create_zone = true`).
    pub create: bool,
}

pub struct Observed {
    zone: AwsZone,
    tags: BTreeMap<String, String>,
}

/// `/hostedzone/Z123` -> `Z123`.
fn short_id(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or(id)
}

fn fqdn(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.'))
}

/// Looks the zone up by id, or by name among the public zones (pure read, not cached). A
/// zone given by id must be public and able to hold `name` (the domain, then): a private zone
/// or another domain's would fail late, at the records or the certificate's validation.
async fn lookup(cx: &NodeCx<'_>, name: &str, id: Option<&str>) -> Result<Option<AwsZone>, Failure> {
    let r53 = &cx.aws().route53;
    if let Some(id) = id {
        let Some(out) = r53.get_hosted_zone().id(id).send().await.or_absent()? else {
            return Ok(None);
        };
        let Some(zone) = out.hosted_zone().cloned() else {
            return Ok(None);
        };
        let zone_name = zone.name().trim_end_matches('.');
        if zone.config().is_some_and(|c| c.private_zone()) {
            return Err(Failure::new(
                "PrivateHostedZone",
                format!("hosted zone {id} ({zone_name}) is private: the platform's records and its certificate's validation need a public zone; set dns.hosted_zone to a public one"),
            ));
        }
        let domain = name.trim_end_matches('.');
        if domain != zone_name && !domain.ends_with(&format!(".{zone_name}")) {
            return Err(Failure::new(
                "WrongHostedZone",
                format!("hosted zone {id} is {zone_name}, which cannot hold records for {domain}: set dns.hosted_zone to the domain's zone or a parent's"),
            ));
        }
        return Ok(Some(zone));
    }
    let out = r53
        .list_hosted_zones_by_name()
        .dns_name(fqdn(name))
        .send()
        .await?;
    let public: Vec<AwsZone> = out
        .hosted_zones()
        .iter()
        .filter(|z| z.name() == fqdn(name))
        .filter(|z| !z.config().is_some_and(|c| c.private_zone()))
        .cloned()
        .collect();
    if public.len() > 1 {
        // Not the environment's to delete: named only.
        let ids: Vec<&str> = public.iter().map(|z| z.id()).collect();
        cx.note(format!(
            "{} public hosted zones are named {name} ({}): using the first; set dns.hosted_zone to its id to choose",
            public.len(),
            ids.join(", ")
        ));
    }
    Ok(public.into_iter().next())
}

/// The environment's zone, looked up once per run for the zone node and every record node.
#[derive(Default)]
struct EnvZone(OnceCell<Option<AwsZone>>);

/// The environment's hosted zone (by id or name), read once per run.
pub async fn find_zone(
    cx: &NodeCx<'_>,
    name: &str,
    id: Option<&str>,
) -> Result<Option<AwsZone>, Failure> {
    let cache = cx.shared::<EnvZone>();
    let zone = cache.0.get_or_try_init(|| lookup(cx, name, id)).await?;
    Ok(zone.clone())
}

#[async_trait]
impl Resource for HostedZone {
    type Observed = Observed;
    const KIND: &'static str = "hosted_zone";
    const GRANTS: &'static Grants = &Grants {
        read: &[
            crate::policy::BULK_TAGS,
            grant(&["route53:ListHostedZonesByName"], On::Any("the hosted zone is looked up by name: ListHostedZonesByName has no resource-level permission")),
            grant(&["route53:GetHostedZone", "route53:ListTagsForResource"], On::Arns(&["arn:${partition}:route53:::hostedzone/*"])),
        ],
        write: &[
            grant(
                &["route53:CreateHostedZone"],
                On::Any("CreateHostedZone has no resource-level permission"),
            ),
            grant(&["route53:ChangeTagsForResource"], On::Arns(&["arn:${partition}:route53:::hostedzone/*"])),
        ],
        delete: &[grant(&["route53:DeleteHostedZone"], On::Arns(&["arn:${partition}:route53:::hostedzone/*"]))],
    };

    fn managed(&self) -> bool {
        self.create
    }

    fn missing(&self, cx: &NodeCx<'_>) -> String {
        format!(
            "the public hosted zone {} was not found in account {}: create it (and its delegation) first, or set dns.hosted_zone to its id; `dns.create_zone = true` lets tap-provision create it (meant for local environments)",
            self.id.as_deref().unwrap_or(&self.name),
            cx.scope().account
        )
    }

    async fn observe(&self, cx: &NodeCx<'_>) -> Result<Option<Observed>, Failure> {
        let Some(zone) = find_zone(cx, &self.name, self.id.as_deref()).await? else {
            return Ok(None);
        };
        let tags = if self.create {
            let own = async {
                let out = cx
                    .aws()
                    .route53
                    .list_tags_for_resource()
                    .resource_type(TagResourceType::Hostedzone)
                    .resource_id(short_id(zone.id()))
                    .send()
                    .await?;
                // A successful answer without a tag set: a zone with no tags.
                Ok(out
                    .resource_tag_set()
                    .map(|s| tags::from_route53(s.tags()))
                    .unwrap_or_default())
            };
            let arn = format!(
                "arn:{}:route53:::hostedzone/{}",
                cx.scope().partition,
                short_id(zone.id())
            );
            cx.tags_of(&arn, own).await?
        } else {
            BTreeMap::new()
        };
        Ok(Some(Observed { zone, tags }))
    }

    fn attrs(&self, _cx: &NodeCx<'_>, have: &Observed) -> Result<Attrs, Failure> {
        let mut a = Attrs::id(short_id(have.zone.id()));
        a.name = Some(have.zone.name().trim_end_matches('.').to_string());
        a.hosted_zone_id = Some(short_id(have.zone.id()).to_string());
        Ok(a)
    }

    fn diff(
        &self,
        cx: &NodeCx<'_>,
        _inputs: &Inputs<'_>,
        have: &Observed,
        c: &mut Changes,
    ) -> Result<(), Failure> {
        if self.create {
            c.tags(cx.tags(), &have.tags);
        }
        Ok(())
    }

    async fn create(&self, cx: &NodeCx<'_>, _inputs: &Inputs<'_>) -> Result<Attrs, Failure> {
        let r53 = &cx.aws().route53;
        // Route53 never takes a caller reference twice, even after the zone is deleted: one
        // per run. A zone an interrupted run made is found by name instead.
        let created = r53
            .create_hosted_zone()
            .name(&self.name)
            .caller_reference(cx.run_token(&[&self.name]))
            .send()
            .await
            .or_exists(CreatedBy::Route53)?;
        let zone = match created.and_then(|o| o.hosted_zone().cloned()) {
            Some(z) => z,
            // Made by an interrupted run (same caller reference): find it.
            None => lookup(cx, &self.name, self.id.as_deref())
                .await?
                .ok_or_else(|| Failure::missing("hosted zone"))?,
        };
        tags::retag_route53_zone(r53, short_id(zone.id()), cx.tags()).await?;
        self.attrs(
            cx,
            &Observed {
                zone,
                tags: BTreeMap::new(),
            },
        )
    }

    async fn update(
        &self,
        cx: &NodeCx<'_>,
        _inputs: &Inputs<'_>,
        have: &Observed,
        changes: &[Change],
    ) -> Result<Attrs, Failure> {
        if tags_changed(changes) {
            tags::retag_route53_zone(&cx.aws().route53, short_id(have.zone.id()), cx.tags())
                .await?;
        }
        self.attrs(cx, have)
    }

    async fn delete(&self, cx: &NodeCx<'_>, have: &Observed) -> Result<(), Failure> {
        cx.aws()
            .route53
            .delete_hosted_zone()
            .id(short_id(have.zone.id()))
            .send()
            .await
            .or_absent()?;
        Ok(())
    }

    fn outputs(&self, attrs: &Attrs) -> Vec<Output> {
        vec![output("hosted_zone_id", &attrs.id)]
    }
}
