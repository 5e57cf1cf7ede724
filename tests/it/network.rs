//! The KMS + network layer on the emulator: what `up` builds matches PLATFORM.md, a second
//! `up` makes no write, drift is put back, `down` leaves nothing but the kept key.

use aws_sdk_ec2::types::{Filter, NatGatewayState, VpcAttributeName};
use aws_sdk_ec2::Client as Ec2;

use crate::common::{account, config_dir, endpoint, run, run_with, sdk};

const ENV_TAG: &str = "tap:environment";

fn env_filter() -> Filter {
    Filter::builder()
        .name(format!("tag:{ENV_TAG}"))
        .values("tap-local")
        .build()
}

fn tag<'a>(tags: &'a [aws_sdk_ec2::types::Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

async fn up_ok(acct: &str) -> crate::common::Run {
    let r = run(&["up", "--env", "local", "--yes", "--json"], acct).await;
    assert_eq!(r.code, 0, "up failed:\n{}\n{}", r.stdout, r.stderr);
    r
}

/// Live NAT gateways of the environment (the emulator keeps deleted ones listed).
async fn live_nats(ec2: &Ec2) -> Vec<aws_sdk_ec2::types::NatGateway> {
    let out = ec2.describe_nat_gateways().send().await.unwrap();
    out.nat_gateways()
        .iter()
        .filter(|n| tag(n.tags(), ENV_TAG) == Some("tap-local"))
        .filter(|n| {
            !matches!(
                n.state(),
                Some(NatGatewayState::Deleted) | Some(NatGatewayState::Deleting)
            )
        })
        .cloned()
        .collect()
}

#[tokio::test]
async fn up_builds_the_layer_and_a_second_up_changes_nothing() {
    let acct = account();
    let first = up_ok(&acct).await;
    let done = first.finished();
    assert_eq!(done["counts"]["created"], 33, "{done}");
    assert!(
        first.stdout.contains("node_progress") && first.stdout.contains("waiting for available"),
        "the NAT wait is shown"
    );

    let conf = sdk(&acct).await;
    let ec2 = Ec2::new(&conf);

    // VPC: CIDR, DNS support and hostnames, tags.
    let vpcs = ec2
        .describe_vpcs()
        .filters(env_filter())
        .send()
        .await
        .unwrap();
    assert_eq!(vpcs.vpcs().len(), 1);
    let vpc = &vpcs.vpcs()[0];
    let vpc_id = vpc.vpc_id().unwrap();
    assert_eq!(vpc.cidr_block(), Some("10.42.0.0/16"));
    for (k, v) in [
        ("Environment", "local"),
        ("Project", "tap"),
        ("CostCenter", "local-dev"),
        (ENV_TAG, "tap-local"),
        ("tap:node", "vpc"),
    ] {
        assert_eq!(tag(vpc.tags(), k), Some(v), "VPC tag {k}");
    }
    for attr in [
        VpcAttributeName::EnableDnsSupport,
        VpcAttributeName::EnableDnsHostnames,
    ] {
        let a = ec2
            .describe_vpc_attribute()
            .vpc_id(vpc_id)
            .attribute(attr.clone())
            .send()
            .await
            .unwrap();
        let on = a
            .enable_dns_support()
            .or(a.enable_dns_hostnames())
            .and_then(|v| v.value());
        assert_eq!(on, Some(true), "{attr:?}");
    }

    // Nine subnets: per zone a public /24, a private /24, an isolated /26.
    let subnets = ec2
        .describe_subnets()
        .filters(env_filter())
        .send()
        .await
        .unwrap();
    let subnets = subnets.subnets();
    assert_eq!(subnets.len(), 9);
    for (tier, suffix) in [("public", "/24"), ("private", "/24"), ("isolated", "/26")] {
        let of_tier: Vec<_> = subnets
            .iter()
            .filter(|s| {
                tag(s.tags(), "tap:node").is_some_and(|n| n.starts_with(&format!("subnet-{tier}-")))
            })
            .collect();
        assert_eq!(of_tier.len(), 3, "{tier}");
        let mut zones: Vec<_> = of_tier
            .iter()
            .map(|s| s.availability_zone().unwrap())
            .collect();
        zones.sort();
        zones.dedup();
        assert_eq!(zones.len(), 3, "{tier} subnets spread over three zones");
        assert!(
            of_tier
                .iter()
                .all(|s| s.cidr_block().unwrap().ends_with(suffix)),
            "{tier} subnets are {suffix}"
        );
    }
    let subnet = |node: &str| {
        subnets
            .iter()
            .find(|s| tag(s.tags(), "tap:node") == Some(node))
            .unwrap()
            .subnet_id()
            .unwrap()
            .to_string()
    };

    // One NAT gateway (local config), available, in the first public subnet, with an EIP.
    let nats = live_nats(&ec2).await;
    assert_eq!(nats.len(), 1);
    assert_eq!(nats[0].state(), Some(&NatGatewayState::Available));
    assert_eq!(
        nats[0].subnet_id(),
        Some(subnet("subnet-public-a").as_str())
    );
    let nat_id = nats[0].nat_gateway_id().unwrap();
    let eips = ec2
        .describe_addresses()
        .filters(env_filter())
        .send()
        .await
        .unwrap();
    assert_eq!(eips.addresses().len(), 1);

    // Routes: public -> IGW, private -> the NAT, isolated -> nothing beyond the VPC.
    let igws = ec2
        .describe_internet_gateways()
        .filters(env_filter())
        .send()
        .await
        .unwrap();
    let igw = &igws.internet_gateways()[0];
    assert_eq!(igw.attachments()[0].vpc_id(), Some(vpc_id));
    let tables = ec2
        .describe_route_tables()
        .filters(env_filter())
        .send()
        .await
        .unwrap();
    let tables = tables.route_tables();
    assert_eq!(tables.len(), 5);
    for t in tables {
        let node = tag(t.tags(), "tap:node").unwrap();
        let default_route = t
            .routes()
            .iter()
            .find(|r| r.destination_cidr_block() == Some("0.0.0.0/0"));
        let associated: Vec<&str> = t
            .associations()
            .iter()
            .filter_map(|a| a.subnet_id())
            .collect();
        match node {
            "route-table-public" => {
                assert_eq!(
                    default_route.and_then(|r| r.gateway_id()),
                    igw.internet_gateway_id()
                );
                assert_eq!(associated.len(), 3);
            }
            "route-table-isolated" => {
                assert!(
                    default_route.is_none(),
                    "isolated subnets have no internet route"
                );
                assert_eq!(associated.len(), 3);
            }
            private => {
                assert!(private.starts_with("route-table-private-"));
                assert_eq!(default_route.and_then(|r| r.nat_gateway_id()), Some(nat_id));
                let zone = private.rsplit('-').next().unwrap();
                assert_eq!(
                    associated,
                    vec![subnet(&format!("subnet-private-{zone}")).as_str()]
                );
            }
        }
    }

    // Flow logs: ALL traffic to the KMS-encrypted log group with retention.
    let flows = ec2
        .describe_flow_logs()
        .filter(env_filter())
        .send()
        .await
        .unwrap();
    let flow = &flows.flow_logs()[0];
    assert_eq!(flow.resource_id(), Some(vpc_id));
    assert_eq!(flow.traffic_type().map(|t| t.as_str()), Some("ALL"));
    let logs = aws_sdk_cloudwatchlogs::Client::new(&conf);
    let groups = logs
        .describe_log_groups()
        .log_group_name_prefix("/tap/tap-local/vpc-flow-logs")
        .send()
        .await
        .unwrap();
    let group = &groups.log_groups()[0];
    assert_eq!(group.retention_in_days(), Some(7));
    let kms = aws_sdk_kms::Client::new(&conf);
    let key = kms
        .describe_key()
        .key_id("alias/tap-local")
        .send()
        .await
        .unwrap();
    let key = key.key_metadata().unwrap();
    assert_eq!(group.kms_key_id(), key.arn());
    assert!(kms
        .get_key_rotation_status()
        .key_id(key.key_id())
        .send()
        .await
        .unwrap()
        .key_rotation_enabled());

    // Security groups: least privilege.
    let sgs = ec2
        .describe_security_groups()
        .filters(env_filter())
        .send()
        .await
        .unwrap();
    let sg = |node: &str| {
        sgs.security_groups()
            .iter()
            .find(|g| tag(g.tags(), "tap:node") == Some(node))
            .unwrap()
            .clone()
    };
    let (alb, ecs, db) = (sg("sg-alb"), sg("sg-ecs"), sg("sg-db"));
    let ports = |g: &aws_sdk_ec2::types::SecurityGroup| {
        let mut p: Vec<(i32, String)> = g
            .ip_permissions()
            .iter()
            .flat_map(|p| {
                let port = p.from_port().unwrap_or(-1);
                p.ip_ranges()
                    .iter()
                    .map(move |r| (port, r.cidr_ip().unwrap().to_string()))
                    .chain(
                        p.user_id_group_pairs()
                            .iter()
                            .map(move |g| (port, g.group_id().unwrap().to_string())),
                    )
            })
            .collect();
        p.sort();
        p
    };
    assert_eq!(
        ports(&alb),
        vec![(80, "0.0.0.0/0".into()), (443, "0.0.0.0/0".into())]
    );
    let alb_id = alb.group_id().unwrap().to_string();
    assert_eq!(ports(&ecs), vec![(80, alb_id.clone()), (3000, alb_id)]);
    assert_eq!(
        ports(&db),
        vec![(5432, ecs.group_id().unwrap().to_string())]
    );
    assert!(
        db.ip_permissions_egress().is_empty(),
        "the DB group has no egress"
    );

    // A second up: every node unchanged, no mutating call at all.
    let second = up_ok(&acct).await;
    let done = second.finished();
    assert_eq!(done["changed"], 0, "{done}");
    assert_eq!(done["counts"]["unchanged"], 33, "{done}");
    assert_eq!(done["api_calls"]["writes"], 0, "{}", done["api_calls"]);
    assert!(
        done["api_calls"]["reads"].as_u64().unwrap() <= 36,
        "converged run reads little: {}",
        done["api_calls"]
    );
}

#[tokio::test]
async fn drift_is_put_back_by_up() {
    let acct = account();
    up_ok(&acct).await;
    let conf = sdk(&acct).await;
    let ec2 = Ec2::new(&conf);
    let kms = aws_sdk_kms::Client::new(&conf);
    let sgs = ec2
        .describe_security_groups()
        .filters(env_filter())
        .send()
        .await
        .unwrap();
    let db = sgs
        .security_groups()
        .iter()
        .find(|g| tag(g.tags(), "tap:node") == Some("sg-db"))
        .unwrap();
    let db_id = db.group_id().unwrap();
    // By hand: SSH from anywhere on the database group, a tag removed, rotation off.
    ec2.authorize_security_group_ingress()
        .group_id(db_id)
        .ip_protocol("tcp")
        .from_port(22)
        .to_port(22)
        .cidr_ip("0.0.0.0/0")
        .send()
        .await
        .unwrap();
    ec2.delete_tags()
        .resources(db_id)
        .tags(aws_sdk_ec2::types::Tag::builder().key("CostCenter").build())
        .send()
        .await
        .unwrap();
    let key = kms
        .describe_key()
        .key_id("alias/tap-local")
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .key_id()
        .to_string();
    kms.disable_key_rotation()
        .key_id(&key)
        .send()
        .await
        .unwrap();

    let r = up_ok(&acct).await;
    assert_eq!(r.outcome("sg-db"), "updated");
    assert_eq!(r.outcome("kms-key"), "updated");
    assert_eq!(r.finished()["changed"], 2);

    let db = ec2
        .describe_security_groups()
        .group_ids(db_id)
        .send()
        .await
        .unwrap();
    let db = &db.security_groups()[0];
    assert!(
        db.ip_permissions()
            .iter()
            .all(|p| p.from_port() != Some(22)),
        "hand-added rule revoked"
    );
    assert_eq!(tag(db.tags(), "CostCenter"), Some("local-dev"));
    assert!(kms
        .get_key_rotation_status()
        .key_id(&key)
        .send()
        .await
        .unwrap()
        .key_rotation_enabled());
}

#[tokio::test]
async fn down_leaves_nothing_but_the_kept_key() {
    let acct = account();
    up_ok(&acct).await;
    let r = run(&["down", "--env", "local", "--yes", "--json"], &acct).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.outcome("kms-key"), "kept");

    let conf = sdk(&acct).await;
    let ec2 = Ec2::new(&conf);
    assert!(ec2
        .describe_vpcs()
        .filters(env_filter())
        .send()
        .await
        .unwrap()
        .vpcs()
        .is_empty());
    assert!(ec2
        .describe_subnets()
        .filters(env_filter())
        .send()
        .await
        .unwrap()
        .subnets()
        .is_empty());
    assert!(live_nats(&ec2).await.is_empty());
    assert!(ec2
        .describe_addresses()
        .filters(env_filter())
        .send()
        .await
        .unwrap()
        .addresses()
        .is_empty());
    assert!(ec2
        .describe_security_groups()
        .filters(env_filter())
        .send()
        .await
        .unwrap()
        .security_groups()
        .is_empty());
    assert!(ec2
        .describe_route_tables()
        .filters(env_filter())
        .send()
        .await
        .unwrap()
        .route_tables()
        .is_empty());
    assert!(ec2
        .describe_internet_gateways()
        .filters(env_filter())
        .send()
        .await
        .unwrap()
        .internet_gateways()
        .is_empty());
    let iam = aws_sdk_iam::Client::new(&conf);
    assert!(iam
        .get_role()
        .role_name("tap-local-vpc-flow-logs")
        .send()
        .await
        .is_err());
    let kms = aws_sdk_kms::Client::new(&conf);
    let key = kms
        .describe_key()
        .key_id("alias/tap-local")
        .send()
        .await
        .unwrap();
    assert_eq!(
        key.key_metadata().unwrap().key_state().map(|s| s.as_str()),
        Some("Enabled")
    );

    // A second down finds nothing left to delete; --destroy-data schedules the key's deletion.
    let r = run(
        &[
            "down",
            "--env",
            "local",
            "--yes",
            "--json",
            "--destroy-data",
        ],
        &acct,
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.outcome("vpc"), "absent");
    assert_eq!(r.outcome("kms-key"), "deleted");
    let keys = kms.list_keys().send().await.unwrap();
    let id = keys.keys()[0].key_id().unwrap();
    let meta = kms.describe_key().key_id(id).send().await.unwrap();
    assert_eq!(
        meta.key_metadata().unwrap().key_state().map(|s| s.as_str()),
        Some("PendingDeletion")
    );
}

#[tokio::test]
async fn one_nat_per_zone_routes_each_zone_to_its_own() {
    let acct = account();
    let dir = config_dir(|t| t.replace("nat_gateways = 1", "nat_gateways = 3"));
    let r = run_with(
        &[
            "up",
            "--env",
            "local",
            "--yes",
            "--json",
            "--config-dir",
            dir.path().to_str().unwrap(),
        ],
        &acct,
        endpoint(),
        &crate::common::repo(),
    )
    .await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let ec2 = Ec2::new(&sdk(&acct).await);
    let nats = live_nats(&ec2).await;
    assert_eq!(nats.len(), 3);
    let tables = ec2
        .describe_route_tables()
        .filters(env_filter())
        .send()
        .await
        .unwrap();
    for zone in ['a', 'b', 'c'] {
        let nat = nats
            .iter()
            .find(|n| tag(n.tags(), "tap:node") == Some(&format!("nat-{zone}")))
            .unwrap();
        let table = tables
            .route_tables()
            .iter()
            .find(|t| tag(t.tags(), "tap:node") == Some(&format!("route-table-private-{zone}")))
            .unwrap();
        let target = table
            .routes()
            .iter()
            .find(|r| r.destination_cidr_block() == Some("0.0.0.0/0"))
            .and_then(|r| r.nat_gateway_id());
        assert_eq!(
            target,
            nat.nat_gateway_id(),
            "zone {zone} routes to its own NAT"
        );
    }
}
