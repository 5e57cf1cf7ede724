//! The CloudFront distribution in front of the static bucket: alias `cdn.<domain>` with the
//! us-east-1 certificate, TLSv1.2_2021, HTTP/2 and 3, IPv6, HTTPS only (HTTP redirected),
//! compression, AWS's managed CachingOptimized policy, origin access (OAC or OAI), and
//! standard logs to the log bucket. Found by its alias, which CloudFront lets only one
//! distribution have.
//!
//! `up` returns once CloudFront has accepted the configuration: nothing depends on it being
//! deployed to the edge (`InProgress` for minutes on AWS). `down` disables it, waits until
//! that is deployed, then deletes it, as CloudFront requires.

use crate::aws::wait::expected::DISTRIBUTION_DEPLOYED;
use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_cloudfront::types::{
    Aliases, AllowedMethods, CachedMethods, DefaultCacheBehavior, Distribution as AwsDistribution,
    DistributionConfig, DistributionConfigWithTags, HttpVersion, LoggingConfig, Method,
    MinimumProtocolVersion, Origin, Origins, PriceClass, S3OriginConfig, SslSupportMethod, Tag,
    Tags, ViewerCertificate, ViewerProtocolPolicy,
};
use serde::{Deserialize, Serialize};

use super::origin_access::AccessKind;
use super::{NodeCx, Resource};
use crate::aws::errors::{is_not_found, OrAbsent};
use crate::aws::tags;
use crate::aws::wait::Poll;
use crate::diff::{beyond_tags, fields, tags_changed, Change, Changes};
use crate::error::Failure;
use crate::model::{Attrs, Inputs, Output, RecordedIds, Ref};
use crate::policy::{grant, Grants, On};
use crate::resources::template::Attr;

fields! {
    /// The fields a distribution is compared on, as `plan`, `drift` and `history` name them.
    enum Field {
        Aliases = "aliases",
        Origin = "origin",
        DefaultBehavior = "default_behavior",
        Certificate = "certificate",
        Protocols = "protocols",
        Logging = "logging",
        Enabled = "enabled",
        DefaultRootObject = "default_root_object",
        PriceClass = "price_class",
    }
}

/// AWS's managed cache policy `Managed-CachingOptimized`.
pub const CACHING_OPTIMIZED: &str = "658327ea-f89d-4fab-a63d-7e88639e58f6";
const ORIGIN_ID: &str = "static";
const ROOT_OBJECT: &str = "index.html";
const LOG_PREFIX: &str = "cloudfront/";

#[derive(Debug, Serialize, Deserialize)]
pub struct Distribution {
    /// `cdn.<domain>`: the distribution's identity too.
    pub alias: String,
    /// The static bucket (its regional domain name is the origin).
    pub bucket: Ref,
    /// Where the standard logs go.
    pub log_bucket: Ref,
    /// The certificate in us-east-1; it must be ISSUED (a readiness input, PLATFORM.md).
    pub certificate: Ref,
    pub origin_access: Ref,
    pub access_kind: AccessKind,
}

pub struct Observed {
    distribution: AwsDistribution,
    etag: Option<String>,
    tags: BTreeMap<String, String>,
}

/// The settings compared, one line each: the same text from the spec and from AWS.
#[derive(Debug, PartialEq)]
struct View {
    aliases: Vec<String>,
    origin: String,
    behavior: String,
    certificate: String,
    protocol: String,
    logging: String,
    enabled: bool,
    root_object: String,
    price_class: String,
}

/// The log bucket as CloudFront names it: `<bucket>.s3.amazonaws.com`; in China, with the
/// region and the partition's suffix.
fn log_bucket_domain(scope: &super::Scope, bucket: &str) -> String {
    match scope.partition.as_str() {
        "aws-cn" => format!("{bucket}.s3.{}.{}", scope.region, scope.dns_suffix()),
        _ => format!("{bucket}.s3.amazonaws.com"),
    }
}

fn attrs_of(cx: &NodeCx<'_>, d: &AwsDistribution) -> Attrs {
    let mut a = Attrs::id(d.id()).with_arn(d.arn());
    a.dns_name = Some(d.domain_name().to_string());
    a.hosted_zone_id = Some(cx.scope().cloudfront_zone_id().to_string());
    a.state = Some(d.status().to_string());
    a
}

fn methods(items: &[Method]) -> String {
    let mut all: Vec<&str> = items.iter().map(|m| m.as_str()).collect();
    all.sort();
    all.join(",")
}

fn view_of(c: &DistributionConfig) -> View {
    let origin = c
        .origins()
        .and_then(|o| o.items().iter().find(|o| o.id() == ORIGIN_ID))
        .map(|o| {
            format!(
                "{} via OAC {} / OAI {}",
                o.domain_name(),
                o.origin_access_control_id().unwrap_or(""),
                o.s3_origin_config()
                    .map(|s| s.origin_access_identity())
                    .unwrap_or("")
            )
        })
        .unwrap_or_else(|| "(absent)".into());
    let behavior = c
        .default_cache_behavior()
        .map(|b| {
            let allowed = b.allowed_methods();
            format!(
                "to {}, {}, methods {} cached {}, compress {}, cache policy {}",
                b.target_origin_id(),
                b.viewer_protocol_policy().as_str(),
                allowed.map(|a| methods(a.items())).unwrap_or_default(),
                allowed
                    .and_then(|a| a.cached_methods())
                    .map(|m| methods(m.items()))
                    .unwrap_or_default(),
                b.compress().unwrap_or(false),
                b.cache_policy_id().unwrap_or("(none)")
            )
        })
        .unwrap_or_default();
    let cert = c.viewer_certificate();
    let mut aliases = c.aliases().map(|a| a.items().to_vec()).unwrap_or_default();
    aliases.sort();
    View {
        aliases,
        origin,
        behavior,
        certificate: format!(
            "{} {} {}",
            cert.and_then(|v| v.acm_certificate_arn())
                .unwrap_or("(none)"),
            cert.and_then(|v| v.ssl_support_method())
                .map(|s| s.as_str())
                .unwrap_or("(none)"),
            cert.and_then(|v| v.minimum_protocol_version())
                .map(|s| s.as_str())
                .unwrap_or("(none)")
        ),
        protocol: format!(
            "{}, IPv6 {}",
            c.http_version().map(|h| h.as_str()).unwrap_or("(none)"),
            c.is_ipv6_enabled().unwrap_or(false)
        ),
        logging: c
            .logging()
            .filter(|l| l.enabled())
            .map(|l| {
                format!(
                    "to {}/{} (cookies {})",
                    l.bucket(),
                    l.prefix(),
                    l.include_cookies()
                )
            })
            .unwrap_or_else(|| "(off)".into()),
        enabled: c.enabled(),
        root_object: c.default_root_object().unwrap_or("").to_string(),
        price_class: c
            .price_class()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default(),
    }
}

impl Distribution {
    fn comment(&self, cx: &NodeCx<'_>) -> String {
        format!("{} static assets (tap-provision)", cx.env_full())
    }

    /// The whole configuration; `live` lends what this tool does not manage (a web ACL,
    /// geo restrictions) and the caller reference, so an update keeps them.
    fn config(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        live: Option<&DistributionConfig>,
        enabled: bool,
    ) -> Result<DistributionConfig, Failure> {
        let bucket_domain = inputs.attr(&self.bucket, "domain name", |a| a.dns_name.as_deref())?;
        let access = inputs.id(&self.origin_access)?;
        let mut origin = Origin::builder().id(ORIGIN_ID).domain_name(bucket_domain);
        origin = match self.access_kind {
            AccessKind::Control => origin
                .origin_access_control_id(access)
                .s3_origin_config(S3OriginConfig::builder().origin_access_identity("").build()),
            AccessKind::Identity => origin.s3_origin_config(
                S3OriginConfig::builder()
                    .origin_access_identity(format!("origin-access-identity/cloudfront/{access}"))
                    .build(),
            ),
        };
        let get_head = || vec![Method::Get, Method::Head];
        let behavior = DefaultCacheBehavior::builder()
            .target_origin_id(ORIGIN_ID)
            .viewer_protocol_policy(ViewerProtocolPolicy::RedirectToHttps)
            .allowed_methods(
                AllowedMethods::builder()
                    .quantity(2)
                    .set_items(Some(get_head()))
                    .cached_methods(
                        CachedMethods::builder()
                            .quantity(2)
                            .set_items(Some(get_head()))
                            .build()?,
                    )
                    .build()?,
            )
            .compress(true)
            .cache_policy_id(CACHING_OPTIMIZED)
            .build()?;
        let log_bucket = inputs.id(&self.log_bucket)?;
        let caller_reference = match live {
            Some(l) => l.caller_reference().to_string(),
            None => cx.run_token(&[]),
        };
        Ok(DistributionConfig::builder()
            .caller_reference(caller_reference)
            .aliases(Aliases::builder().quantity(1).items(&self.alias).build()?)
            .default_root_object(ROOT_OBJECT)
            .origins(
                Origins::builder()
                    .quantity(1)
                    .items(origin.build()?)
                    .build()?,
            )
            .default_cache_behavior(behavior)
            .comment(self.comment(cx))
            .logging(
                LoggingConfig::builder()
                    .enabled(true)
                    .include_cookies(false)
                    .bucket(log_bucket_domain(cx.scope(), log_bucket))
                    .prefix(LOG_PREFIX)
                    .build(),
            )
            .price_class(PriceClass::PriceClassAll)
            .enabled(enabled)
            .viewer_certificate(
                ViewerCertificate::builder()
                    .acm_certificate_arn(inputs.arn(&self.certificate)?)
                    .ssl_support_method(SslSupportMethod::SniOnly)
                    .minimum_protocol_version(MinimumProtocolVersion::TlSv122021)
                    .build(),
            )
            .http_version(HttpVersion::Http2and3)
            .is_ipv6_enabled(true)
            .set_restrictions(live.and_then(|l| l.restrictions()).cloned())
            .set_web_acl_id(live.and_then(|l| l.web_acl_id()).map(String::from))
            .build()?)
    }

    async fn find(&self, cx: &NodeCx<'_>) -> Result<Option<String>, Failure> {
        let cf = &cx.aws().cloudfront;
        let mut items = cf.list_distributions().into_paginator().items().send();
        while let Some(d) = items.next().await {
            let d = d.map_err(Failure::from)?;
            if d.aliases()
                .is_some_and(|a| a.items().iter().any(|n| n == &self.alias))
            {
                return Ok(Some(d.id().to_string()));
            }
        }
        Ok(None)
    }

    async fn get(
        &self,
        cx: &NodeCx<'_>,
        id: &str,
    ) -> Result<Option<(AwsDistribution, Option<String>)>, Failure> {
        let out = cx
            .aws()
            .cloudfront
            .get_distribution()
            .id(id)
            .send()
            .await
            .or_absent()?;
        Ok(out.and_then(|o| Some((o.distribution()?.clone(), o.e_tag().map(String::from)))))
    }

    /// Distribution `id` with its ETag and tags; `None` when it does not exist.
    async fn observed(&self, cx: &NodeCx<'_>, id: &str) -> Result<Option<Observed>, Failure> {
        let Some((distribution, etag)) = self.get(cx, id).await? else {
            return Ok(None);
        };
        let own = async {
            let listed = cx
                .aws()
                .cloudfront
                .list_tags_for_resource()
                .resource(distribution.arn())
                .send()
                .await
                .or_absent()?;
            // CloudFront answers no `Tags` element for a distribution without tags.
            Ok(listed.map(|l| {
                l.tags()
                    .map(|t| tags::from_cloudfront(t.items()))
                    .unwrap_or_default()
            }))
        };
        // Deleted between the two reads: absent.
        let Some(tags) = cx.tags_of(distribution.arn(), own).await? else {
            return Ok(None);
        };
        Ok(Some(Observed {
            distribution,
            etag,
            tags,
        }))
    }

    fn cloudfront_tags(&self, cx: &NodeCx<'_>) -> Result<Tags, Failure> {
        Ok(Tags::builder()
            .set_items(Some(
                cx.tags()
                    .iter()
                    .map(|(k, v)| Tag::builder().key(k).value(v).build())
                    .collect::<Result<_, _>>()?,
            ))
            .build())
    }
}

#[async_trait]
impl Resource for Distribution {
    type Observed = Observed;
    const KIND: &'static str = "distribution";
    const GRANTS: &'static Grants = &Grants {
        read: &[
            crate::policy::BULK_TAGS,
            grant(
                &["cloudfront:ListDistributions"],
                On::Any("ListDistributions has no resource-level permission"),
            ),
            grant(
                &[
                    "cloudfront:GetDistribution",
                    "cloudfront:ListTagsForResource",
                ],
                On::Tagged,
            ),
        ],
        write: &[
            grant(
                &["cloudfront:CreateDistribution"],
                On::Any(
                    "CreateDistribution takes no tag condition and no resource before it exists",
                ),
            ),
            grant(&["cloudfront:TagResource"], On::Creating),
            grant(
                &["cloudfront:UpdateDistribution", "cloudfront:TagResource"],
                On::Tagged,
            ),
            // Standard logging: CloudFront's log delivery needs the logs bucket's ACL.
            grant(
                &["s3:GetBucketAcl", "s3:PutBucketAcl"],
                On::Arns(&["arn:${partition}:s3:::${env}-cdn-logs-${account}"]),
            ),
        ],
        delete: &[grant(
            &[
                "cloudfront:UpdateDistribution",
                "cloudfront:GetDistribution",
                "cloudfront:DeleteDistribution",
            ],
            On::Tagged,
        )],
    };
    const FIELDS: &'static [&'static str] = Field::NAMES;
    const PUBLISHES: &'static [Attr] = &[Attr::Id, Attr::Arn];

    async fn observe(&self, cx: &NodeCx<'_>) -> Result<Option<Observed>, Failure> {
        let Some(id) = self.find(cx).await? else {
            return Ok(None);
        };
        self.observed(cx, &id).await
    }

    /// Found by its alias above; by the recorded id when the alias was taken off it.
    async fn observe_recorded(
        &self,
        cx: &NodeCx<'_>,
        recorded: &RecordedIds,
    ) -> Result<Option<Observed>, Failure> {
        let found = self.observed(cx, &recorded.id).await?;
        if let Some(o) = &found {
            cx.not_claimed(Self::KIND, &recorded.id, &o.tags)?;
        }
        Ok(found)
    }

    fn attrs(&self, cx: &NodeCx<'_>, have: &Observed) -> Result<Attrs, Failure> {
        Ok(attrs_of(cx, &have.distribution))
    }

    fn diff(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &Observed,
        c: &mut Changes,
    ) -> Result<(), Failure> {
        let live = have
            .distribution
            .distribution_config()
            .ok_or_else(|| Failure::missing("distribution configuration"))?;
        let want = view_of(&self.config(cx, inputs, Some(live), true)?);
        let have_view = view_of(live);
        c.field(Field::Aliases, &want.aliases, &have_view.aliases);
        c.field(Field::Origin, &want.origin, &have_view.origin);
        c.field(Field::DefaultBehavior, &want.behavior, &have_view.behavior);
        c.field(
            Field::Certificate,
            &want.certificate,
            &have_view.certificate,
        );
        c.field(Field::Protocols, &want.protocol, &have_view.protocol);
        c.field(Field::Logging, &want.logging, &have_view.logging);
        c.field(Field::Enabled, want.enabled, have_view.enabled);
        c.field(
            Field::DefaultRootObject,
            &want.root_object,
            &have_view.root_object,
        );
        c.field(Field::PriceClass, &want.price_class, &have_view.price_class);
        c.tags(cx.tags(), &have.tags);
        Ok(())
    }

    /// PLATFORM.md: the certificate must be ISSUED (else `InvalidViewerCertificate`); the
    /// bucket and the origin access need identifiers only.
    async fn create(&self, cx: &NodeCx<'_>, inputs: &Inputs<'_>) -> Result<Attrs, Failure> {
        let out = cx
            .aws()
            .cloudfront
            .create_distribution_with_tags()
            .distribution_config_with_tags(
                DistributionConfigWithTags::builder()
                    .distribution_config(self.config(cx, inputs, None, true)?)
                    .tags(self.cloudfront_tags(cx)?)
                    .build(),
            )
            .send()
            .await?;
        let d = out
            .distribution()
            .ok_or_else(|| Failure::missing("distribution"))?;
        cx.progress(format!(
            "distribution {} accepted; CloudFront deploys it to the edge in the background",
            d.id()
        ));
        Ok(attrs_of(cx, d))
    }

    async fn update(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &Observed,
        changes: &[Change],
    ) -> Result<Attrs, Failure> {
        let cf = &cx.aws().cloudfront;
        let d = &have.distribution;
        let mut result = attrs_of(cx, d);
        if beyond_tags(changes) {
            let out = cf
                .update_distribution()
                .id(d.id())
                .set_if_match(have.etag.clone())
                .distribution_config(self.config(cx, inputs, d.distribution_config(), true)?)
                .send()
                .await?;
            if let Some(updated) = out.distribution() {
                result = attrs_of(cx, updated);
            }
        }
        if tags_changed(changes) {
            cf.tag_resource()
                .resource(d.arn())
                .tags(self.cloudfront_tags(cx)?)
                .send()
                .await?;
        }
        Ok(result)
    }

    /// Disable, wait until that is deployed, delete (CloudFront refuses an enabled one).
    async fn delete(&self, cx: &NodeCx<'_>, have: &Observed) -> Result<(), Failure> {
        let cf = &cx.aws().cloudfront;
        let id = have.distribution.id();
        let live = have
            .distribution
            .distribution_config()
            .ok_or_else(|| Failure::missing("distribution configuration"))?;
        let mut etag = have.etag.clone();
        let mut live = live.clone();
        let mut tries = 0;
        while live.enabled() {
            tries += 1;
            let mut config = live.clone();
            config.enabled = false;
            let out = cf
                .update_distribution()
                .id(id)
                .set_if_match(etag.clone())
                .distribution_config(config)
                .send()
                .await
                .map_err(Failure::from);
            match out {
                Ok(out) => {
                    etag = out.e_tag().map(String::from);
                    break;
                }
                // Changed since it was read: by this call's earlier attempt, whose answer
                // was lost (the SDK sent it again with the old ETag), or by someone else.
                // Read it again: disabled already, or disabled with the new ETag.
                Err(f) if f.code == "PreconditionFailed" && tries < 3 => {
                    let Some((d, tag)) = self.get(cx, id).await? else {
                        return Ok(());
                    };
                    etag = tag;
                    live = d
                        .distribution_config()
                        .cloned()
                        .ok_or_else(|| Failure::missing("distribution configuration"))?;
                }
                Err(f) if is_not_found(&f) => return Ok(()),
                Err(f) => return Err(f),
            }
        }
        let last = cx
            .wait_keeping(
                &format!("distribution {id} to be disabled at the edge"),
                DISTRIBUTION_DEPLOYED,
                || async {
                    Ok(match self.get(cx, id).await? {
                        None => (Poll::Ready, None),
                        Some((d, tag)) if d.status() == "Deployed" => (Poll::Ready, tag),
                        Some((d, tag)) => (Poll::Pending(d.status().to_string()), tag),
                    })
                },
            )
            .await?;
        let etag = last.or(etag);
        match cf
            .delete_distribution()
            .id(id)
            .set_if_match(etag)
            .send()
            .await
            .map_err(Failure::from)
        {
            // Deleted by this call's earlier attempt, whose answer was lost.
            Err(f) if is_not_found(&f) => Ok(()),
            // Changed meanwhile: gone is done; otherwise the error stands.
            Err(f) if f.code == "PreconditionFailed" => match self.get(cx, id).await? {
                None => Ok(()),
                Some(_) => Err(f),
            },
            other => other.map(|_| ()),
        }
    }

    fn outputs(&self, attrs: &Attrs) -> Vec<Output> {
        vec![super::output("cdn_domain_name", &attrs.dns_name)]
    }
}
