//! The KMS key and the network: VPC, subnets, gateways, routes, flow logs, security groups.

use serde_json::json;

use super::Stack;
use crate::config::EnvConfig;
use crate::model::Ref;
use crate::resources::eip::ElasticIp;
use crate::resources::flow_log::FlowLog;
use crate::resources::iam_role::IamRole;
use crate::resources::internet_gateway::InternetGateway;
use crate::resources::kms_key::KmsKey;
use crate::resources::log_group::LogGroup;
use crate::resources::nat_gateway::NatGateway;
use crate::resources::route_table::{RouteSpec, RouteTable, Via};
use crate::resources::security_group::{Peer, Rule, SecurityGroup};
use crate::resources::subnet::Subnet;
use crate::resources::template::Template;
use crate::resources::vpc::Vpc;

pub const KMS_KEY: &str = "kms-key";
pub const VPC: &str = "vpc";
pub const IGW: &str = "internet-gateway";

pub fn subnet_id(tier: &str, suffix: char) -> String {
    format!("subnet-{tier}-{suffix}")
}

/// What the later layers read of this one.
pub struct Network {
    pub key: Ref,
    pub vpc: Ref,
    pub igw: Ref,
    pub public_subnets: Vec<Ref>,
    pub private_subnets: Vec<Ref>,
    pub isolated_subnets: Vec<Ref>,
    pub alb_security_group: Ref,
    pub ecs_security_group: Ref,
    pub db_security_group: Ref,
}

pub fn build(s: &mut Stack<'_>, env: &EnvConfig) -> Network {
    let net = &env.network;
    let key = s.add(
        KMS_KEY,
        KmsKey {
            deletion_window_days: env.encryption.key_deletion_window_days,
        },
    );
    let vpc = s.add(VPC, Vpc { cidr: net.vpc_cidr });
    let mut subnets = |tier: &str| -> Vec<Ref> {
        net.zones
            .iter()
            .map(|z| {
                let cidr = match tier {
                    "public" => z.public,
                    "private" => z.private,
                    _ => z.isolated,
                };
                s.add(
                    &subnet_id(tier, z.suffix),
                    Subnet {
                        vpc: vpc.clone(),
                        cidr,
                        zone: z.name.clone(),
                        tier: tier.into(),
                    },
                )
            })
            .collect()
    };
    let public = subnets("public");
    let private = subnets("private");
    let isolated = subnets("isolated");

    // Create returns after AttachInternetGateway: its identifiers mean "attached", which is
    // all a NAT gateway, the public route or an internet-facing ALB needs (PLATFORM.md).
    let igw = s.add(IGW, InternetGateway { vpc: vpc.clone() });
    s.add(
        "route-table-public",
        RouteTable {
            vpc: vpc.clone(),
            routes: vec![RouteSpec {
                destination: "0.0.0.0/0".into(),
                via: Via::InternetGateway,
                target: igw.clone(),
            }],
            subnets: public.clone(),
        },
    );
    let nats: Vec<Ref> = net
        .zones
        .iter()
        .zip(&public)
        .take(net.nat_gateways)
        .map(|(z, subnet)| {
            let eip = s.add(&format!("eip-nat-{}", z.suffix), ElasticIp::default());
            s.add(
                &format!("nat-{}", z.suffix),
                NatGateway {
                    subnet: subnet.clone(),
                    eip,
                    igw: igw.clone(),
                },
            )
        })
        .collect();
    for (i, (z, subnet)) in net.zones.iter().zip(&private).enumerate() {
        // Routes to a `pending` NAT gateway are accepted: identifiers only (PLATFORM.md).
        s.add(
            &format!("route-table-private-{}", z.suffix),
            RouteTable {
                vpc: vpc.clone(),
                routes: vec![RouteSpec {
                    destination: "0.0.0.0/0".into(),
                    via: Via::NatGateway,
                    target: nats[net.nat_zone_for(i)].clone(),
                }],
                subnets: vec![subnet.clone()],
            },
        );
    }
    s.add(
        "route-table-isolated",
        RouteTable {
            vpc: vpc.clone(),
            routes: vec![],
            subnets: isolated.clone(),
        },
    );

    // Flow logs: the key and the role are eventually consistent; the create calls retry.
    let group = s.add(
        "flow-logs-group",
        LogGroup {
            suffix: "vpc-flow-logs".into(),
            retention_days: net.flow_logs_retention_days,
            key: key.clone(),
        },
    );
    let role = s.add(
        "flow-logs-role",
        IamRole {
            suffix: "vpc-flow-logs".into(),
            service: "vpc-flow-logs.amazonaws.com".into(),
            description: "Delivers the VPC's flow logs to its log group (tap-provision)".into(),
            policy: Template(json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogGroups", "logs:DescribeLogStreams"],
                    "Resource": [
                        format!("arn:${{partition}}:logs:${{region}}:${{account}}:log-group:/{}/${{env}}/vpc-flow-logs", env.project),
                        format!("arn:${{partition}}:logs:${{region}}:${{account}}:log-group:/{}/${{env}}/vpc-flow-logs:*", env.project)
                    ]
                }]
            })),
            path: None,
            source_arn: None,
            managed: Vec::new(),
        },
    );
    s.add(
        "flow-logs",
        FlowLog {
            vpc: vpc.clone(),
            log_group: group,
            role,
        },
    );

    // Security groups: least privilege (PLATFORM.md, network row).
    let tcp = |port: u16, peer: Peer, description: &str| Rule {
        protocol: "tcp".into(),
        port,
        peer,
        description: description.into(),
    };
    let anywhere = || Peer::Cidr("0.0.0.0/0".into());
    let alb_security_group = s.add(
        "sg-alb",
        SecurityGroup {
            vpc: vpc.clone(),
            name: "alb".into(),
            description: "ALB: HTTPS and HTTP from anywhere".into(),
            ingress: vec![
                tcp(443, anywhere(), "HTTPS from anywhere"),
                tcp(80, anywhere(), "HTTP from anywhere, redirected to HTTPS"),
            ],
            egress: None,
        },
    );
    let ecs_security_group = s.add(
        "sg-ecs",
        SecurityGroup {
            vpc: vpc.clone(),
            name: "ecs".into(),
            description: "ECS tasks: container ports from the ALB only".into(),
            ingress: vec![
                tcp(
                    80,
                    Peer::Group(alb_security_group.clone()),
                    "frontend from the ALB",
                ),
                tcp(
                    3000,
                    Peer::Group(alb_security_group.clone()),
                    "backend from the ALB",
                ),
            ],
            egress: None,
        },
    );
    let db = s.add(
        "sg-db",
        SecurityGroup {
            vpc: vpc.clone(),
            name: "db".into(),
            description: "Aurora: PostgreSQL from the ECS tasks only, no egress".into(),
            ingress: vec![tcp(
                5432,
                Peer::Group(ecs_security_group.clone()),
                "PostgreSQL from ECS tasks",
            )],
            egress: Some(vec![]),
        },
    );
    Network {
        key,
        vpc,
        igw,
        public_subnets: public,
        private_subnets: private,
        isolated_subnets: isolated,
        alb_security_group,
        ecs_security_group,
        db_security_group: db,
    }
}
