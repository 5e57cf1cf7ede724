//! The network section: CIDRs, zones, NAT gateways, the subnet layout (derived or explicit).

use super::super::raw::RawConfig;
use super::super::{Ipv4Cidr, Network, Zone};
use super::{Collector, LOG_RETENTION_DAYS};

pub(super) fn validate_network(p: &mut Collector, raw: &RawConfig) -> Option<Network> {
    let n = &raw.network;
    let before = p.0.len();
    let vpc: Option<Ipv4Cidr> = match n.vpc_cidr.parse::<Ipv4Cidr>() {
        Ok(c) if (16..=24).contains(&c.prefix()) => Some(c),
        Ok(c) => {
            p.add(
                "network.vpc_cidr",
                format!("{c} has prefix /{}: a VPC takes /16 to /24", c.prefix()),
            );
            None
        }
        Err(e) => {
            p.add("network.vpc_cidr", e);
            None
        }
    };
    let count = n.availability_zones;
    if !(2..=6).contains(&count) {
        p.add(
            "network.availability_zones",
            format!("{count} is out of range: expected 2 to 6 availability zones"),
        );
        return None;
    }
    let count = count as usize;

    let zone_names: Vec<String> = match &n.zone_names {
        Some(names) => {
            if names.len() != count {
                p.add(
                    "network.zone_names",
                    format!(
                        "lists {} zones but availability_zones is {count}: give exactly one name per zone",
                        names.len()
                    ),
                );
            }
            for (i, z) in names.iter().enumerate() {
                if !z.starts_with(&raw.region) || z.len() <= raw.region.len() {
                    p.add(
                        &format!("network.zone_names[{i}]"),
                        format!("`{z}` is not a zone of region `{}`", raw.region),
                    );
                }
            }
            let mut sorted = names.clone();
            sorted.sort();
            sorted.dedup();
            if sorted.len() != names.len() {
                p.add(
                    "network.zone_names",
                    "lists a zone twice: each subnet tier needs distinct zones",
                );
            }
            names.clone()
        }
        None => (0..count)
            .map(|i| format!("{}{}", raw.region, (b'a' + i as u8) as char))
            .collect(),
    };

    let nat = n.nat_gateways.unwrap_or(count as i64);
    if nat != 1 && nat != count as i64 {
        p.add(
            "network.nat_gateways",
            format!("{nat} is not allowed: expected {count} (one per zone) or 1"),
        );
    } else if raw.protected && nat != count as i64 {
        p.add(
            "network.nat_gateways",
            format!(
                "a protected environment needs one NAT gateway per zone ({count}), so losing a zone does not cut the others off"
            ),
        );
    }

    if !LOG_RETENTION_DAYS.contains(&n.flow_logs_retention_days) {
        p.add(
            "network.flow_logs_retention_days",
            format!(
                "{} is not a CloudWatch Logs retention: expected one of {LOG_RETENTION_DAYS:?}",
                n.flow_logs_retention_days
            ),
        );
    }

    let vpc = vpc?;
    // Default layout, stable when the zone count changes: public /24 #0-5, private /24 #6-11,
    // isolated /26s packed into /24 #12-13.
    let tiers: [(&str, &Option<Vec<String>>, u8, u32); 3] = [
        ("public_subnets", &n.public_subnets, 24, 0),
        ("private_subnets", &n.private_subnets, 24, 6),
        ("isolated_subnets", &n.isolated_subnets, 26, 12 * 4),
    ];
    let mut blocks: Vec<Vec<Ipv4Cidr>> = Vec::new();
    let mut all: Vec<(String, Ipv4Cidr)> = Vec::new();
    for (name, given, prefix, offset) in tiers {
        let key = format!("network.{name}");
        let mut tier = Vec::new();
        match given {
            Some(list) => {
                if list.len() != count {
                    p.add(
                        &key,
                        format!(
                            "lists {} blocks but there are {count} zones: give one per zone",
                            list.len()
                        ),
                    );
                }
                for (i, s) in list.iter().enumerate() {
                    match s.parse::<Ipv4Cidr>() {
                        Ok(c) => {
                            tier.push(c);
                            all.push((format!("{key}[{i}]"), c));
                        }
                        Err(e) => p.add(&format!("{key}[{i}]"), e),
                    }
                }
            }
            None => {
                for i in 0..count {
                    match vpc.nth_subnet(prefix, offset + i as u32) {
                        Some(c) => {
                            tier.push(c);
                            all.push((format!("{key}[{i}]"), c));
                        }
                        None => {
                            p.add(
                                &key,
                                format!(
                                    "the default layout does not fit in {vpc}: use a /20 or larger VPC, or list the blocks explicitly"
                                ),
                            );
                            break;
                        }
                    }
                }
            }
        }
        blocks.push(tier);
    }
    for (key, c) in &all {
        if !vpc.contains(c) {
            p.add(key, format!("{c} is not inside the VPC block {vpc}"));
        }
        if c.prefix() > 28 {
            p.add(key, format!("{c} is too small: a subnet takes /16 to /28"));
        }
    }
    for (i, (ka, a)) in all.iter().enumerate() {
        for (kb, b) in &all[i + 1..] {
            if a.overlaps(b) {
                p.add(
                    kb,
                    format!("{b} overlaps {a} ({ka}): subnet blocks must not overlap"),
                );
            }
        }
    }
    if p.0.len() != before || blocks.iter().any(|t| t.len() != count) || zone_names.len() != count {
        return None;
    }
    let zones = (0..count)
        .map(|i| Zone {
            name: zone_names[i].clone(),
            suffix: (b'a' + i as u8) as char,
            public: blocks[0][i],
            private: blocks[1][i],
            isolated: blocks[2][i],
        })
        .collect();
    Some(Network {
        vpc_cidr: vpc,
        zones,
        zones_named: n.zone_names.is_some(),
        nat_gateways: nat as usize,
        flow_logs_retention_days: n.flow_logs_retention_days as i32,
    })
}
