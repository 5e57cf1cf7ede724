//! One AWS configuration and one client per service, plus the helpers every resource uses:
//! error conversion, tags, idempotency tokens, retries and waits.

pub mod bulk_tags;
pub mod calls;
pub mod ec2;
pub mod ec2_buckets;
pub mod errors;
pub mod gathering;
pub mod pace;
pub mod pacer;
pub mod retry;
pub mod shared;
pub mod tags;
pub mod wait;

use std::ops::Deref;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::stalled_stream_protection::StalledStreamProtectionConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{AppName, BehaviorVersion, Region, SdkConfig};
use aws_smithy_runtime::client::retries::{RetryPartition, TokenBucket};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

pub use calls::ApiCalls;
pub use shared::Shared;

/// Where the clients point; resolved once from the environment file and the process
/// environment (see `cli::settings`).
#[derive(Debug, Clone)]
pub struct Target {
    pub region: String,
    /// An endpoint from the environment file, used only when `AWS_ENDPOINT_URL` is unset
    /// (aws-config reads that variable itself, with the service-specific ones).
    pub file_endpoint: Option<String>,
    /// The endpoint actually in force, for messages.
    pub effective_endpoint: Option<String>,
}

/// The one table of services: a field and its SDK crate. `Services::new` builds every
/// client from one `SdkConfig`, each counting its calls.
macro_rules! services {
    ($($field:ident: $krate:ident),* $(,)?) => {
        /// One client per service, in one region.
        #[derive(Clone, Debug)]
        pub struct Services {
            $(pub $field: $krate::Client,)*
        }

        impl Services {
            /// Each client counts its calls, and has its own pace and retry quota (see
            /// [`pace`]): a throttled service slows down alone.
            fn new(sdk: &SdkConfig, calls: &ApiCalls, path_style: bool, http: &SharedHttpClient) -> Services {
                Services {
                    $($field: $krate::Client::from_conf(
                        services!(@config $field $krate, sdk, path_style)
                            .http_client(pace::PacedClient::new(
                                http.clone(),
                                stringify!($field),
                                calls.clone(),
                            ))
                            .retry_partition(unlimited_quota(stringify!($field)))
                            .interceptor(calls.of(stringify!($field)))
                            .build(),
                    ),)*
                }
            }
        }
    };
    // An endpoint override (S3-compatible storage, an emulator) seldom serves
    // `<bucket>.<host>` names: address buckets by path there, by virtual host on AWS.
    (@config s3 $krate:ident, $sdk:expr, $path_style:expr) => {
        $krate::config::Builder::from($sdk).force_path_style($path_style)
    };
    (@config $field:ident $krate:ident, $sdk:expr, $path_style:expr) => {
        $krate::config::Builder::from($sdk)
    };
}

services! {
    acm: aws_sdk_acm,
    autoscaling: aws_sdk_applicationautoscaling,
    backup: aws_sdk_backup,
    cloudfront: aws_sdk_cloudfront,
    cloudwatch: aws_sdk_cloudwatch,
    ec2: aws_sdk_ec2,
    ecs: aws_sdk_ecs,
    elb: aws_sdk_elasticloadbalancingv2,
    iam: aws_sdk_iam,
    kms: aws_sdk_kms,
    logs: aws_sdk_cloudwatchlogs,
    rds: aws_sdk_rds,
    route53: aws_sdk_route53,
    s3: aws_sdk_s3,
    scheduler: aws_sdk_scheduler,
    secretsmanager: aws_sdk_secretsmanager,
    sns: aws_sdk_sns,
    sts: aws_sdk_sts,
    tagging: aws_sdk_resourcegroupstagging,
}

/// The environment's region's clients (what `clients.ec2` reaches), and the same services in
/// us-east-1, where CloudFront's certificates must be made.
#[derive(Clone, Debug)]
pub struct Clients {
    home: Services,
    pub us_east_1: Services,
    pub calls: ApiCalls,
}

impl Deref for Clients {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.home
    }
}

/// The region that CloudFront, its certificates and Route53 health checks live in.
pub const GLOBAL_REGION: &str = "us-east-1";
/// The tool's name in every call's user agent (`app/tap-provision`).
const APP_NAME: &str = "tap-provision";

impl Clients {
    /// Loads the standard credential chain (env, profiles, SSO, IMDS) with the region of the
    /// environment file, the SDK's standard retries (exponential backoff with jitter), and
    /// bounded timeouts.
    pub async fn load(target: &Target) -> Clients {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(target.region.clone()))
            .retry_config(
                // Ten attempts: a call meets AWS's throttling or a 5xx several times in a row
                // on a busy account (the fault tests inject 25 %), and a converging run makes
                // hundreds of calls. Standard, not adaptive: the adaptive client-side rate
                // limiter slowed a 73-node `up` with 20 % throttling from 9 s to minutes, as
                // it caps every call of the client after any throttle; the backoff of the
                // retried call alone is what helps here. At most 5 s between attempts.
                RetryConfig::standard()
                    .with_max_attempts(10)
                    .with_initial_backoff(crate::timing::scaled(Duration::from_millis(200)))
                    .with_max_backoff(crate::timing::scaled(Duration::from_secs(5))),
            )
            // A paced attempt waits for its slot in the connector, with its request body not
            // yet read: the upload's stalled-stream check would take that wait for a stalled
            // upload after its 5 s grace. Request bodies here are small; answers stay checked.
            .stalled_stream_protection(
                StalledStreamProtectionConfig::enabled()
                    .upload_enabled(false)
                    .build(),
            )
            .timeout_config(
                // An attempt includes its throttled resends and their waits for a slot of the
                // service's pace (`pace::LONGEST_CALL`); a connection that stops answering is
                // cut by the read timeout.
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .read_timeout(Duration::from_secs(60))
                    .operation_attempt_timeout(pace::LONGEST_CALL)
                    // No call, its retries included, outlasts this: a node's read or write
                    // fails rather than hangs.
                    .operation_timeout(Duration::from_secs(15 * 60))
                    .build(),
            );
        // Every call names the tool in its user agent (`app/tap-provision`): CloudTrail tells
        // its changes from changes made by hand, and the test emulator counts only these.
        if let Ok(name) = AppName::new(APP_NAME) {
            loader = loader.app_name(name);
        }
        if let Some(endpoint) = &target.file_endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let sdk = loader.load().await;
        let global = sdk.to_builder().region(Region::new(GLOBAL_REGION)).build();
        let calls = ApiCalls::default();
        let path_style = target.effective_endpoint.is_some();
        // One connection pool for every client; each wraps it with its own pace.
        let http = sdk.http_client().unwrap_or_else(https_client);
        Clients {
            home: Services::new(&sdk, &calls, path_style, &http),
            us_east_1: Services::new(&global, &calls, path_style, &http),
            calls,
        }
    }
}

/// The SDK's default HTTPS client (hyper 1 with rustls on aws-lc, proxy settings from the
/// environment), built once so every service shares its connection pool.
fn https_client() -> SharedHttpClient {
    use aws_smithy_http_client::proxy::ProxyConfig;
    use aws_smithy_http_client::{tls, Builder, ConnectorBuilder};
    Builder::new().build_with_connector_fn(|settings, components| {
        let mut conn = ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ));
        conn.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            conn.set_sleep_impl(components.sleep_impl());
        }
        conn.set_proxy_config(Some(ProxyConfig::from_env()));
        conn.build()
    })
}

/// A client's own retry quota, without limit: a throttled call is retried at the service's
/// pace (see [`pace`]) rather than failed once a shared quota runs dry; the attempts per call
/// stay bounded by the retry configuration.
fn unlimited_quota(service: &'static str) -> RetryPartition {
    RetryPartition::custom(service)
        .token_bucket(TokenBucket::unlimited())
        .build()
}

/// An idempotency token for a create call: the environment, the node, and what the call
/// depends on (`parts`: its parameters, and whatever tells this incarnation of the resource
/// from an earlier one), hashed into at most `max_len` characters (EC2 ClientToken 64, AWS
/// Backup CreatorRequestId 50). A retried or re-run create of the same resource reuses the
/// token, so AWS answers with the resource it made; a create after the resource was deleted,
/// or with other parameters, gets a new one (AWS would otherwise answer with the deleted
/// resource, or refuse the token for other parameters).
pub fn client_token(env_full: &str, node: &str, parts: &[&str], max_len: usize) -> String {
    // FNV-1a keeps the token short and stable across versions of this tool.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes.iter().copied().chain([b'/']) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    feed(env_full.as_bytes());
    feed(node.as_bytes());
    for p in parts {
        feed(p.as_bytes());
    }
    let readable: String = format!("{env_full}-{node}")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(max_len.saturating_sub(17))
        .collect();
    format!("{readable}-{h:016x}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn client_token_is_stable_and_short() {
        use super::client_token as token;
        let t = token("tap-prod", "nat-a", &["subnet-1"], 64);
        assert_eq!(t, token("tap-prod", "nat-a", &["subnet-1"], 64));
        assert_ne!(t, token("tap-prod", "nat-b", &["subnet-1"], 64));
        assert_ne!(t, token("tap-staging", "nat-a", &["subnet-1"], 64));
        assert_ne!(
            t,
            token("tap-prod", "nat-a", &["subnet-2"], 64),
            "other parameters"
        );
        assert_ne!(
            token("tap-prod", "nat-a", &["ab", "c"], 64),
            token("tap-prod", "nat-a", &["a", "bc"], 64),
            "parts are separated"
        );
        assert!(t.len() <= 64);
        assert!(t.starts_with("tap-prod-nat-a-"));
        let long = token(&"x".repeat(80), &"y".repeat(80), &[], 50);
        assert!(long.len() <= 50, "{}", long.len());
    }
}
