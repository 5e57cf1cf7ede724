//! ACM certificates for `<domain>` and `*.<domain>`, validated by DNS: the certificate
//! publishes its validation records as soon as ACM has them (its identifiers), a DNS node
//! writes them into the hosted zone, and the certificate is ready once ACM says ISSUED.
//! PLATFORM.md: a listener or a distribution given a certificate before it is ISSUED fails
//! with errors that do not say "pending", so they wait for readiness, not retry.
//!
//! CloudFront only takes certificates from us-east-1: the stack adds a second one there when
//! the environment lives elsewhere (`global`).

use crate::aws::wait::expected::{CERTIFICATE_ISSUED, CERTIFICATE_RECORDS};
use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_acm::types::{CertificateDetail, CertificateStatus, ValidationMethod};
use serde::{Deserialize, Serialize};

use super::{NodeCx, Resource};
use crate::aws::errors::{OrAbsent, Required};
use crate::aws::retry::{self, CERTIFICATE_IN_USE};
use crate::aws::wait::Poll;
use crate::aws::{tags, Services};
use crate::diff::{fields, tags_changed, Change, Changes};
use crate::error::Failure;
use crate::model::{Attrs, DnsRecord, Inputs, RecordedIds};
use crate::policy::{grant, Grants, On};
use crate::resources::template::Attr;

fields! {
    /// The fields a certificate is compared on, as `plan`, `drift` and `history` name them.
    enum Field {
        SubjectAlternativeNames = "subject_alternative_names",
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Certificate {
    pub domain: String,
    /// Further names on it (`*.<domain>`).
    pub alternative_names: Vec<String>,
    /// Made in us-east-1 (for CloudFront) rather than the environment's region.
    pub global: bool,
}

pub struct Observed {
    detail: CertificateDetail,
    tags: BTreeMap<String, String>,
}

/// Readiness of a certificate from its status (pure).
pub fn certificate_ready(status: Option<&CertificateStatus>) -> Poll {
    match status {
        Some(CertificateStatus::Issued) => Poll::Ready,
        Some(CertificateStatus::PendingValidation) | None => {
            Poll::Pending("PENDING_VALIDATION".into())
        }
        Some(other) => Poll::Failed(format!(
            "status {}: request a new one by deleting it and running `up`",
            other.as_str()
        )),
    }
}

fn validation_records(detail: &CertificateDetail) -> Vec<DnsRecord> {
    let mut out: Vec<DnsRecord> = detail
        .domain_validation_options()
        .iter()
        .filter_map(|o| o.resource_record())
        .map(|r| DnsRecord {
            name: r.name().to_string(),
            record_type: r.r#type().as_str().to_string(),
            value: r.value().to_string(),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.dedup();
    out
}

fn attrs_of(detail: &CertificateDetail) -> Result<Attrs, Failure> {
    let arn = detail
        .certificate_arn()
        .ok_or_else(|| Failure::missing("certificate ARN"))?;
    let mut a = Attrs::id(arn).with_arn(arn);
    a.name = detail.domain_name().map(String::from);
    a.state = detail.status().map(|s| s.as_str().to_string());
    a.validation_records = validation_records(detail);
    Ok(a)
}

impl Certificate {
    /// A certificate's tags; `None` when it does not exist.
    async fn tags_of(
        &self,
        cx: &NodeCx<'_>,
        arn: &str,
    ) -> Result<Option<BTreeMap<String, String>>, Failure> {
        let own = async {
            let listed = self
                .acm(cx)
                .list_tags_for_certificate()
                .certificate_arn(arn)
                .send()
                .await
                .or_absent()?;
            Ok(listed.map(|l| tags::from_acm(l.tags())))
        };
        cx.tags_of(arn, own).await
    }

    fn acm<'a>(&self, cx: &NodeCx<'a>) -> &'a aws_sdk_acm::Client {
        let clients: &Services = if self.global {
            &cx.aws().us_east_1
        } else {
            cx.aws()
        };
        &clients.acm
    }

    async fn describe(
        &self,
        cx: &NodeCx<'_>,
        arn: &str,
    ) -> Result<Option<CertificateDetail>, Failure> {
        Ok(self
            .acm(cx)
            .describe_certificate()
            .certificate_arn(arn)
            .send()
            .await
            .or_absent()?
            .and_then(|o| o.certificate().cloned()))
    }
}

#[async_trait]
impl Resource for Certificate {
    type Observed = Observed;
    const KIND: &'static str = "certificate";
    const GRANTS: &'static Grants = &Grants {
        read: &[
            crate::policy::BULK_TAGS,
            grant(
                &[
                    "acm:ListCertificates",
                    "acm:ListTagsForCertificate",
                    "acm:DescribeCertificate",
                ],
                On::Any("certificates are found by their tags: every candidate's tags are read"),
            ),
        ],
        write: &[
            grant(
                &["acm:RequestCertificate", "acm:AddTagsToCertificate"],
                On::Creating,
            ),
            grant(&["acm:AddTagsToCertificate"], On::Tagged),
        ],
        delete: &[grant(&["acm:DeleteCertificate"], On::Tagged)],
    };
    const FIELDS: &'static [&'static str] = Field::NAMES;
    const PUBLISHES: &'static [Attr] = &[Attr::Id, Attr::Arn];

    /// The certificate for the domain that carries this node's tags (listed by domain, then
    /// each candidate's tags read), skipping ones that failed or expired.
    async fn observe(&self, cx: &NodeCx<'_>) -> Result<Option<Observed>, Failure> {
        let acm = self.acm(cx);
        let summaries = acm
            .list_certificates()
            .certificate_statuses(CertificateStatus::PendingValidation)
            .certificate_statuses(CertificateStatus::Issued)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| Failure::from(e).context("ListCertificates"))?;
        let mut ours = Vec::new();
        for s in summaries
            .iter()
            .filter(|s| s.domain_name() == Some(self.domain.as_str()))
        {
            let Some(arn) = s.certificate_arn() else {
                continue;
            };
            // Deleted between the list and this read: not a candidate.
            let Some(tags) = self.tags_of(cx, arn).await? else {
                continue;
            };
            if tags::ours(&tags, cx.env_full(), cx.node) {
                ours.push((arn.to_string(), tags));
            }
        }
        // Described each (one, unless someone made a duplicate), so `down` can delete all.
        let mut found = Vec::new();
        for (arn, tags) in ours {
            if let Some(detail) = self.describe(cx, &arn).await? {
                found.push(Observed { detail, tags });
            }
        }
        Ok(cx.single(Self::KIND, found))
    }

    async fn observe_recorded(
        &self,
        cx: &NodeCx<'_>,
        recorded: &RecordedIds,
    ) -> Result<Option<Observed>, Failure> {
        let arn = recorded.arn.as_deref().unwrap_or(&recorded.id);
        let Some(detail) = self.describe(cx, arn).await? else {
            return Ok(None);
        };
        // As `observe`: one that failed, expired or was revoked is not this node's any more.
        if !matches!(
            detail.status(),
            Some(CertificateStatus::Issued | CertificateStatus::PendingValidation)
        ) {
            return Ok(None);
        }
        let Some(tags) = self.tags_of(cx, arn).await? else {
            return Ok(None);
        };
        cx.not_claimed(Self::KIND, arn, &tags)?;
        Ok(Some(Observed { detail, tags }))
    }

    fn attrs(&self, _cx: &NodeCx<'_>, have: &Observed) -> Result<Attrs, Failure> {
        attrs_of(&have.detail)
    }

    fn is_ready(&self, have: &Observed) -> bool {
        have.detail.status() == Some(&CertificateStatus::Issued)
    }

    fn diff(
        &self,
        cx: &NodeCx<'_>,
        _inputs: &Inputs<'_>,
        have: &Observed,
        c: &mut Changes,
    ) -> Result<(), Failure> {
        let mut want: Vec<String> = self.alternative_names.clone();
        want.push(self.domain.clone());
        want.sort();
        let mut got: Vec<String> = have.detail.subject_alternative_names().to_vec();
        got.sort();
        c.immutable(Field::SubjectAlternativeNames, want, got);
        c.tags(cx.tags(), &have.tags);
        Ok(())
    }

    async fn create(&self, cx: &NodeCx<'_>, _inputs: &Inputs<'_>) -> Result<Attrs, Failure> {
        let acm = self.acm(cx);
        let acm_tags: Vec<aws_sdk_acm::types::Tag> = cx
            .tags()
            .iter()
            .map(|(k, v)| aws_sdk_acm::types::Tag::builder().key(k).value(v).build())
            .collect::<Result<_, _>>()
            .map_err(|e| Failure::new("InvalidTag", e.to_string()))?;
        let token = cx.run_token(&[&self.domain]);
        let out = acm
            .request_certificate()
            .domain_name(&self.domain)
            .set_subject_alternative_names(Some(self.alternative_names.clone()))
            .validation_method(ValidationMethod::Dns)
            .idempotency_token(token)
            .set_tags(Some(acm_tags))
            .send()
            .await?;
        let arn = out
            .certificate_arn()
            .ok_or_else(|| Failure::missing("certificate ARN"))?
            .to_string();
        // ACM adds the validation records a few seconds after the request: they are this
        // node's identifiers (the DNS node writes them), so wait for them here.
        let detail = cx
            .wait_keeping(
                &format!("certificate {arn} to have its validation records"),
                CERTIFICATE_RECORDS,
                || async {
                    let detail = self.describe(cx, &arn).await?;
                    let complete = detail.as_ref().is_some_and(|d| {
                        let options = d.domain_validation_options();
                        !options.is_empty() && options.iter().all(|o| o.resource_record().is_some())
                    });
                    Ok(if complete {
                        (Poll::Ready, detail)
                    } else {
                        (Poll::Pending("no validation records yet".into()), None)
                    })
                },
            )
            .await?
            .ok_or_else(|| Failure::missing("certificate"))?;
        attrs_of(&detail)
    }

    /// Minutes on AWS once the records are in the zone.
    async fn wait_ready(&self, cx: &NodeCx<'_>, attrs: Attrs) -> Result<Attrs, Failure> {
        let last = cx
            .wait_keeping(
                &format!("certificate for {} to be ISSUED", self.domain),
                CERTIFICATE_ISSUED,
                || async {
                    let detail = self.describe(cx, &attrs.id).await?;
                    Ok((
                        certificate_ready(detail.as_ref().and_then(|d| d.status())),
                        detail,
                    ))
                },
            )
            .await?;
        match last {
            Some(d) => attrs_of(&d),
            None => Ok(attrs),
        }
    }

    async fn update(
        &self,
        cx: &NodeCx<'_>,
        _inputs: &Inputs<'_>,
        have: &Observed,
        changes: &[Change],
    ) -> Result<Attrs, Failure> {
        if tags_changed(changes) {
            let acm_tags: Vec<aws_sdk_acm::types::Tag> = cx
                .tags()
                .iter()
                .map(|(k, v)| aws_sdk_acm::types::Tag::builder().key(k).value(v).build())
                .collect::<Result<_, _>>()
                .map_err(|e| Failure::new("InvalidTag", e.to_string()))?;
            self.acm(cx)
                .add_tags_to_certificate()
                .certificate_arn(have.detail.certificate_arn().required("certificate ARN")?)
                .set_tags(Some(acm_tags))
                .send()
                .await?;
        }
        attrs_of(&have.detail)
    }

    /// A listener or distribution lets go of it a little after it is deleted.
    async fn delete(&self, cx: &NodeCx<'_>, have: &Observed) -> Result<(), Failure> {
        let arn = have.detail.certificate_arn().required("certificate ARN")?;
        let acm = self.acm(cx);
        retry::on(&[&CERTIFICATE_IN_USE], || async {
            acm.delete_certificate()
                .certificate_arn(arn)
                .send()
                .await
                .or_absent()
                .map(|_| ())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_table() {
        assert_eq!(
            certificate_ready(Some(&CertificateStatus::Issued)),
            Poll::Ready
        );
        assert!(matches!(
            certificate_ready(Some(&CertificateStatus::PendingValidation)),
            Poll::Pending(_)
        ));
        assert!(matches!(
            certificate_ready(Some(&CertificateStatus::ValidationTimedOut)),
            Poll::Failed(_)
        ));
    }
}
