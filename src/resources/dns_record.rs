//! Records in the environment's hosted zone: the CNAMEs that validate its certificates, and
//! the alias A records that point its names at the load balancer and the distribution. Each
//! change waits until Route53 says INSYNC. Records carry no tags: they are found by name and
//! type in the zone (`ListResourceRecordSets` from the name on), never by listing the zone.

use crate::aws::wait::expected::DNS_CHANGE_INSYNC;

use async_trait::async_trait;
use aws_sdk_route53::types::{
    AliasTarget, Change as R53Change, ChangeAction, ChangeBatch, ChangeStatus, ResourceRecord,
    ResourceRecordSet, RrType,
};
use serde::{Deserialize, Serialize};

use super::hosted_zone::find_zone;
use super::{NodeCx, Resource};
use crate::aws::wait::Poll;
use crate::diff::{fields, Change, Changes};
use crate::error::Failure;
use crate::model::{Attrs, DnsRecord, Inputs, Ref, UNKNOWN};
use crate::policy::{grant, Grants, On};

fields! {
    /// The fields a dns validation is compared on, as `plan`, `drift` and `history` name them.
    enum Field {
        Records = "records",
        AliasTarget = "alias_target",
        AliasHostedZoneId = "alias_hosted_zone_id",
    }
}

/// Where the zone is: its node (for its id when writing) and how to look it up (observing
/// needs no other node).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ZoneRef {
    pub node: Ref,
    pub name: String,
    pub id: Option<String>,
}

/// The CNAMEs that validate certificates for `domain` and `*.<domain>`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ValidationRecords {
    pub zone: ZoneRef,
    pub domain: String,
    pub certificates: Vec<Ref>,
}

/// What an alias record points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AliasKind {
    LoadBalancer,
    Distribution,
}

/// `name` A (alias) -> a load balancer or a distribution.
#[derive(Debug, Serialize, Deserialize)]
pub struct AliasRecord {
    pub zone: ZoneRef,
    pub name: String,
    pub target: Ref,
    pub kind: AliasKind,
}

/// The zone's id, `None` when the zone does not exist (looked up once per run).
async fn zone_id(cx: &NodeCx<'_>, zone: &ZoneRef) -> Result<Option<String>, Failure> {
    Ok(find_zone(cx, &zone.name, zone.id.as_deref())
        .await?
        .map(|z| z.id().rsplit('/').next().unwrap_or(z.id()).to_string()))
}

/// The zone's record sets from `name` (and `kind`) on, in Route53's order (by name with
/// its labels reversed, then type), for as long as `wanted` holds: read by name, never the
/// whole zone (a company's zone can hold thousands of records, listed at 5 requests a
/// second).
async fn records_from(
    cx: &NodeCx<'_>,
    zone_id: &str,
    name: &str,
    kind: Option<RrType>,
    page: i32,
    wanted: impl Fn(&ResourceRecordSet) -> bool,
) -> Result<Vec<ResourceRecordSet>, Failure> {
    let mut out = Vec::new();
    let mut next = Some((name.to_string(), kind, None::<String>));
    let mut seen = std::collections::HashSet::new();
    while let Some(start) = next.take() {
        // A start seen before would page forever (a zone that answers no identifier).
        if !seen.insert(start.clone()) {
            break;
        }
        let (name, kind, identifier) = start;
        let got = cx
            .aws()
            .route53
            .list_resource_record_sets()
            .hosted_zone_id(zone_id)
            .start_record_name(name)
            .set_start_record_type(kind)
            .set_start_record_identifier(identifier)
            .max_items(page)
            .send()
            .await?;
        for r in got.resource_record_sets() {
            if !wanted(r) {
                return Ok(out);
            }
            out.push(r.clone());
        }
        if let (true, Some(name), Some(kind)) = (
            got.is_truncated(),
            got.next_record_name(),
            got.next_record_type(),
        ) {
            next = Some((
                name.to_string(),
                Some(kind.clone()),
                got.next_record_identifier().map(String::from),
            ));
        }
    }
    Ok(out)
}

fn fqdn(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.').to_ascii_lowercase())
}

/// The run's zones, each with the gate its change batches pass one at a time.
#[derive(Default)]
struct ZoneGates(
    std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<tokio::sync::Mutex<()>>>>,
);

/// Sends one change batch and waits until Route53 has it everywhere (INSYNC). Batches to one
/// zone are sent one at a time (Route53 refuses a batch while the zone's last one is still
/// being taken in: `PriorRequestNotComplete`); each waits for INSYNC on its own, and other
/// zones and other work do not wait at all.
async fn change(
    cx: &NodeCx<'_>,
    zone_id: &str,
    changes: Vec<R53Change>,
    what: &str,
) -> Result<(), Failure> {
    let batch = ChangeBatch::builder()
        .set_changes(Some(changes))
        .comment(format!("tap-provision {}", cx.node))
        .build()
        .map_err(|e| Failure::new("InvalidInput", e.to_string()))?;
    let gate = cx
        .shared::<ZoneGates>()
        .0
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(zone_id.to_string())
        .or_default()
        .clone();
    let out = {
        let _one_at_a_time = gate.lock().await;
        cx.aws()
            .route53
            .change_resource_record_sets()
            .hosted_zone_id(zone_id)
            .change_batch(batch)
            .send()
            .await?
    };
    let id = out
        .change_info()
        .map(|c| c.id().to_string())
        .ok_or_else(|| Failure::missing("change id"))?;
    cx.wait_ready(
        &format!("{what} to be INSYNC"),
        DNS_CHANGE_INSYNC,
        || async {
            let got = cx.aws().route53.get_change().id(&id).send().await?;
            Ok(match got.change_info().map(|c| c.status()) {
                Some(ChangeStatus::Insync) => Poll::Ready,
                Some(s) => Poll::Pending(s.as_str().to_string()),
                None => Poll::Pending("unknown".into()),
            })
        },
    )
    .await
}

fn cname_change(action: ChangeAction, r: &DnsRecord) -> Result<R53Change, Failure> {
    let set = ResourceRecordSet::builder()
        .name(&r.name)
        .r#type(RrType::from(r.record_type.as_str()))
        .ttl(300)
        .resource_records(
            ResourceRecord::builder()
                .value(&r.value)
                .build()
                .map_err(|e| Failure::new("InvalidInput", e.to_string()))?,
        )
        .build()
        .map_err(|e| Failure::new("InvalidInput", e.to_string()))?;
    R53Change::builder()
        .action(action)
        .resource_record_set(set)
        .build()
        .map_err(|e| Failure::new("InvalidInput", e.to_string()))
}

/// The validation records live: CNAMEs named `_<token>.<domain>.` (one label more).
pub struct Validation {
    zone_id: String,
    records: Vec<DnsRecord>,
}

impl ValidationRecords {
    fn want(&self, inputs: &Inputs<'_>) -> Result<Option<Vec<DnsRecord>>, Failure> {
        let mut all = Vec::new();
        for c in &self.certificates {
            match inputs.attrs(c)? {
                Some(a) => all.extend(a.validation_records.iter().cloned()),
                None => return Ok(None),
            }
        }
        for r in &mut all {
            r.name = fqdn(&r.name);
            r.value = fqdn(&r.value);
        }
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all.dedup();
        Ok(Some(all))
    }

    async fn upsert(&self, cx: &NodeCx<'_>, inputs: &Inputs<'_>) -> Result<Attrs, Failure> {
        let zone = inputs.id(&self.zone.node)?;
        let want = self.want(inputs)?.unwrap_or_default();
        let changes = want
            .iter()
            .map(|r| cname_change(ChangeAction::Upsert, r))
            .collect::<Result<Vec<_>, _>>()?;
        if !changes.is_empty() {
            change(
                cx,
                zone,
                changes,
                &format!("the validation records of {}", self.domain),
            )
            .await?;
        }
        Ok(Attrs::id(format!("{zone}/_validation.{}", self.domain)))
    }
}

#[async_trait]
impl Resource for ValidationRecords {
    type Observed = Validation;
    const KIND: &'static str = "dns_validation";
    const GRANTS: &'static Grants = &Grants {
        read: &[
            grant(&["route53:ListHostedZonesByName"], On::Any("the hosted zone is looked up by name: ListHostedZonesByName has no resource-level permission")),
            grant(&["route53:GetHostedZone", "route53:ListResourceRecordSets"], On::Arns(&["arn:${partition}:route53:::hostedzone/*"])),
        ],
        write: &[
            grant(&["route53:ChangeResourceRecordSets"], On::Arns(&["arn:${partition}:route53:::hostedzone/*"])),
            grant(&["route53:GetChange"], On::Arns(&["arn:${partition}:route53:::change/*"])),
        ],
        delete: &[
            grant(&["route53:ChangeResourceRecordSets"], On::Arns(&["arn:${partition}:route53:::hostedzone/*"])),
            grant(&["route53:GetChange"], On::Arns(&["arn:${partition}:route53:::change/*"])),
        ],
    };
    const FIELDS: &'static [&'static str] = Field::NAMES;

    async fn observe(&self, cx: &NodeCx<'_>) -> Result<Option<Validation>, Failure> {
        let Some(zone_id) = zone_id(cx, &self.zone).await? else {
            return Ok(None);
        };
        let domain = fqdn(&self.domain);
        // `_<token>.<domain>.`: the names under the domain whose label starts with `_`,
        // which Route53 lists together from `_.<domain>.` (`_` sorts before any other
        // label that starts with it).
        let child_label = |r: &ResourceRecordSet| -> Option<String> {
            let name = r.name().to_ascii_lowercase();
            let label = name.strip_suffix(&domain)?.strip_suffix('.')?;
            Some(label.rsplit('.').next().unwrap_or(label).to_string())
        };
        let records = records_from(cx, &zone_id, &format!("_.{domain}"), None, 100, |r| {
            child_label(r).is_some_and(|l| l.starts_with('_'))
        })
        .await?;
        let mut ours: Vec<DnsRecord> = records
            .iter()
            .filter(|r| r.r#type() == &RrType::Cname)
            .filter(|r| {
                let name = r.name().to_ascii_lowercase();
                name.strip_suffix(&domain)
                    .and_then(|label| label.strip_suffix('.'))
                    .is_some_and(|label| label.starts_with('_') && !label.contains('.'))
            })
            .flat_map(|r| {
                r.resource_records().iter().map(|v| DnsRecord {
                    name: fqdn(r.name()),
                    record_type: "CNAME".into(),
                    value: fqdn(v.value()),
                })
            })
            .collect();
        if ours.is_empty() {
            return Ok(None);
        }
        ours.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Some(Validation {
            zone_id,
            records: ours,
        }))
    }

    fn attrs(&self, _cx: &NodeCx<'_>, have: &Validation) -> Result<Attrs, Failure> {
        Ok(Attrs::id(format!(
            "{}/_validation.{}",
            have.zone_id, self.domain
        )))
    }

    /// Every wanted record present with its value; validation records of earlier
    /// certificates beside them do no harm and are left alone.
    fn diff(
        &self,
        _cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &Validation,
        c: &mut Changes,
    ) -> Result<(), Failure> {
        let show = |rs: &[DnsRecord]| -> Vec<String> {
            rs.iter()
                .map(|r| format!("{} CNAME {}", r.name, r.value))
                .collect()
        };
        match self.want(inputs)? {
            None => c.field(
                Field::Records,
                vec![UNKNOWN.to_string()],
                show(&have.records),
            ),
            Some(want) => {
                let present: Vec<DnsRecord> = have
                    .records
                    .iter()
                    .filter(|h| want.iter().any(|w| w.name == h.name))
                    .cloned()
                    .collect();
                c.field(Field::Records, show(&want), show(&present));
            }
        }
        Ok(())
    }

    async fn create(&self, cx: &NodeCx<'_>, inputs: &Inputs<'_>) -> Result<Attrs, Failure> {
        self.upsert(cx, inputs).await
    }

    async fn update(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        _have: &Validation,
        _changes: &[Change],
    ) -> Result<Attrs, Failure> {
        self.upsert(cx, inputs).await
    }

    async fn delete(&self, cx: &NodeCx<'_>, have: &Validation) -> Result<(), Failure> {
        let changes = have
            .records
            .iter()
            .map(|r| cname_change(ChangeAction::Delete, r))
            .collect::<Result<Vec<_>, _>>()?;
        change(
            cx,
            &have.zone_id,
            changes,
            &format!("the validation records of {}", self.domain),
        )
        .await
    }
}

/// An alias record live.
pub struct Alias {
    zone_id: String,
    set: ResourceRecordSet,
}

/// A load balancer's name as an alias target: lower case, no trailing dot, without the
/// `dualstack.` Route53 may show.
fn target_name(name: &str) -> String {
    let n = name.trim_end_matches('.').to_ascii_lowercase();
    n.strip_prefix("dualstack.").map(String::from).unwrap_or(n)
}

impl AliasRecord {
    fn target<'a>(&self, inputs: &Inputs<'a>) -> Result<(&'a str, &'a str), Failure> {
        let dns = inputs.attr(&self.target, "DNS name", |a| a.dns_name.as_deref())?;
        let zone = inputs.attr(&self.target, "hosted zone id", |a| {
            a.hosted_zone_id.as_deref()
        })?;
        Ok((dns, zone))
    }

    fn set(&self, dns: &str, zone: &str) -> Result<ResourceRecordSet, Failure> {
        ResourceRecordSet::builder()
            .name(fqdn(&self.name))
            .r#type(RrType::A)
            .alias_target(
                AliasTarget::builder()
                    .dns_name(dns)
                    .hosted_zone_id(zone)
                    // A distribution's health is not Route53's to judge.
                    .evaluate_target_health(self.kind == AliasKind::LoadBalancer)
                    .build()
                    .map_err(|e| Failure::new("InvalidInput", e.to_string()))?,
            )
            .build()
            .map_err(|e| Failure::new("InvalidInput", e.to_string()))
    }

    async fn upsert(&self, cx: &NodeCx<'_>, inputs: &Inputs<'_>) -> Result<Attrs, Failure> {
        let zone = inputs.id(&self.zone.node)?;
        let (dns, target_zone) = self.target(inputs)?;
        let change_item = R53Change::builder()
            .action(ChangeAction::Upsert)
            .resource_record_set(self.set(dns, target_zone)?)
            .build()
            .map_err(|e| Failure::new("InvalidInput", e.to_string()))?;
        change(cx, zone, vec![change_item], &format!("{} A", self.name)).await?;
        let mut a = Attrs::id(fqdn(&self.name));
        a.dns_name = Some(self.name.clone());
        Ok(a)
    }
}

#[async_trait]
impl Resource for AliasRecord {
    type Observed = Alias;
    const KIND: &'static str = "dns_alias";
    const GRANTS: &'static Grants = &Grants {
        read: &[
            grant(&["route53:ListHostedZonesByName"], On::Any("the hosted zone is looked up by name: ListHostedZonesByName has no resource-level permission")),
            grant(&["route53:GetHostedZone", "route53:ListResourceRecordSets"], On::Arns(&["arn:${partition}:route53:::hostedzone/*"])),
        ],
        write: &[
            grant(&["route53:ChangeResourceRecordSets"], On::Arns(&["arn:${partition}:route53:::hostedzone/*"])),
            grant(&["route53:GetChange"], On::Arns(&["arn:${partition}:route53:::change/*"])),
        ],
        delete: &[
            grant(&["route53:ChangeResourceRecordSets"], On::Arns(&["arn:${partition}:route53:::hostedzone/*"])),
            grant(&["route53:GetChange"], On::Arns(&["arn:${partition}:route53:::change/*"])),
        ],
    };
    const FIELDS: &'static [&'static str] = Field::NAMES;

    async fn observe(&self, cx: &NodeCx<'_>) -> Result<Option<Alias>, Failure> {
        let Some(zone_id) = zone_id(cx, &self.zone).await? else {
            return Ok(None);
        };
        let name = fqdn(&self.name);
        // A page of two: the record and the one after it, which ends the read (one call,
        // where a page of one asked again for the next).
        let records = records_from(cx, &zone_id, &name, Some(RrType::A), 2, |r| {
            r.r#type() == &RrType::A && fqdn(r.name()) == name
        })
        .await?;
        Ok(records
            .iter()
            .find(|r| r.r#type() == &RrType::A && fqdn(r.name()) == name)
            .map(|set| Alias {
                zone_id,
                set: set.clone(),
            }))
    }

    fn attrs(&self, _cx: &NodeCx<'_>, _have: &Alias) -> Result<Attrs, Failure> {
        let mut a = Attrs::id(fqdn(&self.name));
        a.dns_name = Some(self.name.clone());
        Ok(a)
    }

    fn diff(
        &self,
        _cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &Alias,
        c: &mut Changes,
    ) -> Result<(), Failure> {
        let (dns, zone) = self.target(inputs)?;
        let alias = have.set.alias_target();
        c.field(
            Field::AliasTarget,
            target_name(dns),
            alias
                .map(|a| target_name(a.dns_name()))
                .unwrap_or_else(|| "(not an alias)".into()),
        );
        c.field(
            Field::AliasHostedZoneId,
            zone,
            alias.map(|a| a.hosted_zone_id()).unwrap_or("(none)"),
        );
        Ok(())
    }

    async fn create(&self, cx: &NodeCx<'_>, inputs: &Inputs<'_>) -> Result<Attrs, Failure> {
        self.upsert(cx, inputs).await
    }

    async fn update(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        _have: &Alias,
        _changes: &[Change],
    ) -> Result<Attrs, Failure> {
        self.upsert(cx, inputs).await
    }

    async fn delete(&self, cx: &NodeCx<'_>, have: &Alias) -> Result<(), Failure> {
        let change_item = R53Change::builder()
            .action(ChangeAction::Delete)
            .resource_record_set(have.set.clone())
            .build()
            .map_err(|e| Failure::new("InvalidInput", e.to_string()))?;
        change(
            cx,
            &have.zone_id,
            vec![change_item],
            &format!("{} A", self.name),
        )
        .await
    }

    fn outputs(&self, _attrs: &Attrs) -> Vec<crate::model::Output> {
        let key = match self.kind {
            AliasKind::LoadBalancer => "application_url",
            AliasKind::Distribution => "cdn_url",
        };
        vec![super::output(key, format!("https://{}", self.name))]
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_compare_without_case_dots_or_dualstack() {
        assert_eq!(super::fqdn("Pay.Example.com"), "pay.example.com.");
        assert_eq!(super::fqdn("pay.example.com."), "pay.example.com.");
        assert_eq!(
            super::target_name("dualstack.tap-prod-1.eu-west-1.elb.amazonaws.com."),
            "tap-prod-1.eu-west-1.elb.amazonaws.com"
        );
    }
}
