//! How CloudFront reads the static bucket: an origin access control (OAC: AWS's current way,
//! SigV4-signed requests, reads SSE-KMS objects too) or an origin access identity (OAI: the
//! reference design's way). Neither takes tags: an OAC is found by its name
//! `<project>-<env>-static`, an OAI by that name as its comment; either by the id the applied
//! record keeps when that name or comment was changed out of band (drift, put back).

use async_trait::async_trait;
use aws_sdk_cloudfront::types::{
    CloudFrontOriginAccessIdentityConfig, OriginAccessControlConfig,
    OriginAccessControlOriginTypes, OriginAccessControlSigningBehaviors,
    OriginAccessControlSigningProtocols,
};
use serde::{Deserialize, Serialize};

use super::{NodeCx, Resource};
use crate::aws::errors::OrAbsent;
use crate::diff::{fields, Change, Changes};
use crate::error::Failure;
use crate::model::{Attrs, Inputs, RecordedIds};
use crate::policy::{grant, Grants, On};

fields! {
    /// The fields an origin access is compared on, as `plan`, `drift` and `history` name them.
    enum Field {
        Settings = "settings",
        /// An OAC's name (an OAI's comment is its settings).
        Name = "name",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessKind {
    Control,
    Identity,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct OriginAccess {
    pub kind: AccessKind,
}

pub struct Observed {
    id: String,
    /// What the control signs (`always`), or the identity's comment.
    settings: String,
    /// The control's name, or the identity's comment.
    name: String,
}

/// The name of an OAC, or the comment of an OAI.
pub fn access_name(env_full: &str) -> String {
    format!("{env_full}-static")
}

const DESCRIPTION: &str = "static assets (tap-provision)";

fn control_settings(
    behavior: &OriginAccessControlSigningBehaviors,
    protocol: &OriginAccessControlSigningProtocols,
    origin: &OriginAccessControlOriginTypes,
) -> String {
    format!(
        "signing {} with {} for {}",
        behavior.as_str(),
        protocol.as_str(),
        origin.as_str()
    )
}

impl OriginAccess {
    fn want_settings(&self, cx: &NodeCx<'_>) -> String {
        match self.kind {
            AccessKind::Control => control_settings(
                &OriginAccessControlSigningBehaviors::Always,
                &OriginAccessControlSigningProtocols::Sigv4,
                &OriginAccessControlOriginTypes::S3,
            ),
            AccessKind::Identity => access_name(cx.env_full()),
        }
    }

    fn control_config(&self, cx: &NodeCx<'_>) -> Result<OriginAccessControlConfig, Failure> {
        Ok(OriginAccessControlConfig::builder()
            .name(access_name(cx.env_full()))
            .description(DESCRIPTION)
            .signing_protocol(OriginAccessControlSigningProtocols::Sigv4)
            .signing_behavior(OriginAccessControlSigningBehaviors::Always)
            .origin_access_control_origin_type(OriginAccessControlOriginTypes::S3)
            .build()?)
    }

    async fn find_control(&self, cx: &NodeCx<'_>) -> Result<Option<Observed>, Failure> {
        let name = access_name(cx.env_full());
        let cf = &cx.aws().cloudfront;
        let mut items = cf
            .list_origin_access_controls()
            .into_paginator()
            .items()
            .send();
        while let Some(c) = items.next().await {
            let c = c.map_err(Failure::from)?;
            if c.name() == name {
                return Ok(Some(Observed {
                    id: c.id().to_string(),
                    settings: control_settings(
                        c.signing_behavior(),
                        c.signing_protocol(),
                        c.origin_access_control_origin_type(),
                    ),
                    name: c.name().to_string(),
                }));
            }
        }
        Ok(None)
    }

    async fn find_identity(&self, cx: &NodeCx<'_>) -> Result<Option<Observed>, Failure> {
        let name = access_name(cx.env_full());
        let cf = &cx.aws().cloudfront;
        let mut items = cf
            .list_cloud_front_origin_access_identities()
            .into_paginator()
            .items()
            .send();
        while let Some(i) = items.next().await {
            let i = i.map_err(Failure::from)?;
            if i.comment() == name {
                return Ok(Some(Observed {
                    id: i.id().to_string(),
                    settings: i.comment().to_string(),
                    name: i.comment().to_string(),
                }));
            }
        }
        Ok(None)
    }
}

#[async_trait]
impl Resource for OriginAccess {
    type Observed = Observed;
    const KIND: &'static str = "origin_access";
    const GRANTS: &'static Grants = &Grants {
        read: &[
            grant(
                &["cloudfront:ListOriginAccessControls", "cloudfront:ListCloudFrontOriginAccessIdentities"],
                On::Any("CloudFront's lists have no resource-level permission"),
            ),
            grant(
                &["cloudfront:GetOriginAccessControl", "cloudfront:GetCloudFrontOriginAccessIdentity", "cloudfront:GetCloudFrontOriginAccessIdentityConfig"],
                On::Arns(&["arn:${partition}:cloudfront::${account}:origin-access-control/*", "arn:${partition}:cloudfront::${account}:origin-access-identity/*"]),
            ),
        ],
        write: &[
            grant(
                &["cloudfront:CreateOriginAccessControl", "cloudfront:CreateCloudFrontOriginAccessIdentity"],
                On::Any("origin access controls and identities take no tags, and no resource-level permission before they exist"),
            ),
            grant(
                &["cloudfront:GetOriginAccessControl", "cloudfront:UpdateOriginAccessControl", "cloudfront:GetCloudFrontOriginAccessIdentityConfig", "cloudfront:UpdateCloudFrontOriginAccessIdentity"],
                On::Arns(&["arn:${partition}:cloudfront::${account}:origin-access-control/*", "arn:${partition}:cloudfront::${account}:origin-access-identity/*"]),
            ),
        ],
        delete: &[grant(
            &["cloudfront:GetOriginAccessControl", "cloudfront:DeleteOriginAccessControl", "cloudfront:GetCloudFrontOriginAccessIdentity", "cloudfront:DeleteCloudFrontOriginAccessIdentity"],
            On::Arns(&["arn:${partition}:cloudfront::${account}:origin-access-control/*", "arn:${partition}:cloudfront::${account}:origin-access-identity/*"]),
        )],
    };
    const FIELDS: &'static [&'static str] = Field::NAMES;

    async fn observe(&self, cx: &NodeCx<'_>) -> Result<Option<Observed>, Failure> {
        match self.kind {
            AccessKind::Control => self.find_control(cx).await,
            AccessKind::Identity => self.find_identity(cx).await,
        }
    }

    async fn observe_recorded(
        &self,
        cx: &NodeCx<'_>,
        recorded: &RecordedIds,
    ) -> Result<Option<Observed>, Failure> {
        let cf = &cx.aws().cloudfront;
        let id = recorded.id.as_str();
        Ok(match self.kind {
            AccessKind::Control => cf
                .get_origin_access_control()
                .id(id)
                .send()
                .await
                .or_absent()?
                .and_then(|o| o.origin_access_control().cloned())
                .and_then(|c| {
                    let config = c.origin_access_control_config()?;
                    Some(Observed {
                        id: c.id().to_string(),
                        settings: control_settings(
                            config.signing_behavior(),
                            config.signing_protocol(),
                            config.origin_access_control_origin_type(),
                        ),
                        name: config.name().to_string(),
                    })
                }),
            AccessKind::Identity => cf
                .get_cloud_front_origin_access_identity()
                .id(id)
                .send()
                .await
                .or_absent()?
                .and_then(|o| o.cloud_front_origin_access_identity().cloned())
                .map(|i| {
                    let comment = i
                        .cloud_front_origin_access_identity_config()
                        .map(|c| c.comment().to_string())
                        .unwrap_or_default();
                    Observed {
                        id: i.id().to_string(),
                        settings: comment.clone(),
                        name: comment,
                    }
                }),
        })
    }

    fn attrs(&self, _cx: &NodeCx<'_>, have: &Observed) -> Result<Attrs, Failure> {
        Ok(Attrs::id(&have.id))
    }

    fn diff(
        &self,
        cx: &NodeCx<'_>,
        _inputs: &Inputs<'_>,
        have: &Observed,
        c: &mut Changes,
    ) -> Result<(), Failure> {
        c.field(
            Field::Settings,
            self.want_settings(cx),
            have.settings.clone(),
        );
        if self.kind == AccessKind::Control {
            c.field(Field::Name, access_name(cx.env_full()), have.name.clone());
        }
        Ok(())
    }

    async fn create(&self, cx: &NodeCx<'_>, _inputs: &Inputs<'_>) -> Result<Attrs, Failure> {
        let cf = &cx.aws().cloudfront;
        let id = match self.kind {
            AccessKind::Control => cf
                .create_origin_access_control()
                .origin_access_control_config(self.control_config(cx)?)
                .send()
                .await?
                .origin_access_control()
                .map(|c| c.id().to_string()),
            AccessKind::Identity => cf
                .create_cloud_front_origin_access_identity()
                .cloud_front_origin_access_identity_config(
                    CloudFrontOriginAccessIdentityConfig::builder()
                        .caller_reference(cx.run_token(&[]))
                        .comment(access_name(cx.env_full()))
                        .build()?,
                )
                .send()
                .await?
                .cloud_front_origin_access_identity()
                .map(|i| i.id().to_string()),
        };
        Ok(Attrs::id(
            id.ok_or_else(|| Failure::missing("origin access id"))?,
        ))
    }

    /// A control's settings and name; an identity's comment (found by the record's id).
    async fn update(
        &self,
        cx: &NodeCx<'_>,
        _inputs: &Inputs<'_>,
        have: &Observed,
        _changes: &[Change],
    ) -> Result<Attrs, Failure> {
        if self.kind == AccessKind::Identity {
            let cf = &cx.aws().cloudfront;
            let got = cf
                .get_cloud_front_origin_access_identity_config()
                .id(&have.id)
                .send()
                .await?;
            let reference = got
                .cloud_front_origin_access_identity_config()
                .map(|c| c.caller_reference().to_string())
                .ok_or_else(|| Failure::missing("origin access identity config"))?;
            cf.update_cloud_front_origin_access_identity()
                .id(&have.id)
                .set_if_match(got.e_tag().map(String::from))
                .cloud_front_origin_access_identity_config(
                    CloudFrontOriginAccessIdentityConfig::builder()
                        .caller_reference(reference)
                        .comment(access_name(cx.env_full()))
                        .build()?,
                )
                .send()
                .await?;
        }
        if self.kind == AccessKind::Control {
            let cf = &cx.aws().cloudfront;
            let etag = cf
                .get_origin_access_control()
                .id(&have.id)
                .send()
                .await?
                .e_tag()
                .map(String::from);
            cf.update_origin_access_control()
                .id(&have.id)
                .set_if_match(etag)
                .origin_access_control_config(self.control_config(cx)?)
                .send()
                .await?;
        }
        Ok(Attrs::id(&have.id))
    }

    /// After the distribution that used it (AWS refuses while one does).
    async fn delete(&self, cx: &NodeCx<'_>, have: &Observed) -> Result<(), Failure> {
        let cf = &cx.aws().cloudfront;
        match self.kind {
            AccessKind::Control => {
                let Some(got) = cf
                    .get_origin_access_control()
                    .id(&have.id)
                    .send()
                    .await
                    .or_absent()?
                else {
                    return Ok(());
                };
                cf.delete_origin_access_control()
                    .id(&have.id)
                    .set_if_match(got.e_tag().map(String::from))
                    .send()
                    .await
                    .or_absent()?;
            }
            AccessKind::Identity => {
                let Some(got) = cf
                    .get_cloud_front_origin_access_identity()
                    .id(&have.id)
                    .send()
                    .await
                    .or_absent()?
                else {
                    return Ok(());
                };
                cf.delete_cloud_front_origin_access_identity()
                    .id(&have.id)
                    .set_if_match(got.e_tag().map(String::from))
                    .send()
                    .await
                    .or_absent()?;
            }
        }
        Ok(())
    }
}
