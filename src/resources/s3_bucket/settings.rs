//! The calls that set each of a bucket's settings, and the emptying of a bucket; each may run
//! twice (they set, they do not add).

use std::collections::BTreeMap;

use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketVersioningStatus, Delete,
    ExpirationStatus, LifecycleExpiration, LifecycleRule, LifecycleRuleFilter,
    NoncurrentVersionExpiration, ObjectIdentifier, OwnershipControls, OwnershipControlsRule,
    PublicAccessBlockConfiguration, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule, VersioningConfiguration,
};

use super::{Lifecycle, S3Bucket, LIFECYCLE_RULE};
use crate::aws::errors::OrAbsent;
use crate::aws::tags;
use crate::error::Failure;
use crate::model::Inputs;
use crate::resources::NodeCx;

impl S3Bucket {
    pub(super) async fn put_public_access_block(
        &self,
        cx: &NodeCx<'_>,
        name: &str,
    ) -> Result<(), Failure> {
        cx.aws()
            .s3
            .put_public_access_block()
            .bucket(name)
            .public_access_block_configuration(
                PublicAccessBlockConfiguration::builder()
                    .block_public_acls(true)
                    .ignore_public_acls(true)
                    .block_public_policy(true)
                    .restrict_public_buckets(true)
                    .build(),
            )
            .send()
            .await?;
        Ok(())
    }

    pub(super) async fn put_versioning(&self, cx: &NodeCx<'_>, name: &str) -> Result<(), Failure> {
        let status = if self.versioning {
            BucketVersioningStatus::Enabled
        } else {
            BucketVersioningStatus::Suspended
        };
        cx.aws()
            .s3
            .put_bucket_versioning()
            .bucket(name)
            .versioning_configuration(VersioningConfiguration::builder().status(status).build())
            .send()
            .await?;
        Ok(())
    }

    pub(super) async fn put_encryption(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        name: &str,
    ) -> Result<(), Failure> {
        let (algorithm, key) = self.want_encryption(inputs)?;
        let default = ServerSideEncryptionByDefault::builder()
            .sse_algorithm(ServerSideEncryption::from(algorithm.as_str()))
            .set_kms_master_key_id(key)
            .build()
            .map_err(|e| Failure::new("InvalidInput", e.to_string()))?;
        let config = ServerSideEncryptionConfiguration::builder()
            .rules(
                ServerSideEncryptionRule::builder()
                    .apply_server_side_encryption_by_default(default)
                    .bucket_key_enabled(true)
                    .build(),
            )
            .build()
            .map_err(|e| Failure::new("InvalidInput", e.to_string()))?;
        cx.aws()
            .s3
            .put_bucket_encryption()
            .bucket(name)
            .server_side_encryption_configuration(config)
            .send()
            .await?;
        Ok(())
    }

    pub(super) async fn put_policy(&self, cx: &NodeCx<'_>, name: &str) -> Result<(), Failure> {
        cx.aws()
            .s3
            .put_bucket_policy()
            .bucket(name)
            .policy(self.policy(cx).to_string())
            .send()
            .await?;
        Ok(())
    }

    pub(super) async fn put_ownership(&self, cx: &NodeCx<'_>, name: &str) -> Result<(), Failure> {
        let controls = OwnershipControls::builder()
            .rules(
                OwnershipControlsRule::builder()
                    .object_ownership(self.ownership())
                    .build()
                    .map_err(|e| Failure::new("InvalidInput", e.to_string()))?,
            )
            .build()
            .map_err(|e| Failure::new("InvalidInput", e.to_string()))?;
        cx.aws()
            .s3
            .put_bucket_ownership_controls()
            .bucket(name)
            .ownership_controls(controls)
            .send()
            .await?;
        Ok(())
    }

    pub(super) async fn put_lifecycle(&self, cx: &NodeCx<'_>, name: &str) -> Result<(), Failure> {
        let s3 = &cx.aws().s3;
        let l = &self.lifecycle;
        // A spec without lifecycle rules leaves the bucket's lifecycle alone.
        if *l == Lifecycle::default() {
            return Ok(());
        }
        let mut rule = LifecycleRule::builder()
            .id(LIFECYCLE_RULE)
            .status(ExpirationStatus::Enabled)
            .filter(LifecycleRuleFilter::builder().prefix("").build());
        if let Some(days) = l.expire_days {
            rule = rule.expiration(LifecycleExpiration::builder().days(days).build());
        }
        if let Some(days) = l.noncurrent_expire_days {
            rule = rule.noncurrent_version_expiration(
                NoncurrentVersionExpiration::builder()
                    .noncurrent_days(days)
                    .build(),
            );
        }
        if let Some(days) = l.abort_incomplete_upload_days {
            rule = rule.abort_incomplete_multipart_upload(
                AbortIncompleteMultipartUpload::builder()
                    .days_after_initiation(days)
                    .build(),
            );
        }
        let config = BucketLifecycleConfiguration::builder()
            .rules(
                rule.build()
                    .map_err(|e| Failure::new("InvalidInput", e.to_string()))?,
            )
            .build()
            .map_err(|e| Failure::new("InvalidInput", e.to_string()))?;
        s3.put_bucket_lifecycle_configuration()
            .bucket(name)
            .lifecycle_configuration(config)
            .send()
            .await?;
        Ok(())
    }

    /// Sets our tags. PutBucketTagging replaces the whole set, so the tags others put beside
    /// ours (`keep`) are sent again.
    pub(super) async fn put_tags(
        &self,
        cx: &NodeCx<'_>,
        name: &str,
        keep: &BTreeMap<String, String>,
    ) -> Result<(), Failure> {
        let mut all = cx.tags().clone();
        for (k, v) in keep {
            if !all.iter().any(|(ours, _)| ours == k) && !k.starts_with("aws:") {
                all.push((k.clone(), v.clone()));
            }
        }
        cx.aws()
            .s3
            .put_bucket_tagging()
            .bucket(name)
            .tagging(tags::s3(&all)?)
            .send()
            .await?;
        Ok(())
    }

    /// Deletes every object version and delete marker, a thousand at a time.
    pub(super) async fn empty(&self, cx: &NodeCx<'_>, name: &str) -> Result<usize, Failure> {
        let s3 = &cx.aws().s3;
        let mut deleted = 0;
        loop {
            let Some(page) = s3
                .list_object_versions()
                .bucket(name)
                .send()
                .await
                .or_absent()?
            else {
                return Ok(deleted);
            };
            let ids: Vec<ObjectIdentifier> = page
                .versions()
                .iter()
                .filter_map(|v| Some((v.key()?, v.version_id())))
                .chain(
                    page.delete_markers()
                        .iter()
                        .filter_map(|m| Some((m.key()?, m.version_id()))),
                )
                .take(1000)
                .filter_map(|(key, version)| {
                    ObjectIdentifier::builder()
                        .key(key)
                        .set_version_id(version.map(String::from))
                        .build()
                        .ok()
                })
                .collect();
            if ids.is_empty() {
                return Ok(deleted);
            }
            deleted += ids.len();
            let delete = Delete::builder()
                .set_objects(Some(ids))
                .quiet(true)
                .build()
                .map_err(|e| Failure::new("InvalidInput", e.to_string()))?;
            s3.delete_objects()
                .bucket(name)
                .delete(delete)
                .send()
                .await?;
        }
    }
}
