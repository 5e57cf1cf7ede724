//! Counts every API operation the clients issue, by service and operation, so a run can
//! report how many reads and writes it made (a converged `up` makes no write).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextMut,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::{Metadata, OrchestratorError};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use serde::Serialize;

/// The code of a create whose answer was lost: the connection failed after the call went
/// out, so AWS may have carried it out. The SDK does not repeat these
/// ([`NOT_SAFE_TO_REPEAT`]): the node looks for what it made first.
pub const ANSWER_LOST: &str = "AnswerLost";

/// The creates whose repeat makes a second resource (no name that must be unique, no client
/// token): a connection lost after one went out is answered [`ANSWER_LOST`] rather than
/// retried by the SDK. The other writes are safe to repeat: idempotent by name or token, or
/// answered "already exists" / "not found", which their callers take as done.
/// Named as the SDK names them (its service names, as the run report shows them).
pub const NOT_SAFE_TO_REPEAT: &[&str] = &[
    "KMS:CreateKey",
    "EC2:CreateVpc",
    "EC2:CreateSubnet",
    "EC2:CreateInternetGateway",
    "EC2:AllocateAddress",
    "ECS:RegisterTaskDefinition",
];

/// What a create of [`NOT_SAFE_TO_REPEAT`] fails with when its answer was lost.
#[derive(Debug)]
pub struct LostAnswer(pub String);

impl std::fmt::Display for LostAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: the connection closed after the call went out, so AWS may have carried it out",
            self.0
        )
    }
}

impl std::error::Error for LostAnswer {}

#[derive(Debug, Clone, Default)]
pub struct ApiCalls {
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
    /// Attempts, throttling answers and resends per service.
    by_service: Arc<Mutex<BTreeMap<&'static str, ServiceAttempts>>>,
    /// The service of the client this copy counts for ([`ApiCalls::of`]).
    service: &'static str,
}

#[derive(Debug, Clone, Copy, Default)]
struct ServiceAttempts {
    calls: u64,
    attempts: u64,
    throttled: u64,
    /// Throttled requests the connector sent again itself (no SDK attempt).
    resent: u64,
}

/// What a run called, for the report.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct CallSummary {
    pub reads: u64,
    pub writes: u64,
    /// Attempts the SDK made again after a throttling, a server error or a dropped
    /// connection (standard retry mode: exponential backoff with jitter).
    pub retries: u64,
    /// Per service that had to retry (by the client's name: `ec2`, `elb`, `logs`): its
    /// retries, and how many of its answers were throttling (see [`super::pace`]).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub retries_by_service: BTreeMap<String, ServiceRetries>,
    /// `service:Operation` -> count.
    pub by_operation: BTreeMap<String, u64>,
}

/// One service's retries in a run.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct ServiceRetries {
    pub retries: u64,
    pub throttled: u64,
}

/// Operations that only read: Describe*, List*, Get*.
pub fn is_read(operation: &str) -> bool {
    ["Describe", "List", "Get", "Head"]
        .iter()
        .any(|p| operation.starts_with(p))
}

/// `12 reads, 3 writes` (and `, 4 retries (EC2 3, 2 throttled; IAM 1)` when the SDK had to
/// retry).
impl std::fmt::Display for CallSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} reads, {} writes", self.reads, self.writes)?;
        if self.retries > 0 {
            write!(f, ", {} retries", self.retries)?;
            let per: Vec<String> = self
                .retries_by_service
                .iter()
                .map(|(service, r)| match r.throttled {
                    0 => format!("{service} {}", r.retries),
                    t => format!("{service} {}, {t} throttled", r.retries),
                })
                .collect();
            if !per.is_empty() {
                write!(f, " ({})", per.join("; "))?;
            }
        }
        Ok(())
    }
}

impl ApiCalls {
    pub fn summary(&self) -> CallSummary {
        let counts = self.counts.lock().map(|c| c.clone()).unwrap_or_default();
        let mut s = CallSummary::default();
        for (key, n) in &counts {
            let op = key.rsplit(':').next().unwrap_or(key);
            if is_read(op) {
                s.reads += n;
            } else {
                s.writes += n;
            }
        }
        s.by_operation = counts;
        let by_service = self
            .by_service
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (service, a) in by_service.iter() {
            let retries = a.attempts.saturating_sub(a.calls) + a.resent;
            s.retries += retries;
            if retries > 0 || a.throttled > 0 {
                s.retries_by_service.insert(
                    service.to_string(),
                    ServiceRetries {
                        retries,
                        throttled: a.throttled,
                    },
                );
            }
        }
        s
    }

    /// The same counts, as the interceptor of `service`'s client.
    pub fn of(&self, service: &'static str) -> ApiCalls {
        ApiCalls {
            service,
            ..self.clone()
        }
    }

    fn service_entry(&self, service: &'static str, count: impl FnOnce(&mut ServiceAttempts)) {
        if let Ok(mut by_service) = self.by_service.lock() {
            count(by_service.entry(service).or_default());
        }
    }

    /// A throttling answer to an attempt of `service`.
    pub fn throttled(&self, service: &'static str) {
        self.service_entry(service, |a| a.throttled += 1);
    }

    /// A throttled request of `service` sent again by its connector.
    pub fn resent(&self, service: &'static str) {
        self.service_entry(service, |a| a.resent += 1);
    }
}

impl Intercept for ApiCalls {
    fn name(&self) -> &'static str {
        "tap-provision.api-calls"
    }

    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(md) = cfg.load::<Metadata>() {
            let key = format!("{}:{}", md.service(), md.name());
            tracing::debug!(call = %key, "calling");
            if let Ok(mut counts) = self.counts.lock() {
                *counts.entry(key).or_default() += 1;
            }
        }
        self.service_entry(self.service, |a| a.calls += 1);
        Ok(())
    }

    fn modify_before_attempt_completion(
        &self,
        context: &mut FinalizerInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(md) = cfg.load::<Metadata>() else {
            return Ok(());
        };
        let key = format!("{}:{}", md.service(), md.name());
        if !NOT_SAFE_TO_REPEAT.contains(&key.as_str()) {
            return Ok(());
        }
        if let Some(out) = context.output_or_error_mut() {
            let lost = matches!(out, Err(e) if e.is_connector_error() || e.is_timeout_error());
            if lost {
                *out = Err(OrchestratorError::other(LostAnswer(key)));
            }
        }
        Ok(())
    }

    fn read_before_attempt(
        &self,
        _context: &aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.service_entry(self.service, |a| a.attempts += 1);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_and_writes() {
        assert!(super::is_read("DescribeSubnets"));
        assert!(super::is_read("GetKeyRotationStatus"));
        assert!(super::is_read("ListResourceTags"));
        assert!(!super::is_read("CreateTags"));
        assert!(!super::is_read("PutRetentionPolicy"));
    }
}
