//! Counts every API operation the clients issue, by service and operation, so a run can
//! report how many reads and writes it made (a converged `up` makes no write).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use serde::Serialize;

#[derive(Debug, Clone, Default)]
pub struct ApiCalls {
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
    /// Every attempt, first ones and the SDK's retries alike.
    attempts: Arc<AtomicU64>,
}

/// What a run called, for the report.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct CallSummary {
    pub reads: u64,
    pub writes: u64,
    /// Attempts the SDK made again after a throttling, a server error or a dropped
    /// connection (standard retry mode, adaptive rate).
    pub retries: u64,
    /// `service:Operation` -> count.
    pub by_operation: BTreeMap<String, u64>,
}

/// Operations that only read: Describe*, List*, Get*.
pub fn is_read(operation: &str) -> bool {
    ["Describe", "List", "Get", "Head"]
        .iter()
        .any(|p| operation.starts_with(p))
}

/// `12 reads, 3 writes` (and `, 4 retries` when the SDK had to retry).
impl std::fmt::Display for CallSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} reads, {} writes", self.reads, self.writes)?;
        if self.retries > 0 {
            write!(f, ", {} retries", self.retries)?;
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
        s.retries = self
            .attempts
            .load(Ordering::Relaxed)
            .saturating_sub(s.reads + s.writes);
        s.by_operation = counts;
        s
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
            if let Ok(mut counts) = self.counts.lock() {
                *counts.entry(key).or_default() += 1;
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
        self.attempts.fetch_add(1, Ordering::Relaxed);
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
