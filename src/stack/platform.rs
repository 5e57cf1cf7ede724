//! What the platform's DNS and the tool itself need: the hosted zone (looked up, or made
//! where the file says so) and the state bucket that keeps the applied record.

use super::Stack;
use crate::aws::GLOBAL_REGION;
use crate::config::EnvConfig;
use crate::model::Ref;
use crate::resources::certificate::Certificate;
use crate::resources::dns_record::{ValidationRecords, ZoneRef};
use crate::resources::hosted_zone::HostedZone;
use crate::resources::s3_bucket::{Encryption, Lifecycle, S3Bucket};

pub const HOSTED_ZONE: &str = "hosted-zone";
pub const STATE_BUCKET: &str = "state-bucket";
/// The state bucket's name part: `<project>-<env>-state-<account>`.
pub const STATE_BUCKET_SUFFIX: &str = "state";

/// What the edge layer reads of this one.
pub struct Platform {
    pub zone: ZoneRef,
    /// The certificate for the load balancer (the environment's region).
    pub certificate: Ref,
    /// The certificate for CloudFront (us-east-1: the same one when that is the region).
    pub cdn_certificate: Ref,
}

pub fn build(s: &mut Stack<'_>, env: &EnvConfig) -> Platform {
    let zone = ZoneRef {
        node: s.add(
            HOSTED_ZONE,
            HostedZone {
                name: env.dns.zone_name.clone(),
                id: env.dns.zone_id.clone(),
                create: env.dns.create_zone,
            },
        ),
        name: env.dns.zone_name.clone(),
        id: env.dns.zone_id.clone(),
    };
    // `<domain>` and `*.<domain>`, validated by DNS; CloudFront's in us-east-1 (PLATFORM.md).
    let cert = |global| Certificate {
        domain: env.domain.clone(),
        alternative_names: vec![format!("*.{}", env.domain)],
        global,
    };
    let certificate = s.add("certificate", cert(false));
    let mut certificates = vec![certificate.clone()];
    let mut cdn_certificate = certificate.clone();
    if env.region != GLOBAL_REGION {
        cdn_certificate = s.add("certificate-cdn", cert(true));
        certificates.push(cdn_certificate.clone());
    }
    s.add(
        "certificate-dns",
        ValidationRecords {
            zone: zone.clone(),
            domain: env.domain.clone(),
            certificates,
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
            log_delivery: false,
            owns_policy: true,
        },
    );
    // Listeners and distributions need their certificate ISSUED (PLATFORM.md: they fail
    // otherwise with errors that do not say "pending"): readiness edges.
    Platform {
        zone,
        certificate: Ref::ready(certificate.node),
        cdn_certificate: Ref::ready(cdn_certificate.node),
    }
}
