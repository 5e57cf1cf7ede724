//! The alerts topic: SNS, encrypted with the environment's key (whose policy lets CloudWatch
//! and SNS use it), tagged at creation, found by its name, with one email subscription per
//! address in config. The addresses are one set: an address added to the config is
//! subscribed, one removed is unsubscribed, and nothing else is touched.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{NodeCx, Resource};
use crate::aws::errors::OrAbsent;
use crate::aws::retry::{self, NEW_KEY_NOT_VISIBLE};
use crate::diff::{fields, has, tags_changed, Change, Changes};
use crate::error::Failure;
use crate::model::{Attrs, Inputs, Ref};
use crate::policy::{grant, Grants, On};
use crate::resources::template::Attr;

fields! {
    /// The fields a sns topic is compared on, as `plan`, `drift` and `history` name them.
    enum Field {
        KmsMasterKeyId = "kms_master_key_id",
        EmailSubscriptions = "email_subscriptions",
    }
}

const KMS_ATTRIBUTE: &str = "KmsMasterKeyId";
/// What SNS says in place of a subscription's ARN until its owner confirms it.
const PENDING: &str = "PendingConfirmation";

#[derive(Debug, Serialize, Deserialize)]
pub struct SnsTopic {
    /// Name suffix: the topic is `<project>-<env>-<suffix>`.
    pub suffix: String,
    pub key: Ref,
    /// Email addresses subscribed to it.
    pub emails: Vec<String>,
}

pub struct Observed {
    kms_key_id: Option<String>,
    /// Email address (lowercase) -> subscription ARN (or `PendingConfirmation`).
    emails: BTreeMap<String, String>,
    tags: BTreeMap<String, String>,
}

impl SnsTopic {
    fn name(&self, cx: &NodeCx<'_>) -> String {
        format!("{}-{}", cx.env_full(), self.suffix)
    }

    fn arn(&self, cx: &NodeCx<'_>) -> String {
        cx.arn("sns", &self.name(cx))
    }

    fn want_emails(&self) -> BTreeSet<String> {
        self.emails.iter().map(|e| e.to_lowercase()).collect()
    }

    fn aws_tags(cx: &NodeCx<'_>) -> Vec<aws_sdk_sns::types::Tag> {
        cx.tags()
            .iter()
            .filter_map(|(k, v)| {
                aws_sdk_sns::types::Tag::builder()
                    .key(k)
                    .value(v)
                    .build()
                    .ok()
            })
            .collect()
    }

    async fn subscribe(&self, cx: &NodeCx<'_>, arn: &str, email: &str) -> Result<(), Failure> {
        // SNS answers a repeated Subscribe with the subscription it has: idempotent.
        cx.aws()
            .sns
            .subscribe()
            .topic_arn(arn)
            .protocol("email")
            .endpoint(email)
            .send()
            .await?;
        Ok(())
    }
}

#[async_trait]
impl Resource for SnsTopic {
    type Observed = Observed;
    const KIND: &'static str = "sns_topic";
    const GRANTS: &'static Grants = &Grants {
        read: &[
            crate::policy::BULK_TAGS,
            grant(
                &[
                    "sns:GetTopicAttributes",
                    "sns:ListSubscriptionsByTopic",
                    "sns:ListTagsForResource",
                ],
                On::Arns(&["arn:${partition}:sns:${region}:${account}:${env}-${suffix}"]),
            ),
        ],
        write: &[
            grant(
                &[
                    "sns:CreateTopic",
                    "sns:Subscribe",
                    "sns:SetTopicAttributes",
                    "sns:TagResource",
                ],
                On::Arns(&["arn:${partition}:sns:${region}:${account}:${env}-${suffix}"]),
            ),
            grant(
                &["sns:Unsubscribe"],
                On::Any("Unsubscribe has no resource-level permission"),
            ),
        ],
        delete: &[grant(
            &["sns:DeleteTopic"],
            On::Arns(&["arn:${partition}:sns:${region}:${account}:${env}-${suffix}"]),
        )],
    };
    const FIELDS: &'static [&'static str] = Field::NAMES;
    const PUBLISHES: &'static [Attr] = &[Attr::Id, Attr::Arn];
    const TAGS_READ_AHEAD: bool = true;

    fn name_part(&self) -> Option<&str> {
        Some(&self.suffix)
    }

    async fn observe(&self, cx: &NodeCx<'_>) -> Result<Option<Observed>, Failure> {
        let sns = &cx.aws().sns;
        let arn = self.arn(cx);
        let Some(attributes) = sns
            .get_topic_attributes()
            .topic_arn(&arn)
            .send()
            .await
            .or_absent()?
        else {
            return Ok(None);
        };
        let kms_key_id = attributes
            .attributes()
            .and_then(|a| a.get(KMS_ATTRIBUTE))
            .filter(|k| !k.is_empty())
            .cloned();
        let mut emails = BTreeMap::new();
        let subscriptions = sns
            .list_subscriptions_by_topic()
            .topic_arn(&arn)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(Failure::from)?;
        for s in &subscriptions {
            if s.protocol() == Some("email") {
                if let (Some(endpoint), Some(sub)) = (s.endpoint(), s.subscription_arn()) {
                    emails.insert(endpoint.to_lowercase(), sub.to_string());
                }
            }
        }
        let own = async {
            let listed = sns
                .list_tags_for_resource()
                .resource_arn(&arn)
                .send()
                .await?;
            Ok(Some(
                listed
                    .tags()
                    .iter()
                    .map(|t| (t.key().to_string(), t.value().to_string()))
                    .collect(),
            ))
        };
        let Some(tags) = cx.tags_of(&arn, own).await? else {
            return Ok(None);
        };
        Ok(Some(Observed {
            kms_key_id,
            emails,
            tags,
        }))
    }

    fn planned_attrs(&self, cx: &NodeCx<'_>) -> Option<Attrs> {
        let arn = self.arn(cx);
        Some(Attrs::id(&arn).with_arn(arn))
    }

    fn attrs(&self, cx: &NodeCx<'_>, _have: &Observed) -> Result<Attrs, Failure> {
        let arn = self.arn(cx);
        Ok(Attrs::id(&arn).with_arn(arn))
    }

    fn diff(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &Observed,
        c: &mut Changes,
    ) -> Result<(), Failure> {
        c.field(
            Field::KmsMasterKeyId,
            inputs.arn(&self.key)?,
            have.kms_key_id.as_deref().unwrap_or("(none)"),
        );
        let want: Vec<String> = self.want_emails().into_iter().collect();
        // An unconfirmed subscription of an address the config no longer has cannot be
        // removed (SNS refuses; it lapses after 3 days): not a change `up` could make.
        let live: Vec<String> = have
            .emails
            .iter()
            .filter(|(email, sub)| *sub != PENDING || want.contains(email))
            .map(|(email, _)| email.clone())
            .collect();
        c.set(Field::EmailSubscriptions, &want, &live);
        c.tags(cx.tags(), &have.tags);
        Ok(())
    }

    async fn create(&self, cx: &NodeCx<'_>, inputs: &Inputs<'_>) -> Result<Attrs, Failure> {
        let sns = &cx.aws().sns;
        let key = inputs.arn(&self.key)?;
        // CreateTopic is idempotent by name (with the same attributes and tags).
        let arn = retry::on(&[&NEW_KEY_NOT_VISIBLE], || async {
            Ok(sns
                .create_topic()
                .name(self.name(cx))
                .attributes(KMS_ATTRIBUTE, key)
                .set_tags(Some(Self::aws_tags(cx)))
                .send()
                .await?
                .topic_arn()
                .map(str::to_string)
                .unwrap_or_else(|| self.arn(cx)))
        })
        .await?;
        for email in self.want_emails() {
            self.subscribe(cx, &arn, &email).await?;
        }
        Ok(Attrs::id(&arn).with_arn(arn))
    }

    async fn update(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &Observed,
        changes: &[Change],
    ) -> Result<Attrs, Failure> {
        let sns = &cx.aws().sns;
        let arn = self.arn(cx);
        if has(changes, Field::KmsMasterKeyId) {
            sns.set_topic_attributes()
                .topic_arn(&arn)
                .attribute_name(KMS_ATTRIBUTE)
                .attribute_value(inputs.arn(&self.key)?)
                .send()
                .await?;
        }
        if has(changes, Field::EmailSubscriptions) {
            let want = self.want_emails();
            for email in want.iter().filter(|e| !have.emails.contains_key(*e)) {
                self.subscribe(cx, &arn, email).await?;
            }
            let extra = have
                .emails
                .iter()
                .filter(|(e, sub)| !want.contains(*e) && *sub != PENDING);
            for (_, sub) in extra {
                sns.unsubscribe().subscription_arn(sub).send().await?;
            }
        }
        if tags_changed(changes) {
            sns.tag_resource()
                .resource_arn(&arn)
                .set_tags(Some(Self::aws_tags(cx)))
                .send()
                .await?;
        }
        Ok(Attrs::id(&arn).with_arn(arn))
    }

    async fn delete(&self, cx: &NodeCx<'_>, _have: &Observed) -> Result<(), Failure> {
        // Its subscriptions go with it.
        cx.aws()
            .sns
            .delete_topic()
            .topic_arn(self.arn(cx))
            .send()
            .await
            .or_absent()?;
        Ok(())
    }
}
