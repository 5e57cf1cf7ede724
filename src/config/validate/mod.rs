//! Semantic checks on a parsed file. Collects every problem instead of stopping at the first.

mod network;
mod repair;

use std::path::Path;
use std::time::Duration;

use network::validate_network;

use super::raw::{RawConfig, RawService};
use super::{Backup, Database, Dns, Edge, EnvConfig, OriginAccess, Problem, Service, Services};

/// Retention values CloudWatch Logs accepts (PutRetentionPolicy).
const LOG_RETENTION_DAYS: &[i64] = &[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// Tags that name a moving target rather than one build.
const MUTABLE_TAGS: &[&str] = &[
    "latest",
    "stable",
    "main",
    "master",
    "dev",
    "develop",
    "edge",
    "nightly",
    "prod",
    "production",
    "staging",
    "current",
    "release",
    "head",
    "test",
    "canary",
    "beta",
    "alpha",
    "lts",
    "mainline",
    "unstable",
];

struct Collector(Vec<Problem>);

impl Collector {
    fn add(&mut self, key: &str, message: impl Into<String>) {
        self.0.push(Problem {
            key: key.to_string(),
            message: message.into(),
        });
    }
}

pub fn validate(file: &Path, env: &str, raw: RawConfig) -> Result<EnvConfig, Vec<Problem>> {
    let mut p = Collector(Vec::new());

    if !is_dns_label(&raw.project) || raw.project.len() > 12 {
        p.add(
            "project",
            format!(
                "`{}` is not a valid project name: use 1-12 lowercase letters, digits or `-`",
                raw.project
            ),
        );
    }
    if !is_region(&raw.region) {
        p.add(
            "region",
            format!(
                "`{}` is not an AWS region name: expected something like `eu-west-1`",
                raw.region
            ),
        );
    }
    if let Some(endpoint) = &raw.endpoint {
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            p.add(
                "endpoint",
                format!("`{endpoint}` is not a URL: expected http://host:port or https://host"),
            );
        }
    }
    if raw.cost_center.trim().is_empty() || raw.cost_center.len() > 256 {
        p.add(
            "cost_center",
            "must be 1-256 characters (it becomes the CostCenter tag)",
        );
    }
    if !is_domain(&raw.domain) {
        p.add(
            "domain",
            format!(
                "`{}` is not a domain name: expected lowercase labels separated by dots, e.g. pay.example.com",
                raw.domain
            ),
        );
    }
    for (i, email) in raw.alert_emails.iter().enumerate() {
        if !is_email(email) {
            p.add(
                &format!("alert_emails[{i}]"),
                format!("`{email}` is not an email address: expected name@domain"),
            );
        }
    }

    let network = validate_network(&mut p, &raw);

    let window = raw.encryption.key_deletion_window_days;
    if !(7..=30).contains(&window) {
        p.add(
            "encryption.key_deletion_window_days",
            format!("{window} is out of range: KMS accepts 7 to 30 days"),
        );
    }

    // PLATFORM.md's sizes: frontend 512 CPU / 1024 MiB, backend 1024 / 2048.
    let frontend = validate_service(
        &mut p,
        "services.frontend",
        &raw.services.frontend,
        (512, 1024),
    );
    let backend = validate_service(
        &mut p,
        "services.backend",
        &raw.services.backend,
        (1024, 2048),
    );
    if let Err(e) = check_image(&raw.services.xray_image) {
        p.add("services.xray_image", e);
    }
    let edge = validate_edge(&mut p, &raw);

    let database = validate_database(&mut p, &raw);
    let backup = validate_backup(&mut p, &raw);
    let dns = validate_dns(&mut p, &raw);

    let repair = repair::validate(&mut p, &raw.repair);

    let wait = raw.timeouts.wait_seconds;
    if !(10..=7200).contains(&wait) {
        p.add(
            "timeouts.wait_seconds",
            format!("{wait} is out of range: expected 10 to 7200 seconds"),
        );
    }

    match (network, p.0.is_empty()) {
        (Some(network), true) => Ok(EnvConfig {
            file: file.to_path_buf(),
            env: env.to_string(),
            project: raw.project,
            region: raw.region,
            endpoint: raw.endpoint,
            cost_center: raw.cost_center,
            protected: raw.protected,
            domain: raw.domain,
            alert_emails: raw.alert_emails,
            network,
            encryption: super::Encryption {
                key_deletion_window_days: window as i32,
            },
            services: Services {
                frontend,
                backend,
                xray_image: raw.services.xray_image.clone(),
            },
            database,
            backup,
            dns,
            edge,
            wait_timeout: Duration::from_secs(wait as u64),
            repair,
        }),
        _ => Err(p.0),
    }
}

/// A hosted zone id as Route53 prints it (`Z0123456789ABCDEFGHIJ`): up to 32 upper-case
/// letters and digits, no dot. A domain name is lower-case with dots, so the two never mix.
fn is_zone_id(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

fn validate_dns(p: &mut Collector, raw: &RawConfig) -> Dns {
    let given = raw.dns.hosted_zone.clone();
    let (zone_id, zone_name) = match given.as_deref() {
        None => (None, raw.domain.clone()),
        Some(z) if is_zone_id(z) => (Some(z.to_string()), raw.domain.clone()),
        Some(z) => {
            let name = z.trim_end_matches('.').to_string();
            if !is_domain(&name) {
                p.add(
                    "dns.hosted_zone",
                    format!("`{z}` is neither a hosted zone id (Z0123…) nor a domain name"),
                );
            } else if raw.domain != name && !raw.domain.ends_with(&format!(".{name}")) {
                p.add(
                    "dns.hosted_zone",
                    format!(
                        "zone `{name}` cannot hold records for the domain `{}`: give the domain's zone or a parent of it",
                        raw.domain
                    ),
                );
            }
            (None, name)
        }
    };
    if raw.dns.create_zone && zone_id.is_some() {
        p.add(
            "dns.create_zone",
            "a zone given by id already exists: drop create_zone, or give the zone by name",
        );
    }
    if raw.dns.create_zone && raw.protected {
        p.add(
            "dns.create_zone",
            "a protected environment uses a zone that exists outside it: drop create_zone",
        );
    }
    Dns {
        zone_name,
        zone_id,
        create_zone: raw.dns.create_zone,
    }
}

fn validate_database(p: &mut Collector, raw: &RawConfig) -> Database {
    let d = &raw.database;
    let version_ok = d
        .engine_version
        .split_once('.')
        .is_some_and(|(major, minor)| {
            matches!(major, "16" | "17")
                && !minor.is_empty()
                && minor.chars().all(|c| c.is_ascii_digit())
        });
    if !version_ok {
        p.add(
            "database.engine_version",
            format!(
                "`{}` is not a supported Aurora PostgreSQL version here: expected 16.x or 17.x (e.g. 16.6)",
                d.engine_version
            ),
        );
    }
    let class_ok = d.instance_class.starts_with("db.")
        && d.instance_class.split('.').count() == 3
        && d.instance_class.split('.').all(|part| !part.is_empty());
    if !class_ok {
        p.add(
            "database.instance_class",
            format!(
                "`{}` is not an instance class: expected e.g. db.r6g.xlarge",
                d.instance_class
            ),
        );
    } else if crate::config::aurora::max_connections(&d.instance_class).is_none() {
        p.add(
            "database.instance_class",
            format!(
                "`{}` is not an Aurora PostgreSQL class this tool knows the memory of (the connections alarm needs its max_connections): use a db.r*, db.x2g or db.t*.medium/large class",
                d.instance_class
            ),
        );
    }
    if !(0..=15).contains(&d.readers) {
        p.add(
            "database.readers",
            format!(
                "{} is out of range: Aurora takes 0 to 15 readers",
                d.readers
            ),
        );
    }
    if !(1..=35).contains(&d.backup_retention_days) {
        p.add(
            "database.backup_retention_days",
            format!(
                "{} is out of range: expected 1 to 35 days",
                d.backup_retention_days
            ),
        );
    }
    let name_ok = |s: &str, max: usize| {
        (1..=max).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if !name_ok(&d.master_username, 16)
        || ["admin", "postgres", "rdsadmin"].contains(&d.master_username.as_str())
    {
        p.add(
            "database.master_username",
            format!("`{}` is not allowed: 1-16 letters, digits or `_`, starting with a letter, not a reserved name", d.master_username),
        );
    }
    if !name_ok(&d.database_name, 63) {
        p.add(
            "database.database_name",
            format!(
                "`{}` is not a database name: letters, digits or `_`, starting with a letter",
                d.database_name
            ),
        );
    }
    Database {
        engine_version: d.engine_version.clone(),
        instance_class: d.instance_class.clone(),
        readers: d.readers.clamp(0, 15) as usize,
        deletion_protection: d.deletion_protection.unwrap_or(raw.protected),
        backup_retention_days: d.backup_retention_days.clamp(1, 35) as i32,
        master_username: d.master_username.clone(),
        database_name: d.database_name.clone(),
    }
}

fn validate_backup(p: &mut Collector, raw: &RawConfig) -> Backup {
    let b = &raw.backup;
    if b.schedule.starts_with("rate(") {
        p.add(
            "backup.schedule",
            format!("`{}`: AWS Backup rejects rate() expressions; use cron(...), e.g. cron(0 */6 * * ? *)", b.schedule),
        );
    } else if !(b.schedule.starts_with("cron(")
        && b.schedule.ends_with(')')
        && b.schedule.split_whitespace().count() == 6)
    {
        p.add(
            "backup.schedule",
            format!("`{}` is not a cron expression: expected cron(minutes hours day month weekday year)", b.schedule),
        );
    }
    if b.start_window_minutes < 60 {
        p.add(
            "backup.start_window_minutes",
            format!(
                "{} is too short: AWS Backup needs at least 60",
                b.start_window_minutes
            ),
        );
    }
    if b.completion_window_minutes < b.start_window_minutes + 60 {
        p.add(
            "backup.completion_window_minutes",
            format!(
                "{} must be at least 60 more than start_window_minutes ({})",
                b.completion_window_minutes, b.start_window_minutes
            ),
        );
    }
    if !(1..=36500).contains(&b.retention_days) {
        p.add(
            "backup.retention_days",
            format!(
                "{} is out of range: expected 1 to 36500 days",
                b.retention_days
            ),
        );
    }
    Backup {
        schedule: b.schedule.clone(),
        start_window_minutes: b.start_window_minutes,
        completion_window_minutes: b.completion_window_minutes,
        retention_days: b.retention_days,
    }
}

fn validate_edge(p: &mut Collector, raw: &RawConfig) -> Edge {
    if !is_dns_label(&raw.cdn.subdomain) {
        p.add(
            "cdn.subdomain",
            format!(
                "`{}` is not one DNS label: expected lowercase letters, digits or `-`, e.g. cdn",
                raw.cdn.subdomain
            ),
        );
    }
    let origin_access = match raw.cdn.origin_access.as_str() {
        "oac" => OriginAccess::Control,
        "oai" => OriginAccess::Identity,
        other => {
            p.add(
                "cdn.origin_access",
                format!("`{other}` is not a way CloudFront reads a bucket: expected \"oac\" (default) or \"oai\""),
            );
            OriginAccess::Control
        }
    };
    Edge {
        alb_deletion_protection: raw
            .load_balancer
            .deletion_protection
            .unwrap_or(raw.protected),
        cdn_subdomain: raw.cdn.subdomain.clone(),
        origin_access,
    }
}

/// Fargate's CPU units and the memory sizes (MiB) each allows.
fn fargate_memory(cpu: i64) -> Option<Vec<i64>> {
    let gib = |from: i64, to: i64, step: i64| {
        (from..=to)
            .step_by(step as usize)
            .map(|g| g * 1024)
            .collect::<Vec<_>>()
    };
    Some(match cpu {
        256 => vec![512, 1024, 2048],
        512 => gib(1, 4, 1),
        1024 => gib(2, 8, 1),
        2048 => gib(4, 16, 1),
        4096 => gib(8, 30, 1),
        _ => return None,
    })
}

fn validate_service(
    p: &mut Collector,
    key: &str,
    raw: &RawService,
    (default_cpu, default_memory): (i64, i64),
) -> Service {
    let cpu = raw.cpu.unwrap_or(default_cpu);
    let memory = raw.memory.unwrap_or(default_memory);
    match fargate_memory(cpu) {
        None => p.add(
            &format!("{key}.cpu"),
            format!("{cpu} is not a Fargate CPU size: expected 256, 512, 1024, 2048 or 4096"),
        ),
        Some(sizes) if !sizes.contains(&memory) => p.add(
            &format!("{key}.memory"),
            format!(
                "{memory} MiB does not go with {cpu} CPU units on Fargate: expected one of {}",
                sizes
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        Some(_) => {}
    }
    let desired = raw.desired_tasks.unwrap_or_else(|| {
        3.clamp(
            raw.min_tasks.min(raw.max_tasks),
            raw.max_tasks.max(raw.min_tasks),
        )
    });
    if raw.min_tasks <= raw.max_tasks && !(raw.min_tasks..=raw.max_tasks).contains(&desired) {
        p.add(
            &format!("{key}.desired_tasks"),
            format!(
                "{desired} is outside min_tasks..max_tasks ({}..{})",
                raw.min_tasks, raw.max_tasks
            ),
        );
    }
    if let Err(e) = check_image(&raw.image) {
        p.add(&format!("{key}.image"), e);
    }
    if raw.min_tasks < 1 {
        p.add(
            &format!("{key}.min_tasks"),
            format!("{} must be at least 1", raw.min_tasks),
        );
    }
    if raw.max_tasks > 1000 {
        p.add(
            &format!("{key}.max_tasks"),
            format!("{} must be at most 1000", raw.max_tasks),
        );
    }
    if raw.min_tasks > raw.max_tasks {
        p.add(
            &format!("{key}.min_tasks"),
            format!(
                "min_tasks ({}) is greater than max_tasks ({}): expected min_tasks <= max_tasks",
                raw.min_tasks, raw.max_tasks
            ),
        );
    }
    let narrow = |v: i64| v.clamp(0, u32::MAX.into()) as u32;
    Service {
        image: raw.image.clone(),
        min_tasks: narrow(raw.min_tasks),
        max_tasks: narrow(raw.max_tasks),
        desired_tasks: narrow(desired),
        cpu: narrow(cpu),
        memory: narrow(memory),
    }
}

/// Accepts `repo@sha256:<64 hex>` and `repo:<version>` where the version is semver-like
/// (`1.2.3`, `v1.2.3-alpine`) or a commit id (7-40 hex digits). Everything else names a tag
/// that can move under a running service.
pub fn check_image(image: &str) -> Result<(), String> {
    if image.trim().is_empty() || image.chars().any(char::is_whitespace) {
        return Err(format!("`{image}` is not an image reference"));
    }
    if let Some((_, digest)) = image.split_once('@') {
        let hex = digest.strip_prefix("sha256:").unwrap_or("");
        return if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
            Ok(())
        } else {
            Err(format!(
                "`{image}` has a malformed digest: expected @sha256: followed by 64 hex digits"
            ))
        };
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    let Some((_, tag)) = last.split_once(':') else {
        return Err(format!(
            "`{image}` has no tag, which means `latest`: pin a version (e.g. `{image}:1.4.2`) or a digest (`@sha256:...`)"
        ));
    };
    if MUTABLE_TAGS.contains(&tag.to_ascii_lowercase().as_str()) {
        return Err(format!(
            "`{image}` uses the mutable tag `{tag}`: pin a version (e.g. `:1.4.2`) or a digest (`@sha256:...`)"
        ));
    }
    if is_semver_like(tag) || is_commit_id(tag) {
        Ok(())
    } else {
        Err(format!(
            "`{image}` has the tag `{tag}`, which does not look like a version: use MAJOR.MINOR.PATCH (e.g. `:1.4.2`), a commit id, or a digest (`@sha256:...`)"
        ))
    }
}

fn is_semver_like(tag: &str) -> bool {
    let t = tag.strip_prefix('v').unwrap_or(tag);
    let end = t.find(['-', '+']).unwrap_or(t.len());
    let (core, rest) = t.split_at(end);
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        && rest
            .chars()
            .skip(1)
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        && (rest.is_empty() || rest.len() > 1)
}

fn is_commit_id(tag: &str) -> bool {
    (7..=40).contains(&tag.len()) && tag.chars().all(|c| c.is_ascii_hexdigit())
}

pub(super) fn is_dns_label(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_domain(s: &str) -> bool {
    let labels: Vec<&str> = s.split('.').collect();
    s.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| is_dns_label(l))
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_lowercase()))
}

fn is_email(s: &str) -> bool {
    match s.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && local.len() <= 64
                && local
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._%+-".contains(c))
                && is_domain(&domain.to_ascii_lowercase())
        }
        None => false,
    }
}

pub(super) fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|p| p.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images() {
        for ok in [
            "nginx:1.27.3",
            "nginx:1.27.3-alpine",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/tap/backend:v2.4.0",
            "registry:5000/app:1.0.0",
            "app:3f2c1ab",
            "nginx@sha256:0000000000000000000000000000000000000000000000000000000000000000",
        ] {
            assert_eq!(check_image(ok), Ok(()), "{ok}");
        }
        for (bad, says) in [
            ("nginx:latest", "mutable tag `latest`"),
            ("nginx:LATEST", "mutable tag"),
            ("nginx", "no tag"),
            ("registry:5000/app", "no tag"),
            ("nginx:stable", "mutable tag"),
            ("nginx:1.27", "does not look like a version"),
            ("nginx:mytag", "does not look like a version"),
            ("nginx@sha256:abc", "malformed digest"),
            ("", "not an image"),
        ] {
            let e = check_image(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn names() {
        assert!(is_domain("pay.example.com"));
        assert!(!is_domain("example"));
        assert!(!is_domain("-a.example.com"));
        assert!(!is_domain("Pay.example.com"));
        assert!(is_email("oncall+tap@example.com"));
        assert!(!is_email("oncall@"));
        assert!(!is_email("oncall example.com"));
        assert!(is_region("eu-west-1"));
        assert!(is_region("us-gov-west-1"));
        assert!(!is_region("europe"));
    }
}
