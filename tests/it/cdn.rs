//! Static assets on the emulator: the private bucket, its distribution on `cdn.<domain>`
//! with origin access (OAC by default, OAI by config), access logs; drift put back; a
//! distribution deleted by hand made again; `down` keeps the buckets' objects.

use std::collections::BTreeMap;

use aws_sdk_cloudfront::types::DistributionConfig;
use serde_json::Value;

use crate::common::live::{deleted, drift_then_repair, drifted, set, Live};
use crate::common::{account, config_dir, converged, local, ops, reset_calls, writes};

const CDN: &str = "cdn.tap.local.example.com";

fn static_bucket(acct: &str) -> String {
    format!("tap-local-static-{acct}")
}

/// The distribution with the CDN alias: (id, ARN, domain name, config, ETag).
async fn distribution(live: &Live) -> Option<(String, String, String, DistributionConfig, String)> {
    let list = live.cf.list_distributions().send().await.unwrap();
    let summary = list.distribution_list()?.items().iter().find(|d| {
        d.aliases()
            .is_some_and(|a| a.items().iter().any(|n| n == CDN))
    })?;
    let got = live
        .cf
        .get_distribution()
        .id(summary.id())
        .send()
        .await
        .unwrap();
    let d = got.distribution().unwrap();
    Some((
        d.id().to_string(),
        d.arn().to_string(),
        d.domain_name().to_string(),
        d.distribution_config().unwrap().clone(),
        got.e_tag().unwrap().to_string(),
    ))
}

/// Deletes the distribution as CloudFront requires: disabled (If-Match), deployed, deleted
/// with its last ETag.
async fn delete_by_hand(live: &Live, id: &str, config: DistributionConfig, etag: String) {
    let mut disabled = config;
    disabled.enabled = false;
    let out = live
        .cf
        .update_distribution()
        .id(id)
        .if_match(etag)
        .distribution_config(disabled)
        .send()
        .await
        .unwrap();
    let mut etag = out.e_tag().unwrap().to_string();
    for _ in 0..50 {
        let got = live.cf.get_distribution().id(id).send().await.unwrap();
        etag = got.e_tag().unwrap().to_string();
        if got.distribution().unwrap().status() == "Deployed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    live.cf
        .delete_distribution()
        .id(id)
        .if_match(etag)
        .send()
        .await
        .unwrap();
}

async fn policy(live: &Live, bucket: &str) -> Value {
    let p = live
        .s3
        .get_bucket_policy()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    serde_json::from_str(p.policy().unwrap()).unwrap()
}

#[tokio::test]
async fn static_assets_sit_behind_the_distribution_as_platform_md_says() {
    let acct = converged().await;
    let live = Live::new(&acct).await;
    let bucket = static_bucket(&acct);

    // Private, versioned, encrypted, with lifecycle rules.
    let pab = live
        .s3
        .get_public_access_block()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let pab = pab.public_access_block_configuration().unwrap();
    assert_eq!(
        (
            pab.block_public_acls(),
            pab.ignore_public_acls(),
            pab.block_public_policy(),
            pab.restrict_public_buckets()
        ),
        (Some(true), Some(true), Some(true), Some(true))
    );
    let versioning = live
        .s3
        .get_bucket_versioning()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert_eq!(versioning.status().map(|s| s.as_str()), Some("Enabled"));
    let encryption = live
        .s3
        .get_bucket_encryption()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let rule = &encryption
        .server_side_encryption_configuration()
        .unwrap()
        .rules()[0];
    assert_eq!(
        rule.apply_server_side_encryption_by_default()
            .unwrap()
            .sse_algorithm()
            .as_str(),
        "AES256"
    );
    let lifecycle = live
        .s3
        .get_bucket_lifecycle_configuration()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let rule = &lifecycle.rules()[0];
    assert_eq!(
        rule.noncurrent_version_expiration()
            .and_then(|e| e.noncurrent_days()),
        Some(30)
    );
    assert_eq!(
        rule.abort_incomplete_multipart_upload()
            .and_then(|a| a.days_after_initiation()),
        Some(7)
    );

    // The distribution: the alias, the issued certificate, TLS 1.2, HTTP/2 and 3, HTTPS
    // only, compression, optimized caching, the bucket through its OAC, logs.
    let (_, arn, domain, config, _) = distribution(&live).await.unwrap();
    let cert = config.viewer_certificate().unwrap();
    let acm = aws_sdk_acm::Client::new(&crate::common::sdk(&acct).await);
    let certs = acm.list_certificates().send().await.unwrap();
    assert_eq!(
        cert.acm_certificate_arn(),
        certs.certificate_summary_list()[0].certificate_arn(),
        "local is in us-east-1: one certificate serves both"
    );
    assert_eq!(
        cert.minimum_protocol_version().map(|v| v.as_str()),
        Some("TLSv1.2_2021")
    );
    assert_eq!(
        cert.ssl_support_method().map(|m| m.as_str()),
        Some("sni-only")
    );
    assert_eq!(config.http_version().map(|h| h.as_str()), Some("http2and3"));
    let behavior = config.default_cache_behavior().unwrap();
    assert_eq!(
        behavior.viewer_protocol_policy().as_str(),
        "redirect-to-https"
    );
    assert_eq!(behavior.compress(), Some(true));
    assert_eq!(
        behavior.cache_policy_id(),
        Some("658327ea-f89d-4fab-a63d-7e88639e58f6")
    );
    let origin = &config.origins().unwrap().items()[0];
    assert_eq!(
        origin.domain_name(),
        format!("{bucket}.s3.us-east-1.amazonaws.com")
    );
    let oacs = live.cf.list_origin_access_controls().send().await.unwrap();
    let oac = &oacs.origin_access_control_list().unwrap().items()[0];
    assert_eq!(oac.name(), "tap-local-static");
    assert_eq!(oac.signing_behavior().as_str(), "always");
    assert_eq!(origin.origin_access_control_id(), Some(oac.id()));
    let logging = config.logging().unwrap();
    assert!(logging.enabled());
    assert_eq!(
        logging.bucket(),
        format!("tap-local-cdn-logs-{acct}.s3.amazonaws.com")
    );

    // The bucket admits only that distribution, and only over TLS.
    let p = policy(&live, &bucket).await;
    let statements = p["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 2, "{p}");
    assert_eq!(statements[0]["Effect"], "Deny");
    assert_eq!(
        statements[1]["Principal"]["Service"],
        "cloudfront.amazonaws.com"
    );
    assert_eq!(
        statements[1]["Condition"]["StringEquals"]["AWS:SourceArn"],
        arn.as_str()
    );

    // The log bucket takes CloudFront's ACL-based delivery and expires logs after 90 days.
    let logs = format!("tap-local-cdn-logs-{acct}");
    let ownership = live
        .s3
        .get_bucket_ownership_controls()
        .bucket(&logs)
        .send()
        .await
        .unwrap();
    assert_eq!(
        ownership.ownership_controls().unwrap().rules()[0]
            .object_ownership()
            .as_str(),
        "BucketOwnerPreferred"
    );
    let lifecycle = live
        .s3
        .get_bucket_lifecycle_configuration()
        .bucket(&logs)
        .send()
        .await
        .unwrap();
    assert_eq!(
        lifecycle.rules()[0].expiration().and_then(|e| e.days()),
        Some(90)
    );

    // cdn.<domain> is an alias of the distribution.
    let records = live
        .r53
        .list_resource_record_sets()
        .hosted_zone_id(live.zone_id().await)
        .send()
        .await
        .unwrap();
    let alias = records
        .resource_record_sets()
        .iter()
        .find(|r| r.name() == format!("{CDN}.") && r.r#type().as_str() == "A")
        .and_then(|r| r.alias_target())
        .unwrap();
    assert_eq!(alias.dns_name().trim_end_matches('.'), domain);
    assert_eq!(alias.hosted_zone_id(), "Z2FDTNDATAQYW2");

    // Why the distribution and the HTTPS listener wait for ISSUED: the emulator refuses a
    // pending certificate as AWS does, with errors that do not say "pending".
    let pending = acm
        .request_certificate()
        .domain_name("pending.tap.local.example.com")
        .validation_method(aws_sdk_acm::types::ValidationMethod::Dns)
        .send()
        .await
        .unwrap();
    let pending = pending.certificate_arn().unwrap();
    let mut refused = config.clone();
    refused.caller_reference = "refused".into();
    refused.aliases = None;
    refused.viewer_certificate = Some(
        aws_sdk_cloudfront::types::ViewerCertificate::builder()
            .acm_certificate_arn(pending)
            .ssl_support_method(aws_sdk_cloudfront::types::SslSupportMethod::SniOnly)
            .build(),
    );
    let err = live
        .cf
        .create_distribution()
        .distribution_config(refused)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        aws_sdk_cloudfront::error::ProvideErrorMetadata::code(&err),
        Some("InvalidViewerCertificate"),
        "{err:?}"
    );
    let lbs = live.elb.describe_load_balancers().send().await.unwrap();
    let err = live
        .elb
        .create_listener()
        .load_balancer_arn(lbs.load_balancers()[0].load_balancer_arn().unwrap())
        .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Https)
        .port(8443)
        .certificates(
            aws_sdk_elasticloadbalancingv2::types::Certificate::builder()
                .certificate_arn(pending)
                .build(),
        )
        .default_actions(
            aws_sdk_elasticloadbalancingv2::types::Action::builder()
                .r#type(aws_sdk_elasticloadbalancingv2::types::ActionTypeEnum::FixedResponse)
                .fixed_response_config(
                    aws_sdk_elasticloadbalancingv2::types::FixedResponseActionConfig::builder()
                        .status_code("404")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        aws_sdk_elasticloadbalancingv2::error::ProvideErrorMetadata::code(&err),
        Some("UnsupportedCertificate"),
        "{err:?}"
    );
}

#[tokio::test]
async fn static_asset_drift_is_put_back() {
    let acct = converged().await;
    let live = Live::new(&acct).await;
    let bucket = static_bucket(&acct);
    // By hand: the public access block removed, ACLs enabled again (object writer owns),
    // versioning suspended, a public statement added to the policy, compression and TLS 1.2
    // dropped at the distribution.
    live.s3
        .delete_public_access_block()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    live.s3
        .put_bucket_ownership_controls()
        .bucket(&bucket)
        .ownership_controls(
            aws_sdk_s3::types::OwnershipControls::builder()
                .rules(
                    aws_sdk_s3::types::OwnershipControlsRule::builder()
                        .object_ownership(aws_sdk_s3::types::ObjectOwnership::ObjectWriter)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    live.s3
        .put_bucket_versioning()
        .bucket(&bucket)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Suspended)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let mut p = policy(&live, &bucket).await;
    p["Statement"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "Sid": "Public", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
            "Resource": format!("arn:aws:s3:::{bucket}/*")
        }));
    live.s3
        .put_bucket_policy()
        .bucket(&bucket)
        .policy(p.to_string())
        .send()
        .await
        .unwrap();
    // ... and the origin access control set to sign nothing.
    let oacs = live.cf.list_origin_access_controls().send().await.unwrap();
    let oac_id = oacs.origin_access_control_list().unwrap().items()[0]
        .id()
        .to_string();
    let oac = live
        .cf
        .get_origin_access_control()
        .id(&oac_id)
        .send()
        .await
        .unwrap();
    live.cf
        .update_origin_access_control()
        .id(&oac_id)
        .if_match(oac.e_tag().unwrap())
        .origin_access_control_config(
            aws_sdk_cloudfront::types::OriginAccessControlConfig::builder()
                .name("tap-local-static")
                .signing_protocol(
                    aws_sdk_cloudfront::types::OriginAccessControlSigningProtocols::Sigv4,
                )
                .signing_behavior(
                    aws_sdk_cloudfront::types::OriginAccessControlSigningBehaviors::Never,
                )
                .origin_access_control_origin_type(
                    aws_sdk_cloudfront::types::OriginAccessControlOriginTypes::S3,
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let (id, _, _, mut config, etag) = distribution(&live).await.unwrap();
    let behavior = config.default_cache_behavior.as_mut().unwrap();
    behavior.compress = Some(false);
    let cert = config.viewer_certificate.as_mut().unwrap();
    cert.minimum_protocol_version =
        Some(aws_sdk_cloudfront::types::MinimumProtocolVersion::TlSv12016);
    live.cf
        .update_distribution()
        .id(&id)
        .if_match(etag)
        .distribution_config(config)
        .send()
        .await
        .unwrap();

    drift_then_repair(
        &acct,
        set(&[
            "static-bucket",
            "static-bucket-policy",
            "cdn",
            "cdn-origin-access",
        ]),
    )
    .await;
    let w = writes(&acct).await;
    assert_eq!(
        w,
        BTreeMap::from([
            ("s3:PutPublicAccessBlock".to_string(), 1),
            ("s3:PutBucketOwnershipControls".to_string(), 1),
            ("s3:PutBucketVersioning".to_string(), 1),
            ("s3:PutBucketPolicy".to_string(), 1),
            ("cloudfront:UpdateDistribution".to_string(), 1),
            ("cloudfront:UpdateOriginAccessControl".to_string(), 1),
        ])
    );
    let (_, _, _, config, _) = distribution(&live).await.unwrap();
    assert_eq!(
        config.default_cache_behavior().unwrap().compress(),
        Some(true)
    );
    let ownership = live
        .s3
        .get_bucket_ownership_controls()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert_eq!(
        ownership.ownership_controls().unwrap().rules()[0].object_ownership(),
        &aws_sdk_s3::types::ObjectOwnership::BucketOwnerEnforced
    );
    assert_eq!(
        policy(&live, &bucket).await["Statement"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn origin_access_identity_mode_survives_a_deleted_distribution_and_down_keeps_the_objects() {
    let acct = account();
    let dir = config_dir(|t| format!("{t}\n[cdn]\norigin_access = \"oai\"\n"));
    let up = local("up", &["--yes"], &acct, Some(dir.path())).await;
    assert_eq!(up.code, 0, "{}\n{}", up.stdout, up.stderr);
    let live = Live::new(&acct).await;
    let bucket = static_bucket(&acct);

    // The origin reads through the identity, and the bucket admits that identity alone.
    let oais = live
        .cf
        .list_cloud_front_origin_access_identities()
        .send()
        .await
        .unwrap();
    let list = oais.cloud_front_origin_access_identity_list().unwrap();
    assert_eq!(list.items().len(), 1);
    let oai = list.items()[0].id().to_string();
    let (id, _, _, config, etag) = distribution(&live).await.unwrap();
    let origin = &config.origins().unwrap().items()[0];
    assert_eq!(
        origin.s3_origin_config().unwrap().origin_access_identity(),
        format!("origin-access-identity/cloudfront/{oai}")
    );
    let p = policy(&live, &bucket).await;
    assert_eq!(
        p["Statement"][1]["Principal"]["AWS"],
        format!("arn:aws:iam::cloudfront:user/CloudFront Origin Access Identity {oai}")
    );

    // Deleted by hand (disabled, deployed, deleted, as CloudFront requires): drift sees it,
    // and the alias that names it (in OAI mode the bucket policy names the identity, not the
    // distribution); repair makes a new one.
    delete_by_hand(&live, &id, config, etag).await;
    reset_calls(&acct).await;
    let d = local("drift", &[], &acct, Some(dir.path())).await;
    assert_eq!(d.code, 2, "{}\n{}", d.stdout, d.stderr);
    assert_eq!(drifted(&d), set(&["cdn", "dns-cdn"]), "{}", d.stdout);
    assert_eq!(deleted(&d), set(&["cdn"]), "{}", d.stdout);
    assert_eq!(writes(&acct).await, BTreeMap::new(), "drift wrote");
    let r = local("repair", &[], &acct, Some(dir.path())).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    // In OAI mode the bucket policy names the identity, not the distribution: no policy
    // write; the CDN alias follows the new distribution; the record takes its id.
    assert_eq!(
        writes(&acct).await,
        ops(&[
            ("cloudfront:CreateDistributionWithTags", 1),
            ("route53:ChangeResourceRecordSets", 1),
            ("s3:PutObject", 1),
        ])
    );
    let (new_id, new_arn, new_domain, _, _) = distribution(&live).await.unwrap();
    assert_ne!(new_id, id);
    let _ = new_arn;
    let records = live
        .r53
        .list_resource_record_sets()
        .hosted_zone_id(live.zone_id().await)
        .send()
        .await
        .unwrap();
    let alias = records
        .resource_record_sets()
        .iter()
        .find(|r| r.name() == format!("{CDN}.") && r.r#type().as_str() == "A")
        .and_then(|r| r.alias_target())
        .unwrap();
    assert_eq!(alias.dns_name().trim_end_matches('.'), new_domain);

    // An object in the bucket; `down` disables and deletes the distribution, deletes the
    // identity, and keeps the bucket with its object and a TLS-only policy.
    live.s3
        .put_object()
        .bucket(&bucket)
        .key("index.html")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(
            b"<h1>tap</h1>",
        ))
        .send()
        .await
        .unwrap();
    let down = local("down", &["--yes"], &acct, Some(dir.path())).await;
    assert_eq!(down.code, 0, "{}\n{}", down.stdout, down.stderr);
    assert_eq!(down.outcome("cdn"), "deleted");
    assert_eq!(down.outcome("static-bucket"), "kept");
    assert!(distribution(&live).await.is_none());
    let oais = live
        .cf
        .list_cloud_front_origin_access_identities()
        .send()
        .await
        .unwrap();
    assert!(oais
        .cloud_front_origin_access_identity_list()
        .unwrap()
        .items()
        .is_empty());
    let objects = live
        .s3
        .list_objects_v2()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert_eq!(objects.contents().len(), 1);
    let p = policy(&live, &bucket).await;
    assert_eq!(p["Statement"].as_array().unwrap().len(), 1, "{p}");
    assert_eq!(p["Statement"][0]["Sid"], "DenyInsecureTransport");
}

#[tokio::test]
async fn a_deleted_bucket_policy_and_a_moved_cdn_name_are_put_back() {
    let acct = converged().await;
    let live = Live::new(&acct).await;
    let bucket = static_bucket(&acct);
    live.s3
        .delete_bucket_policy()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    // `cdn.<domain>` pointed at the load balancer instead of the distribution.
    let zone = live.zone_id().await;
    let records = live
        .r53
        .list_resource_record_sets()
        .hosted_zone_id(&zone)
        .send()
        .await
        .unwrap();
    let mut record = records
        .resource_record_sets()
        .iter()
        .find(|r| r.name() == format!("{CDN}.") && r.r#type().as_str() == "A")
        .unwrap()
        .clone();
    let lbs = live.elb.describe_load_balancers().send().await.unwrap();
    let lb = &lbs.load_balancers()[0];
    record.alias_target = Some(
        aws_sdk_route53::types::AliasTarget::builder()
            .hosted_zone_id(lb.canonical_hosted_zone_id().unwrap())
            .dns_name(lb.dns_name().unwrap())
            .evaluate_target_health(false)
            .build()
            .unwrap(),
    );
    live.change_record(aws_sdk_route53::types::ChangeAction::Upsert, record)
        .await;

    drift_then_repair(&acct, set(&["static-bucket-policy", "dns-cdn"])).await;
    assert_eq!(
        writes(&acct).await,
        BTreeMap::from([
            ("s3:PutBucketPolicy".to_string(), 1),
            ("route53:ChangeResourceRecordSets".to_string(), 1),
        ])
    );
    let (_, arn, domain, _, _) = distribution(&live).await.unwrap();
    let statements = policy(&live, &bucket).await["Statement"].clone();
    assert!(statements.to_string().contains(&arn), "{statements}");
    let records = live
        .r53
        .list_resource_record_sets()
        .hosted_zone_id(&zone)
        .send()
        .await
        .unwrap();
    let cdn = records
        .resource_record_sets()
        .iter()
        .find(|r| r.name() == format!("{CDN}.") && r.r#type().as_str() == "A")
        .unwrap();
    assert_eq!(
        cdn.alias_target().unwrap().dns_name().trim_end_matches('.'),
        domain
    );
}

/// In OAC mode (the default) the distribution deleted by hand: `drift` reports it, the bucket
/// policy that names its ARN and the alias that points at it; `repair` makes one on the same
/// origin access control (no second control) and moves the policy and the alias to it.
#[tokio::test]
async fn a_distribution_deleted_out_of_band_in_oac_mode_comes_back_on_the_same_control() {
    let acct = converged().await;
    let live = Live::new(&acct).await;
    let bucket = static_bucket(&acct);
    let (id, old_arn, _, config, etag) = distribution(&live).await.unwrap();
    let oac = config.origins().unwrap().items()[0]
        .origin_access_control_id()
        .unwrap()
        .to_string();
    assert!(!oac.is_empty());
    delete_by_hand(&live, &id, config, etag).await;

    let (d, _) = drift_then_repair(&acct, set(&["cdn", "static-bucket-policy", "dns-cdn"])).await;
    assert_eq!(deleted(&d), set(&["cdn"]), "{}", d.stdout);
    assert_eq!(
        writes(&acct).await,
        ops(&[
            ("cloudfront:CreateDistributionWithTags", 1),
            ("s3:PutBucketPolicy", 1),
            ("route53:ChangeResourceRecordSets", 1),
            // the applied record: a new distribution id
            ("s3:PutObject", 1),
        ])
    );
    let (new_id, new_arn, _, new_config, _) = distribution(&live).await.unwrap();
    assert_ne!(new_id, id);
    assert_eq!(
        new_config.origins().unwrap().items()[0].origin_access_control_id(),
        Some(oac.as_str())
    );
    let controls = live.cf.list_origin_access_controls().send().await.unwrap();
    assert_eq!(
        controls.origin_access_control_list().unwrap().items().len(),
        1,
        "no second control"
    );
    let p = policy(&live, &bucket).await.to_string();
    assert!(p.contains(&new_arn) && !p.contains(&old_arn), "{p}");
}
