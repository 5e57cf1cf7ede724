//! Environment configuration: `config/<env>.toml` -> a validated [`EnvConfig`].
//!
//! Pure: no AWS SDK, no tokio. Every problem in a file is reported at once, each naming the
//! file, the key and what is expected, before the first AWS call is made.

pub mod aurora;
mod cidr;
mod raw;
pub mod schedule;
mod validate;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use cidr::Ipv4Cidr;

/// One problem found in an environment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key, e.g. `services.backend.image`; empty for whole-file problems.
    pub key: String,
    /// What is wrong and what is expected.
    pub message: String,
}

/// Every problem found in one environment file.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError {
    pub file: PathBuf,
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "{}: {} problem{} in the environment file",
            self.file.display(),
            n,
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            if p.key.is_empty() {
                write!(f, "\n  - {}", p.message)?;
            } else {
                write!(f, "\n  - {}: {}", p.key, p.message)?;
            }
        }
        Ok(())
    }
}

/// A validated environment: everything the step graph is built from.
#[derive(Debug, Clone)]
pub struct EnvConfig {
    /// The file this came from, for messages.
    pub file: PathBuf,
    /// Environment name, e.g. `prod` (the file's stem).
    pub env: String,
    /// Project name, e.g. `tap`.
    pub project: String,
    pub region: String,
    /// Endpoint override from the file (an emulator); `AWS_ENDPOINT_URL` wins over it.
    pub endpoint: Option<String>,
    pub cost_center: String,
    /// A protected environment asks before `up` on a terminal and needs NAT per AZ.
    pub protected: bool,
    pub domain: String,
    pub alert_emails: Vec<String>,
    pub network: Network,
    pub encryption: Encryption,
    pub services: Services,
    pub database: Database,
    pub backup: Backup,
    pub dns: Dns,
    pub edge: Edge,
    /// Upper bound for any single readiness wait.
    pub wait_timeout: Duration,
    pub repair: Repair,
}

/// `[repair]`: drift repair on a schedule, inside AWS; also what every `drift` and `repair`
/// leaves alone (`ignore`). Stored in the applied record, so the scheduled run needs no file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Repair {
    /// The expression (`rate(1 hour)`, `cron(...)`); `None`: no schedule.
    pub schedule: Option<String>,
    /// The IANA time zone a `cron()` is read in.
    pub timezone: String,
    pub mode: RepairMode,
    /// The tool's container image (required with a schedule).
    pub image: Option<String>,
    /// `node.field` entries accepted drifting: never reported as drift nor put back.
    pub ignore: Vec<String>,
    /// How long without a successful run before the dead man's switch alarms.
    pub expect_every: Option<Duration>,
}

impl Default for Repair {
    fn default() -> Self {
        Repair {
            schedule: None,
            timezone: "UTC".into(),
            mode: RepairMode::Repair,
            image: None,
            ignore: Vec::new(),
            expect_every: None,
        }
    }
}

/// What a scheduled run does with drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RepairMode {
    /// Puts it back (`repair`).
    Repair,
    /// Reports it only (`drift`): no write.
    Detect,
}

impl RepairMode {
    /// The verb a scheduled run runs.
    pub fn verb(self) -> &'static str {
        match self {
            RepairMode::Repair => "repair",
            RepairMode::Detect => "drift",
        }
    }
}

impl EnvConfig {
    /// `<project>-<env>`, the environment's identity on every resource.
    pub fn full_name(&self) -> String {
        format!("{}-{}", self.project, self.env)
    }

    /// The KMS alias of the environment's customer-managed key.
    pub fn kms_alias(&self) -> String {
        format!("alias/{}", self.full_name())
    }

    /// The CDN's name: `cdn.<domain>`.
    pub fn cdn_domain(&self) -> String {
        format!("{}.{}", self.edge.cdn_subdomain, self.domain)
    }
}

#[derive(Debug, Clone)]
pub struct Network {
    pub vpc_cidr: Ipv4Cidr,
    pub zones: Vec<Zone>,
    /// The file names the zones (`network.zone_names`). Otherwise their names are
    /// `<region>a`, `b`, ... until a command that talks to AWS looks them up
    /// ([`crate::session::zones`]); `validate` and `graph` say so.
    pub zones_named: bool,
    /// 1, or one per zone.
    pub nat_gateways: usize,
    pub flow_logs_retention_days: i32,
}

impl Network {
    /// The zone whose NAT gateway serves `zone_index`'s private subnet.
    pub fn nat_zone_for(&self, zone_index: usize) -> usize {
        if self.nat_gateways >= self.zones.len() {
            zone_index
        } else {
            0
        }
    }
}

/// One availability zone and the three subnets the environment has in it.
#[derive(Debug, Clone)]
pub struct Zone {
    /// AZ name, e.g. `eu-west-1a` (looked up when the file names none: [`Network::zones_named`]).
    pub name: String,
    /// Position letter used in node ids (`a`, `b`, ...), independent of the AZ's own letter.
    pub suffix: char,
    pub public: Ipv4Cidr,
    pub private: Ipv4Cidr,
    pub isolated: Ipv4Cidr,
}

/// Aurora PostgreSQL.
#[derive(Debug, Clone)]
pub struct Database {
    pub engine_version: String,
    pub instance_class: String,
    /// Reader instances beside the writer, spread over the zones.
    pub readers: usize,
    /// Default: on when the environment is protected.
    pub deletion_protection: bool,
    pub backup_retention_days: i32,
    pub master_username: String,
    pub database_name: String,
}

/// Where the platform's DNS records live.
#[derive(Debug, Clone)]
pub struct Dns {
    /// The zone's domain: the platform's domain or a parent of it.
    pub zone_name: String,
    /// The zone's id, when the file gives one.
    pub zone_id: Option<String>,
    /// True: the tool creates and owns the zone; false: it must exist already.
    pub create_zone: bool,
}

/// AWS Backup of the cluster.
#[derive(Debug, Clone)]
pub struct Backup {
    /// A `cron(...)` expression (AWS Backup rejects `rate()`).
    pub schedule: String,
    pub start_window_minutes: i64,
    pub completion_window_minutes: i64,
    pub retention_days: i64,
}

#[derive(Debug, Clone)]
pub struct Encryption {
    /// Waiting period when `down --destroy-data` schedules the key's deletion (7..=30).
    pub key_deletion_window_days: i32,
}

#[derive(Debug, Clone)]
pub struct Services {
    pub frontend: Service,
    pub backend: Service,
    /// The backend's X-Ray daemon sidecar.
    pub xray_image: String,
}

/// AWS's X-Ray daemon on ECR Public, pinned.
pub const DEFAULT_XRAY_IMAGE: &str = "public.ecr.aws/xray/aws-xray-daemon:3.3.13";

#[derive(Debug, Clone)]
pub struct Service {
    pub image: String,
    pub min_tasks: u32,
    pub max_tasks: u32,
    /// Tasks when the service is created; auto scaling owns the count afterwards.
    pub desired_tasks: u32,
    /// Fargate CPU units (256, 512, 1024, 2048, 4096).
    pub cpu: u32,
    /// Fargate memory in MiB, a size that CPU allows.
    pub memory: u32,
}

/// How CloudFront reads the static bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginAccess {
    /// Origin access control: AWS's current way, reads SSE-KMS objects too.
    Control,
    /// Origin access identity: the reference design's way.
    Identity,
}

/// The load balancer and the CDN in front of the services and the static assets.
#[derive(Debug, Clone)]
pub struct Edge {
    pub alb_deletion_protection: bool,
    /// `<cdn_subdomain>.<domain>` is the distribution's alias.
    pub cdn_subdomain: String,
    pub origin_access: OriginAccess,
}

/// Reads and validates `<dir>/<env>.toml`.
pub fn load(dir: &Path, env: &str) -> Result<EnvConfig, ConfigError> {
    let file = dir.join(format!("{env}.toml"));
    let fail = |message: String| ConfigError {
        file: file.clone(),
        problems: vec![Problem {
            key: String::new(),
            message,
        }],
    };
    if !valid_env_name(env) {
        return Err(fail(format!(
            "environment name `{env}` is not valid: use 1-20 lowercase letters, digits or `-`"
        )));
    }
    let text = std::fs::read_to_string(&file).map_err(|e| {
        let hint = match std::fs::read_dir(dir) {
            Ok(entries) => {
                let mut names: Vec<String> = entries
                    .filter_map(|e| e.ok())
                    .filter_map(|e| {
                        let p = e.path();
                        (p.extension()? == "toml")
                            .then(|| p.file_stem()?.to_str().map(str::to_owned))
                            .flatten()
                    })
                    .collect();
                names.sort();
                format!("; environments in {}: {}", dir.display(), names.join(", "))
            }
            Err(_) => "; pass --config-dir to say where the environment files are".to_string(),
        };
        fail(format!("cannot read the file: {e}{hint}"))
    })?;
    parse(&file, env, &text)
}

/// Parses and validates the text of an environment file (pure; used by `load` and tests).
pub fn parse(file: &Path, env: &str, text: &str) -> Result<EnvConfig, ConfigError> {
    let raw: raw::RawConfig = toml::from_str(text).map_err(|e| ConfigError {
        file: file.to_path_buf(),
        problems: vec![raw::problem_from_toml(&e)],
    })?;
    validate::validate(file, env, raw).map_err(|problems| ConfigError {
        file: file.to_path_buf(),
        problems,
    })
}

/// A project name as `project` takes it: 1-12 lowercase letters, digits or `-`.
pub fn valid_project(project: &str) -> bool {
    validate::is_dns_label(project) && project.len() <= 12
}

/// An AWS region name (`eu-west-1`).
pub fn valid_region(region: &str) -> bool {
    validate::is_region(region)
}

/// An environment name as `--env` takes it.
pub fn valid_env_name(env: &str) -> bool {
    (1..=20).contains(&env.len())
        && env
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !env.starts_with('-')
        && !env.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROD: &str = include_str!("../../config/prod.toml");

    fn problems(text: &str) -> Vec<Problem> {
        parse(Path::new("config/prod.toml"), "prod", text)
            .unwrap_err()
            .problems
    }

    fn keys(text: &str) -> Vec<String> {
        problems(text).into_iter().map(|p| p.key).collect()
    }

    #[test]
    fn shipped_prod_derives_the_layout() {
        let env = parse(Path::new("config/prod.toml"), "prod", PROD).unwrap();
        assert_eq!(env.full_name(), "tap-prod");
        assert_eq!(env.kms_alias(), "alias/tap-prod");
        let zones: Vec<String> = env
            .network
            .zones
            .iter()
            .map(|z| format!("{} {} {} {}", z.name, z.public, z.private, z.isolated))
            .collect();
        assert_eq!(
            zones,
            vec![
                "eu-west-1a 10.0.0.0/24 10.0.6.0/24 10.0.12.0/26",
                "eu-west-1b 10.0.1.0/24 10.0.7.0/24 10.0.12.64/26",
                "eu-west-1c 10.0.2.0/24 10.0.8.0/24 10.0.12.128/26",
            ]
        );
        assert_eq!(env.network.nat_zone_for(2), 2);
    }

    #[test]
    fn rules_that_span_keys() {
        // A protected environment needs a NAT per zone.
        assert_eq!(
            keys(&PROD.replace("nat_gateways = 3", "nat_gateways = 1")),
            vec!["network.nat_gateways"]
        );
        // 2 NATs for 3 zones is neither layout.
        assert_eq!(
            keys(&PROD.replace("nat_gateways = 3", "nat_gateways = 2")),
            vec!["network.nat_gateways"]
        );
        // The derived layout needs a /20.
        assert!(keys(&PROD.replace("10.0.0.0/16", "10.0.0.0/22"))
            .contains(&"network.private_subnets".to_string()));
        // Explicit blocks must not overlap and must sit inside the VPC.
        let text = PROD.replace(
            "flow_logs_retention_days = 30",
            "flow_logs_retention_days = 30\npublic_subnets = [\"10.0.0.0/24\", \"10.0.0.128/25\", \"10.9.0.0/24\"]",
        );
        let p = problems(&text);
        assert!(
            p.iter()
                .any(|p| p.key == "network.public_subnets[1]" && p.message.contains("overlaps")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|p| p.key == "network.public_subnets[2]" && p.message.contains("not inside")),
            "{p:?}"
        );
        // Retention must be one CloudWatch accepts; the key window 7..=30.
        let p = keys(
            &PROD
                .replace(
                    "flow_logs_retention_days = 30",
                    "flow_logs_retention_days = 31",
                )
                .replace(
                    "key_deletion_window_days = 30",
                    "key_deletion_window_days = 3",
                ),
        );
        assert_eq!(
            p,
            vec![
                "network.flow_logs_retention_days",
                "encryption.key_deletion_window_days"
            ]
        );
    }

    #[test]
    fn database_and_backup_rules() {
        let env = parse(Path::new("config/prod.toml"), "prod", PROD).unwrap();
        assert!(env.database.deletion_protection);
        assert_eq!(env.database.readers, 1);
        assert_eq!(env.backup.schedule, "cron(0 */6 * * ? *)");
        // Deletion protection follows `protected` unless set.
        let staging =
            include_str!("../../config/staging.toml").replace("deletion_protection = false\n", "");
        let env = parse(Path::new("config/staging.toml"), "staging", &staging).unwrap();
        assert!(!env.database.deletion_protection);

        let p = problems(
            &PROD
                .replace("engine_version = \"16.6\"", "engine_version = \"15.3\"")
                .replace(
                    "schedule = \"cron(0 */6 * * ? *)\"",
                    "schedule = \"rate(6 hours)\"",
                )
                .replace(
                    "completion_window_minutes = 120",
                    "completion_window_minutes = 90",
                ),
        );
        let found: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            found,
            vec![
                "database.engine_version",
                "backup.schedule",
                "backup.completion_window_minutes"
            ]
        );
        assert!(p[1].message.contains("rejects rate()"), "{}", p[1].message);
        assert_eq!(
            keys(&PROD.replace("readers = 1", "readers = 16")),
            vec!["database.readers"]
        );
        assert_eq!(
            keys(&PROD.replace("[database]", "[database]\nmaster_username = \"postgres\"")),
            vec!["database.master_username"]
        );
    }

    #[test]
    fn the_hosted_zone_is_the_domain_a_parent_or_an_id() {
        let env = parse(Path::new("config/prod.toml"), "prod", PROD).unwrap();
        assert_eq!(env.dns.zone_name, "pay.example.com", "default: the domain");
        assert!(env.dns.zone_id.is_none() && !env.dns.create_zone);
        let with = |dns: &str| format!("{PROD}\n[dns]\n{dns}\n");
        let env = parse(
            Path::new("p.toml"),
            "prod",
            &with("hosted_zone = \"example.com.\""),
        )
        .unwrap();
        assert_eq!(
            env.dns.zone_name, "example.com",
            "a parent, trailing dot dropped"
        );
        let env = parse(
            Path::new("p.toml"),
            "prod",
            &with("hosted_zone = \"Z0123ABC\""),
        )
        .unwrap();
        assert_eq!(env.dns.zone_id.as_deref(), Some("Z0123ABC"));
        assert_eq!(
            keys(&with("hosted_zone = \"other.org\"")),
            vec!["dns.hosted_zone"],
            "a zone that cannot hold the domain"
        );
        assert_eq!(
            keys(&with("hosted_zone = \"not a zone\"")),
            vec!["dns.hosted_zone"]
        );
        assert_eq!(
            keys(&with("create_zone = true")),
            vec!["dns.create_zone"],
            "prod is protected: its zone exists outside it"
        );
        assert_eq!(
            keys(&with("zone = \"x\"")),
            vec!["zone"],
            "unknown keys are errors"
        );
    }

    #[test]
    fn shape_errors_name_the_field() {
        let p = problems(&PROD.replace("cost_center = \"payments-platform\"\n", ""));
        assert_eq!(p[0].key, "cost_center");
        assert!(p[0].message.contains("missing field"), "{}", p[0].message);
        let e = ConfigError {
            file: "config/prod.toml".into(),
            problems: p,
        };
        assert!(e
            .to_string()
            .starts_with("config/prod.toml: 1 problem in the environment file"));
    }

    #[test]
    fn env_names_are_checked_before_reading() {
        let e = load(Path::new("config"), "../etc/passwd").unwrap_err();
        assert!(e.problems[0].message.contains("not valid"));
        let e = load(Path::new("config"), "nope").unwrap_err();
        assert!(
            e.problems[0]
                .message
                .contains("environments in config: local, prod, staging"),
            "{}",
            e.problems[0].message
        );
    }
}
