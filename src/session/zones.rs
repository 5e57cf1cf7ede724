//! The environment's availability zones when its file names none (`network.zone_names`):
//! the zones it was built in, which its applied record (or, where it names none, its
//! subnets' tags) says; for a zone it does not have yet, the region's next zone, looked up
//! (`DescribeAvailabilityZones`: available, not opt-in). Asking for more zones than the
//! region has stops here, before the first write, naming the zones there are.

use std::collections::BTreeMap;

use anyhow::Context;
use aws_sdk_ec2::types::{AvailabilityZoneOptInStatus, AvailabilityZoneState, Filter};

use crate::aws::tags::{ENV_TAG, NODE_TAG};
use crate::aws::Clients;
use crate::config::EnvConfig;
use crate::error::Failure;
use crate::record::{self, Record};
use crate::resources::Scope;
use crate::stack::subnet_id;

/// The tier whose subnet says where a zone is (each tier has one subnet per zone).
const TIER: &str = "public";

/// Fills in `env`'s zone names when its file names none. Returns the applied record it
/// read to do so (`None`: it did not read it), for the run's first look to use.
pub async fn resolve(
    env: &mut EnvConfig,
    aws: &Clients,
    scope: &Scope,
) -> anyhow::Result<Option<Option<Record>>> {
    if env.network.zones_named {
        return Ok(None);
    }
    let loaded = record::load(&aws.s3, scope)
        .await
        .map_err(anyhow::Error::new)?;
    let suffixes: Vec<char> = env.network.zones.iter().map(|z| z.suffix).collect();
    let mut built: Vec<Option<String>> = match &loaded {
        Some(r) => suffixes.iter().map(|s| recorded_zone(r, *s)).collect(),
        None => vec![None; suffixes.len()],
    };
    let mut available = Vec::new();
    if built.iter().any(Option::is_none) {
        // Not in the record (none, lost, or one a killed `up` stored before its subnets):
        // the subnets' tags, and beside them the region's zones, which a zone no subnet
        // has yet needs (all of them, on a first run): one round of reads, not two.
        let (tagged, zones) = tokio::try_join!(
            tagged_zones(aws, &scope.env_full),
            region_zones(aws, &scope.region)
        )?;
        for (i, s) in suffixes.iter().enumerate() {
            if built[i].is_none() {
                built[i] = tagged.get(&subnet_id(TIER, *s)).cloned();
            }
        }
        available = zones;
    }
    let names = choose(&built, &available).map_err(|why| {
        anyhow::anyhow!(
            "{}: network.availability_zones = {} in {}: {why}; nothing was changed. Ask for \
             fewer zones, or name them in network.zone_names",
            env.file.display(),
            suffixes.len(),
            scope.region
        )
    })?;
    for (zone, name) in env.network.zones.iter_mut().zip(names) {
        zone.name = name;
    }
    Ok(Some(loaded))
}

/// Where the recorded public subnet of zone `suffix` is.
fn recorded_zone(r: &Record, suffix: char) -> Option<String> {
    r.nodes
        .get(&subnet_id(TIER, suffix))
        .and_then(|n| n.spec.get("zone"))
        .and_then(|z| z.as_str())
        .map(String::from)
}

/// The environment's subnets by node, with their zone: one read.
async fn tagged_zones(aws: &Clients, env_full: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let subnets: Vec<_> = aws
        .ec2
        .describe_subnets()
        .filters(
            Filter::builder()
                .name(format!("tag:{ENV_TAG}"))
                .values(env_full)
                .build(),
        )
        .into_paginator()
        .items()
        .send()
        .collect::<Result<_, _>>()
        .await
        .map_err(Failure::from)
        .context("finding the environment's subnets by their tags, for its zones")?;
    Ok(subnets
        .iter()
        .filter_map(|s| {
            let node = s
                .tags()
                .iter()
                .find(|t| t.key() == Some(NODE_TAG))?
                .value()?;
            Some((node.to_string(), s.availability_zone()?.to_string()))
        })
        .collect())
}

/// The region's zones this account may use without opting in, by name.
async fn region_zones(aws: &Clients, region: &str) -> anyhow::Result<Vec<String>> {
    let out = aws
        .ec2
        .describe_availability_zones()
        .send()
        .await
        .map_err(Failure::from)
        .with_context(|| format!("looking up the availability zones of {region}"))?;
    let mut names: Vec<String> = out
        .availability_zones()
        .iter()
        .filter(|z| {
            z.state()
                .is_none_or(|s| *s == AvailabilityZoneState::Available)
        })
        .filter(|z| {
            z.opt_in_status()
                .is_none_or(|s| *s == AvailabilityZoneOptInStatus::OptInNotRequired)
        })
        .filter(|z| z.zone_type().is_none_or(|t| t == "availability-zone"))
        .filter_map(|z| z.zone_name().map(String::from))
        .collect();
    names.sort();
    Ok(names)
}

/// Each zone's name: the one it was built in, else the first available zone not used by
/// another (pure). An error names the zones there are when there are too few.
pub fn choose(built: &[Option<String>], available: &[String]) -> Result<Vec<String>, String> {
    let mut free = available
        .iter()
        .filter(|a| !built.iter().flatten().any(|b| b == *a));
    let mut out = Vec::with_capacity(built.len());
    for b in built {
        match b {
            Some(name) => out.push(name.clone()),
            None => match free.next() {
                Some(name) => out.push(name.clone()),
                None => {
                    return Err(format!(
                        "the region has {} zone(s) this account may use ({})",
                        available.len(),
                        if available.is_empty() {
                            "none".to_string()
                        } else {
                            available.join(", ")
                        }
                    ))
                }
            },
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn built_zones_stay_new_ones_take_the_next_free_zone() {
        let available = names(&["us-west-1b", "us-west-1c"]);
        // New: the first zones, in order.
        assert_eq!(
            choose(&[None, None], &available).unwrap(),
            names(&["us-west-1b", "us-west-1c"])
        );
        // Built in c (and a zone since added): c stays, the new one takes b.
        assert_eq!(
            choose(&[Some("us-west-1c".into()), None], &available).unwrap(),
            names(&["us-west-1c", "us-west-1b"])
        );
        // Built in a zone the lookup no longer lists: kept all the same.
        assert_eq!(
            choose(&[Some("us-west-1a".into())], &[]).unwrap(),
            names(&["us-west-1a"])
        );
        // Three asked, two there: the error names them.
        let e = choose(&[None, None, None], &available).unwrap_err();
        assert!(
            e.contains("2 zone(s)") && e.contains("us-west-1b, us-west-1c"),
            "{e}"
        );
    }
}
