//! Static assets: a private bucket behind a CloudFront distribution on `cdn.<domain>`, read
//! through origin access (OAC or OAI, from config) that the bucket policy admits alone, with
//! access logs in a bucket of their own.

use serde_json::json;

use super::platform::Platform;
use super::Stack;
use crate::config::{EnvConfig, OriginAccess as AccessConfig};
use crate::resources::bucket_policy::BucketPolicy;
use crate::resources::distribution::Distribution;
use crate::resources::dns_record::{AliasKind, AliasRecord};
use crate::resources::origin_access::{AccessKind, OriginAccess};
use crate::resources::s3_bucket::{Encryption, Lifecycle, S3Bucket};
use crate::resources::template::Template;

pub const DISTRIBUTION: &str = "cdn";
const STATIC_SUFFIX: &str = "static";

pub fn build(s: &mut Stack<'_>, env: &EnvConfig, platform: &Platform) {
    // SSE-S3: an OAI cannot read SSE-KMS objects, and an OAC would need the key's policy to
    // name the distribution, which needs the bucket (a cycle).
    let bucket = s.add(
        "static-bucket",
        S3Bucket {
            suffix: STATIC_SUFFIX.into(),
            purpose: "static assets".into(),
            versioning: true,
            encryption: Encryption::S3Managed,
            lifecycle: Lifecycle {
                expire_days: None,
                noncurrent_expire_days: Some(30),
                abort_incomplete_upload_days: Some(7),
            },
            holds_data: true,
            log_delivery: false,
            owns_policy: false,
        },
    );
    // Access logs are the audit trail: kept by `down` like data.
    let log_bucket = s.add(
        "cdn-log-bucket",
        S3Bucket {
            suffix: "cdn-logs".into(),
            purpose: "CloudFront access logs".into(),
            versioning: false,
            encryption: Encryption::S3Managed,
            lifecycle: Lifecycle {
                expire_days: Some(90),
                noncurrent_expire_days: None,
                abort_incomplete_upload_days: Some(7),
            },
            holds_data: true,
            log_delivery: true,
            owns_policy: true,
        },
    );
    let kind = match env.edge.origin_access {
        AccessConfig::Control => AccessKind::Control,
        AccessConfig::Identity => AccessKind::Identity,
    };
    let access = s.add("cdn-origin-access", OriginAccess { kind });
    // PLATFORM.md: the distribution needs its us-east-1 certificate ISSUED; the bucket and
    // the origin access by identifiers only.
    let cdn = s.add(
        DISTRIBUTION,
        Distribution {
            alias: env.cdn_domain(),
            bucket: bucket.clone(),
            log_bucket,
            certificate: platform.cdn_certificate.clone(),
            origin_access: access.clone(),
            access_kind: kind,
        },
    );
    // PLATFORM.md: the policy naming the distribution's ARN, and the alias to it, need its
    // identifiers only (it stays `InProgress` meanwhile).
    let objects = "arn:${partition}:s3:::${static-bucket.id}/*";
    let statement = match kind {
        AccessKind::Control => json!({
                "Sid": "CloudFrontReadsObjects",
                "Effect": "Allow",
                "Principal": {"Service": "cloudfront.amazonaws.com"},
                "Action": "s3:GetObject",
                "Resource": objects,
                "Condition": {"StringEquals": {"AWS:SourceArn": "${cdn.arn}"}}
        }),
        AccessKind::Identity => json!({
                "Sid": "CloudFrontReadsObjects",
                "Effect": "Allow",
                "Principal": {"AWS": "arn:${partition}:iam::cloudfront:user/CloudFront Origin Access Identity ${cdn-origin-access.id}"},
                "Action": "s3:GetObject",
                "Resource": objects
        }),
    };
    s.add(
        "static-bucket-policy",
        BucketPolicy {
            suffix: STATIC_SUFFIX.into(),
            bucket,
            statements: vec![Template(statement)],
        },
    );
    s.add(
        "dns-cdn",
        AliasRecord {
            zone: platform.zone.clone(),
            name: env.cdn_domain(),
            target: cdn,
            kind: AliasKind::Distribution,
        },
    );
}
