//! The edge: the load balancer with its target groups, listeners and rules, and the
//! application's name in DNS.

use super::network::Network;
use super::platform::Platform;
use super::Stack;
use crate::config::EnvConfig;
use crate::model::Ref;
use crate::resources::dns_record::{AliasKind, AliasRecord};
use crate::resources::listener::{DefaultAction, Listener, ListenerRule};
use crate::resources::load_balancer::LoadBalancer;
use crate::resources::target_group::TargetGroup;

pub const LOAD_BALANCER: &str = "alb";

/// What the services read of the edge: their target groups and the rules that attach them.
pub struct Edge {
    pub frontend_target_group: Ref,
    pub backend_target_group: Ref,
    pub frontend_rule: Ref,
    pub backend_rule: Ref,
}

pub fn build(s: &mut Stack<'_>, env: &EnvConfig, net: &Network, platform: &Platform) -> Edge {
    // PLATFORM.md: an internet-facing load balancer needs the attached gateway (its
    // identifiers mean attached); listeners and rules need only its ARN while it provisions.
    let lb = s.add(
        LOAD_BALANCER,
        LoadBalancer {
            subnets: net.public_subnets.clone(),
            security_group: net.alb_security_group.clone(),
            igw: net.igw.clone(),
            deletion_protection: env.edge.alb_deletion_protection,
        },
    );
    let target_group = |service: &str, port, health: &str| TargetGroup {
        service: service.into(),
        port,
        health_path: health.into(),
        vpc: net.vpc.clone(),
    };
    let frontend_tg = s.add("tg-frontend", target_group("frontend", 80, "/"));
    let backend_tg = s.add("tg-backend", target_group("backend", 3000, "/health"));
    s.add(
        "listener-http",
        Listener {
            load_balancer: lb.clone(),
            port: 80,
            certificate: None,
            default: DefaultAction::RedirectToHttps,
        },
    );
    // PLATFORM.md: the HTTPS listener needs its certificate ISSUED (readiness).
    let https = s.add(
        "listener-https",
        Listener {
            load_balancer: lb.clone(),
            port: 443,
            certificate: Some(platform.certificate.clone()),
            default: DefaultAction::NotFound,
        },
    );
    let rule = |priority, path: &str, tg: &Ref| ListenerRule {
        listener: https.clone(),
        listener_port: 443,
        priority,
        paths: vec![path.into()],
        target_group: tg.clone(),
    };
    let backend_rule = s.add("rule-api", rule(10, "/api/*", &backend_tg));
    let frontend_rule = s.add("rule-default", rule(20, "/*", &frontend_tg));
    s.add(
        "dns-app",
        AliasRecord {
            zone: platform.zone.clone(),
            name: env.domain.clone(),
            target: lb,
            kind: AliasKind::LoadBalancer,
        },
    );
    Edge {
        frontend_target_group: frontend_tg,
        backend_target_group: backend_tg,
        frontend_rule,
        backend_rule,
    }
}
