//! The file's shape as serde reads it: unknown keys rejected, defaults applied.

use serde::Deserialize;

use super::Problem;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub project: String,
    pub region: String,
    #[serde(default)]
    pub endpoint: Option<String>,
    pub cost_center: String,
    #[serde(default)]
    pub protected: bool,
    pub domain: String,
    #[serde(default)]
    pub alert_emails: Vec<String>,
    pub network: RawNetwork,
    #[serde(default)]
    pub encryption: RawEncryption,
    pub services: RawServices,
    #[serde(default)]
    pub database: RawDatabase,
    #[serde(default)]
    pub backup: RawBackup,
    #[serde(default)]
    pub dns: RawDns,
    #[serde(default)]
    pub load_balancer: RawLoadBalancer,
    #[serde(default)]
    pub cdn: RawCdn,
    #[serde(default)]
    pub timeouts: RawTimeouts,
    #[serde(default)]
    pub repair: RawRepair,
}

/// `[repair]`: the scheduled drift repair that runs inside AWS.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRepair {
    /// `off`, `rate(...)` or `cron(...)` (EventBridge Scheduler's expressions).
    pub schedule: String,
    /// The IANA time zone a `cron()` is read in.
    pub timezone: String,
    /// `repair` (put drift back) or `detect` (report only).
    pub mode: String,
    /// The tool's own container image, versioned.
    pub image: Option<String>,
    /// `node.field` the operator accepts drifting.
    pub ignore: Vec<String>,
    /// How often a successful run must happen (`2 hours`); default twice a rate's interval.
    pub expect_every: Option<String>,
}

impl Default for RawRepair {
    fn default() -> Self {
        RawRepair {
            schedule: "off".into(),
            timezone: "UTC".into(),
            mode: "repair".into(),
            image: None,
            ignore: Vec::new(),
            expect_every: None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDns {
    /// The public hosted zone: its id (`Z0123…`) or its name; default: the domain.
    #[serde(default)]
    pub hosted_zone: Option<String>,
    /// Let the tool create the zone (meant for local environments).
    #[serde(default)]
    pub create_zone: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawDatabase {
    pub engine_version: String,
    pub instance_class: String,
    pub readers: i64,
    pub deletion_protection: Option<bool>,
    pub backup_retention_days: i64,
    pub master_username: String,
    pub database_name: String,
}

impl Default for RawDatabase {
    fn default() -> Self {
        RawDatabase {
            engine_version: "16.6".into(),
            instance_class: "db.r6g.xlarge".into(),
            readers: 1,
            deletion_protection: None,
            backup_retention_days: 30,
            master_username: "tap_admin".into(),
            database_name: "tap".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawBackup {
    pub schedule: String,
    pub start_window_minutes: i64,
    pub completion_window_minutes: i64,
    pub retention_days: i64,
}

impl Default for RawBackup {
    fn default() -> Self {
        RawBackup {
            schedule: "cron(0 */6 * * ? *)".into(),
            start_window_minutes: 60,
            completion_window_minutes: 120,
            retention_days: 7,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNetwork {
    #[serde(default = "default_vpc_cidr")]
    pub vpc_cidr: String,
    #[serde(default = "default_az_count")]
    pub availability_zones: i64,
    /// Explicit AZ names; default: the region's first letters (`<region>a`, `<region>b`, ...).
    #[serde(default)]
    pub zone_names: Option<Vec<String>>,
    #[serde(default)]
    pub nat_gateways: Option<i64>,
    #[serde(default)]
    pub public_subnets: Option<Vec<String>>,
    #[serde(default)]
    pub private_subnets: Option<Vec<String>>,
    #[serde(default)]
    pub isolated_subnets: Option<Vec<String>>,
    #[serde(default = "default_retention")]
    pub flow_logs_retention_days: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEncryption {
    #[serde(default = "default_deletion_window")]
    pub key_deletion_window_days: i64,
}

impl Default for RawEncryption {
    fn default() -> Self {
        RawEncryption {
            key_deletion_window_days: default_deletion_window(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServices {
    pub frontend: RawService,
    pub backend: RawService,
    /// The X-Ray daemon sidecar of the backend: a versioned image like the services'.
    #[serde(default = "default_xray_image")]
    pub xray_image: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    pub image: String,
    #[serde(default = "default_min_tasks")]
    pub min_tasks: i64,
    #[serde(default = "default_max_tasks")]
    pub max_tasks: i64,
    /// Tasks at first; auto scaling owns the count afterwards. Default: 3 within min..max.
    #[serde(default)]
    pub desired_tasks: Option<i64>,
    /// Fargate CPU units and memory (MiB); defaults per service (PLATFORM.md).
    #[serde(default)]
    pub cpu: Option<i64>,
    #[serde(default)]
    pub memory: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLoadBalancer {
    /// Default: on when the environment is protected.
    #[serde(default)]
    pub deletion_protection: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCdn {
    /// The distribution's alias is `<subdomain>.<domain>`.
    pub subdomain: String,
    /// How CloudFront reads the bucket: `oac` (origin access control) or `oai` (identity).
    pub origin_access: String,
}

impl Default for RawCdn {
    fn default() -> Self {
        RawCdn {
            subdomain: "cdn".into(),
            origin_access: "oac".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    #[serde(default = "default_wait")]
    pub wait_seconds: i64,
}

impl Default for RawTimeouts {
    fn default() -> Self {
        RawTimeouts {
            wait_seconds: default_wait(),
        }
    }
}

fn default_vpc_cidr() -> String {
    "10.0.0.0/16".into()
}
fn default_az_count() -> i64 {
    3
}
fn default_retention() -> i64 {
    30
}
fn default_deletion_window() -> i64 {
    30
}
fn default_xray_image() -> String {
    super::DEFAULT_XRAY_IMAGE.into()
}
fn default_min_tasks() -> i64 {
    3
}
fn default_max_tasks() -> i64 {
    20
}
fn default_wait() -> i64 {
    1200
}

/// Turns a TOML or shape error into a problem naming the key where toml says which.
pub fn problem_from_toml(e: &toml::de::Error) -> Problem {
    // toml's Display carries the line, a caret under the offending text and the message.
    let message = e.message().to_string();
    let key = message
        .split('`')
        .nth(1)
        .filter(|_| message.starts_with("unknown field") || message.starts_with("missing field"))
        .unwrap_or("")
        .to_string();
    let expected = if message.starts_with("unknown field") {
        "; remove it or check its spelling (see the config reference in README.md)"
    } else {
        ""
    };
    Problem {
        key,
        message: format!("{}{expected}", e.to_string().trim_end()),
    }
}
