//! One AWS configuration and one client per service, plus the helpers every resource uses:
//! error conversion, tags, idempotency tokens, retries and waits.

pub mod calls;
pub mod errors;
pub mod inventory;
pub mod retry;
pub mod tags;
pub mod wait;

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};

pub use calls::ApiCalls;

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

/// One client per service, all from one `SdkConfig`, all counting their calls.
#[derive(Clone, Debug)]
pub struct Clients {
    pub ec2: aws_sdk_ec2::Client,
    pub kms: aws_sdk_kms::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    pub iam: aws_sdk_iam::Client,
    pub sts: aws_sdk_sts::Client,
    pub rds: aws_sdk_rds::Client,
    pub backup: aws_sdk_backup::Client,
    pub calls: ApiCalls,
}

impl Clients {
    /// Loads the standard credential chain (env, profiles, SSO, IMDS) with the region of the
    /// environment file, standard retries with adaptive throttling, and bounded timeouts.
    pub async fn load(target: &Target) -> Clients {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(target.region.clone()))
            .retry_config(
                RetryConfig::adaptive()
                    .with_max_attempts(5)
                    .with_initial_backoff(Duration::from_millis(200)),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(60))
                    .build(),
            );
        if let Some(endpoint) = &target.file_endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let sdk = loader.load().await;
        let calls = ApiCalls::default();
        Clients {
            ec2: aws_sdk_ec2::Client::from_conf(
                aws_sdk_ec2::config::Builder::from(&sdk)
                    .interceptor(calls.clone())
                    .build(),
            ),
            kms: aws_sdk_kms::Client::from_conf(
                aws_sdk_kms::config::Builder::from(&sdk)
                    .interceptor(calls.clone())
                    .build(),
            ),
            logs: aws_sdk_cloudwatchlogs::Client::from_conf(
                aws_sdk_cloudwatchlogs::config::Builder::from(&sdk)
                    .interceptor(calls.clone())
                    .build(),
            ),
            iam: aws_sdk_iam::Client::from_conf(
                aws_sdk_iam::config::Builder::from(&sdk)
                    .interceptor(calls.clone())
                    .build(),
            ),
            sts: aws_sdk_sts::Client::from_conf(
                aws_sdk_sts::config::Builder::from(&sdk)
                    .interceptor(calls.clone())
                    .build(),
            ),
            rds: aws_sdk_rds::Client::from_conf(
                aws_sdk_rds::config::Builder::from(&sdk)
                    .interceptor(calls.clone())
                    .build(),
            ),
            backup: aws_sdk_backup::Client::from_conf(
                aws_sdk_backup::config::Builder::from(&sdk)
                    .interceptor(calls.clone())
                    .build(),
            ),
            calls,
        }
    }
}

/// An idempotency token for a create call, derived from the environment and the node so a
/// retried or re-run create of the same node reuses it (EC2 ClientToken: at most 64 ASCII).
pub fn client_token(env_full_name: &str, node: &str) -> String {
    // FNV-1a keeps the token short and stable across versions of this tool.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in env_full_name.bytes().chain([b'/']).chain(node.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let readable: String = format!("{env_full_name}-{node}")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(46)
        .collect();
    format!("{readable}-{h:016x}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn client_token_is_stable_and_short() {
        let t = super::client_token("tap-prod", "nat-a");
        assert_eq!(t, super::client_token("tap-prod", "nat-a"));
        assert_ne!(t, super::client_token("tap-prod", "nat-b"));
        assert_ne!(t, super::client_token("tap-staging", "nat-a"));
        assert!(t.len() <= 64);
        assert!(t.starts_with("tap-prod-nat-a-"));
        let long = super::client_token(&"x".repeat(80), &"y".repeat(80));
        assert!(long.len() <= 64);
    }
}
