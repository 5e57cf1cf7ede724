//! What the platform's DNS and the tool itself need: the hosted zone (looked up, or made
//! where the file says so) and the state bucket that keeps the applied record.

use super::Stack;
use crate::config::EnvConfig;
use crate::resources::hosted_zone::HostedZone;
use crate::resources::s3_bucket::{Encryption, Lifecycle, S3Bucket};

pub const HOSTED_ZONE: &str = "hosted-zone";
pub const STATE_BUCKET: &str = "state-bucket";
/// The state bucket's name part: `<project>-<env>-state-<account>`.
pub const STATE_BUCKET_SUFFIX: &str = "state";

pub fn build(s: &mut Stack<'_>, env: &EnvConfig) {
    s.add(
        HOSTED_ZONE,
        HostedZone {
            name: env.dns.zone_name.clone(),
            id: env.dns.zone_id.clone(),
            create: env.dns.create_zone,
        },
    );
    // The tool's own record of what it applied (and, later, the lock and run history).
    // SSE-S3, so the record stays readable when the environment's key is scheduled for
    // deletion; versioned, so every earlier record is kept.
    s.add(
        STATE_BUCKET,
        S3Bucket {
            suffix: STATE_BUCKET_SUFFIX.into(),
            purpose: "tap-provision's applied record".into(),
            versioning: true,
            encryption: Encryption::S3Managed,
            lifecycle: Lifecycle {
                expire_days: None,
                noncurrent_expire_days: Some(90),
                abort_incomplete_upload_days: Some(7),
            },
            holds_data: true,
        },
    );
}
