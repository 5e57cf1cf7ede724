//! Secrets Manager secrets whose value the tool writes from other nodes' attributes: the DB
//! connection coordinates (host, port, database name) the backend gets as container secrets
//! beside the user and password of the RDS-managed secret. Encrypted with the environment's
//! key, tagged at creation, found by name. The value holds no credential, so `plan` and
//! `drift` may show it; a secret scheduled for deletion out of band is drift that `repair`
//! restores.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::template::{render, Attr, Template};
use super::{NodeCx, Resource};
use crate::aws::errors::{CreatedBy, OrAbsent, OrExists, Required};
use crate::aws::retry::{self, NEW_KEY_NOT_VISIBLE};
use crate::diff::{fields, has, tags_changed, Change, Changes};
use crate::error::Failure;
use crate::model::{Attrs, Inputs, Ref};
use crate::policy::{grant, Grants, On};

fields! {
    /// The fields a secret is compared on, as `plan`, `drift` and `history` name them.
    enum Field {
        ScheduledForDeletion = "scheduled_for_deletion",
        KmsKeyId = "kms_key_id",
        Description = "description",
        Value = "value",
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Secret {
    /// Name suffix: the secret is `<project>-<env>/<suffix>`.
    pub suffix: String,
    pub description: String,
    /// The JSON value, with `${node.attr}` placeholders ([`render`]).
    pub value: Template,
    pub key: Ref,
}

pub struct Observed {
    arn: String,
    kms_key_id: Option<String>,
    description: Option<String>,
    /// Set when someone deleted it with a recovery window: it can be restored until then.
    scheduled_for_deletion: bool,
    /// The current value; `None` while scheduled for deletion (AWS refuses to read it).
    value: Option<Value>,
    tags: BTreeMap<String, String>,
}

impl Secret {
    fn name(&self, cx: &NodeCx<'_>) -> String {
        format!("{}/{}", cx.env_full(), self.suffix)
    }

    fn rendered(&self, cx: &NodeCx<'_>, inputs: &Inputs<'_>) -> Result<String, Failure> {
        let value = render(&self.value, cx.scope(), inputs)?;
        Ok(value.to_string())
    }

    fn aws_tags(cx: &NodeCx<'_>) -> Vec<aws_sdk_secretsmanager::types::Tag> {
        cx.tags()
            .iter()
            .map(|(k, v)| {
                aws_sdk_secretsmanager::types::Tag::builder()
                    .key(k)
                    .value(v)
                    .build()
            })
            .collect()
    }
}

#[async_trait]
impl Resource for Secret {
    type Observed = Observed;
    const KIND: &'static str = "secret";
    const GRANTS: &'static Grants = &Grants {
        read: &[grant(
            &[
                "secretsmanager:DescribeSecret",
                "secretsmanager:GetSecretValue",
            ],
            On::Arns(&["arn:${partition}:secretsmanager:${region}:${account}:secret:${env}/*"]),
        )],
        write: &[grant(
            &[
                "secretsmanager:CreateSecret",
                "secretsmanager:RestoreSecret",
                "secretsmanager:UpdateSecret",
                "secretsmanager:PutSecretValue",
                "secretsmanager:TagResource",
            ],
            On::Arns(&["arn:${partition}:secretsmanager:${region}:${account}:secret:${env}/*"]),
        )],
        delete: &[grant(
            &["secretsmanager:DeleteSecret"],
            On::Arns(&["arn:${partition}:secretsmanager:${region}:${account}:secret:${env}/*"]),
        )],
    };
    const FIELDS: &'static [&'static str] = Field::NAMES;
    const PUBLISHES: &'static [Attr] = &[Attr::Id, Attr::Arn];

    async fn observe(&self, cx: &NodeCx<'_>) -> Result<Option<Observed>, Failure> {
        let sm = &cx.aws().secretsmanager;
        let name = self.name(cx);
        let Some(found) = sm
            .describe_secret()
            .secret_id(&name)
            .send()
            .await
            .or_absent()?
        else {
            return Ok(None);
        };
        let scheduled_for_deletion = found.deleted_date().is_some();
        let value = if scheduled_for_deletion {
            None
        } else {
            sm.get_secret_value()
                .secret_id(&name)
                .send()
                .await
                .or_absent()?
                .and_then(|v| v.secret_string().map(str::to_string))
                // A value that is not JSON differs from any spec: keep it as a string.
                .map(|s| serde_json::from_str(&s).unwrap_or(Value::String(s)))
        };
        let tags = crate::aws::tags::from_secretsmanager(found.tags());
        Ok(Some(Observed {
            arn: found.arn().required("secret ARN")?.to_string(),
            kms_key_id: found.kms_key_id().map(str::to_string),
            description: found.description().map(str::to_string),
            scheduled_for_deletion,
            value,
            tags,
        }))
    }

    fn attrs(&self, cx: &NodeCx<'_>, have: &Observed) -> Result<Attrs, Failure> {
        Ok(Attrs::id(self.name(cx)).with_arn(&have.arn))
    }

    fn diff(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &Observed,
        c: &mut Changes,
    ) -> Result<(), Failure> {
        c.field(
            Field::ScheduledForDeletion,
            false,
            have.scheduled_for_deletion,
        );
        c.field(
            Field::KmsKeyId,
            inputs.arn(&self.key)?,
            have.kms_key_id.as_deref().unwrap_or("(aws/secretsmanager)"),
        );
        c.field(
            Field::Description,
            self.description.as_str(),
            have.description.as_deref().unwrap_or(""),
        );
        if let Some(live) = &have.value {
            let want: Value = serde_json::from_str(&self.rendered(cx, inputs)?)
                .map_err(|e| Failure::new("BadTemplate", e.to_string()))?;
            c.confidential(Field::Value, want.to_string(), live.to_string());
        }
        c.tags(cx.tags(), &have.tags);
        Ok(())
    }

    async fn create(&self, cx: &NodeCx<'_>, inputs: &Inputs<'_>) -> Result<Attrs, Failure> {
        let sm = &cx.aws().secretsmanager;
        let name = self.name(cx);
        let value = self.rendered(cx, inputs)?;
        let key = inputs.arn(&self.key)?;
        // The token is the first version's id: a retried call with the same value is
        // answered with that version, not a second secret.
        let token = cx.token(&[&value], 64);
        let made = retry::on(&[&NEW_KEY_NOT_VISIBLE], || async {
            sm.create_secret()
                .name(&name)
                .description(&self.description)
                .kms_key_id(key)
                .secret_string(&value)
                .client_request_token(&token)
                .set_tags(Some(Self::aws_tags(cx)))
                .send()
                .await
                .or_exists(CreatedBy::SecretsManager)
        })
        .await?;
        let arn = match made {
            Some(m) => m.arn().required("secret ARN")?.to_string(),
            // Made by an interrupted run of this one: find its ARN.
            None => sm
                .describe_secret()
                .secret_id(&name)
                .send()
                .await?
                .arn()
                .required("secret ARN")?
                .to_string(),
        };
        Ok(Attrs::id(name).with_arn(arn))
    }

    async fn update(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &Observed,
        changes: &[Change],
    ) -> Result<Attrs, Failure> {
        let sm = &cx.aws().secretsmanager;
        let name = self.name(cx);
        if have.scheduled_for_deletion {
            sm.restore_secret().secret_id(&name).send().await?;
        }
        if has(changes, Field::KmsKeyId) || has(changes, Field::Description) {
            sm.update_secret()
                .secret_id(&name)
                .kms_key_id(inputs.arn(&self.key)?)
                .description(&self.description)
                .send()
                .await?;
        }
        // Restored, its value is what it held before; compare once more in the next run.
        if has(changes, Field::Value) {
            let value = self.rendered(cx, inputs)?;
            sm.put_secret_value()
                .secret_id(&name)
                .secret_string(&value)
                .client_request_token(cx.run_token(&[&value]) + &cx.run_token(&["version"]))
                .send()
                .await?;
        }
        if tags_changed(changes) {
            sm.tag_resource()
                .secret_id(&name)
                .set_tags(Some(Self::aws_tags(cx)))
                .send()
                .await?;
        }
        Ok(Attrs::id(name).with_arn(&have.arn))
    }

    async fn delete(&self, cx: &NodeCx<'_>, _have: &Observed) -> Result<(), Failure> {
        // It holds only what the tool derives from other nodes: nothing to recover.
        cx.aws()
            .secretsmanager
            .delete_secret()
            .secret_id(self.name(cx))
            .force_delete_without_recovery(true)
            .send()
            .await
            .or_absent()?;
        Ok(())
    }
}
