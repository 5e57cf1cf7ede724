//! The tags every resource carries, conversions to and from each service's tag type, and
//! the re-tag call of each service (made when a diff names a tag).

use std::collections::{BTreeMap, HashMap};

use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};

use crate::config::EnvConfig;
use crate::error::Failure;

/// Identity tag naming the environment (`tap-prod`); every find filters on it.
pub const ENV_TAG: &str = "tap:environment";
/// Identity tag naming the node of the step graph (`nat-a`).
pub const NODE_TAG: &str = "tap:node";

/// A node's tags, in a stable order.
pub type Tags = Vec<(String, String)>;

/// Environment, Project, CostCenter, the two identity tags and a Name for the console.
pub fn standard(env: &EnvConfig, node: &str) -> Tags {
    vec![
        ("Name".into(), format!("{}-{node}", env.full_name())),
        ("Environment".into(), env.env.clone()),
        ("Project".into(), env.project.clone()),
        ("CostCenter".into(), env.cost_center.clone()),
        (ENV_TAG.into(), env.full_name()),
        (NODE_TAG.into(), node.into()),
    ]
}

/// Whether a resource's identity tags name `env_full` and `node`: it is that node's.
pub fn ours(tags: &BTreeMap<String, String>, env_full: &str, node: &str) -> bool {
    tags.get(ENV_TAG).is_some_and(|v| v == env_full)
        && tags.get(NODE_TAG).is_some_and(|v| v == node)
}

/// What a resource's identity tags say when they name another environment or node than
/// `env_full`/`node` (a resource found by the applied record's identifiers is never taken
/// from someone else); `None` when they name this one, or are gone.
pub fn claimed_elsewhere(
    tags: &BTreeMap<String, String>,
    env_full: &str,
    node: &str,
) -> Option<String> {
    let env = tags.get(ENV_TAG).filter(|v| *v != env_full);
    let other = tags.get(NODE_TAG).filter(|v| *v != node);
    match (env, other) {
        (None, None) => None,
        (e, n) => Some(format!(
            "{ENV_TAG}={} {NODE_TAG}={}",
            e.map_or(env_full, String::as_str),
            n.or(tags.get(NODE_TAG)).map_or("(absent)", String::as_str)
        )),
    }
}

/// The error for a resource the applied record names that now says it belongs elsewhere.
pub fn claimed_error(kind: &str, id: &str, env_full: &str, node: &str, says: &str) -> Failure {
    Failure::new(
        "ClaimedElsewhere",
        format!(
            "the applied record names {kind} {id} as {env_full}/{node}, but its tags now say {says}. \
             tap-provision does not take it back, nor make another: restore its tags \
             ({ENV_TAG}={env_full}, {NODE_TAG}={node}) if it is this environment's, or, if it was \
             given away on purpose, remove the node's entry from the applied record (or move the \
             record aside) and run again"
        ),
    )
}

fn invalid(e: impl std::fmt::Display) -> Failure {
    Failure::new("InvalidTag", e.to_string())
}

/// Tags as a map (CloudWatch Logs, AWS Backup).
pub fn map(tags: &Tags) -> HashMap<String, String> {
    tags.iter().cloned().collect()
}

/// A service's tag map as compared.
pub fn from_map(tags: Option<&HashMap<String, String>>) -> BTreeMap<String, String> {
    tags.map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

pub fn ec2(tags: &Tags) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// Tags for the create call itself, so the resource never exists untagged.
pub fn ec2_spec(resource: ResourceType, tags: &Tags) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(resource)
        .set_tags(Some(ec2(tags)))
        .build()
}

/// `from_<service>` for a service whose tag's key and value are optional in the SDK: a tag
/// without a key is dropped, one without a value has the empty value.
macro_rules! optional_tags {
    ($from:ident, $ty:ty) => {
        pub fn $from(tags: &[$ty]) -> BTreeMap<String, String> {
            tags.iter()
                .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())))
                .collect()
        }
    };
}

/// `from_<service>` for a service whose tag always has a key and may lack a value: a tag
/// without a value has the empty value.
macro_rules! optional_value_tags {
    ($from:ident, $ty:ty) => {
        pub fn $from(tags: &[$ty]) -> BTreeMap<String, String> {
            tags.iter()
                .map(|t| (t.key().to_string(), t.value().unwrap_or("").to_string()))
                .collect()
        }
    };
}

optional_value_tags!(from_acm, aws_sdk_acm::types::Tag);
optional_value_tags!(from_cloudfront, aws_sdk_cloudfront::types::Tag);

optional_tags!(from_elb, aws_sdk_elasticloadbalancingv2::types::Tag);
optional_tags!(from_cloudwatch, aws_sdk_cloudwatch::types::Tag);
optional_tags!(from_secretsmanager, aws_sdk_secretsmanager::types::Tag);

optional_tags!(from_ec2, Tag);

pub fn kms(tags: &Tags) -> Result<Vec<aws_sdk_kms::types::Tag>, Failure> {
    tags.iter()
        .map(|(k, v)| {
            aws_sdk_kms::types::Tag::builder()
                .tag_key(k)
                .tag_value(v)
                .build()
                .map_err(invalid)
        })
        .collect()
}

pub fn from_kms(tags: &[aws_sdk_kms::types::Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .map(|t| (t.tag_key().to_string(), t.tag_value().to_string()))
        .collect()
}

/// A service's tag pair, `to` and `from`, where the tag's builder checks `key` and `value`.
macro_rules! checked_tags {
    ($to:ident, $from:ident, $ty:ty) => {
        pub fn $to(tags: &Tags) -> Result<Vec<$ty>, Failure> {
            tags.iter()
                .map(|(k, v)| <$ty>::builder().key(k).value(v).build().map_err(invalid))
                .collect()
        }

        pub fn $from(tags: &[$ty]) -> BTreeMap<String, String> {
            tags.iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect()
        }
    };
}

checked_tags!(iam, from_iam, aws_sdk_iam::types::Tag);
// Schedule groups (schedules take no tags).
checked_tags!(scheduler, from_scheduler, aws_sdk_scheduler::types::Tag);

pub fn rds(tags: &Tags) -> Vec<aws_sdk_rds::types::Tag> {
    tags.iter()
        .map(|(k, v)| aws_sdk_rds::types::Tag::builder().key(k).value(v).build())
        .collect()
}

optional_tags!(from_rds, aws_sdk_rds::types::Tag);

pub fn s3(tags: &Tags) -> Result<aws_sdk_s3::types::Tagging, Failure> {
    let set = tags
        .iter()
        .map(|(k, v)| {
            aws_sdk_s3::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(invalid)
        })
        .collect::<Result<Vec<_>, _>>()?;
    aws_sdk_s3::types::Tagging::builder()
        .set_tag_set(Some(set))
        .build()
        .map_err(invalid)
}

pub fn from_s3(tags: &[aws_sdk_s3::types::Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect()
}

pub fn route53(tags: &Tags) -> Vec<aws_sdk_route53::types::Tag> {
    tags.iter()
        .map(|(k, v)| {
            aws_sdk_route53::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
        })
        .collect()
}

optional_tags!(from_route53, aws_sdk_route53::types::Tag);

/// Re-applies `tags` to an EC2 resource (CreateTags overwrites values, adds missing keys).
pub async fn retag_ec2(client: &aws_sdk_ec2::Client, id: &str, tags: &Tags) -> Result<(), Failure> {
    client
        .create_tags()
        .resources(id)
        .set_tags(Some(ec2(tags)))
        .send()
        .await?;
    Ok(())
}

/// Re-applies `tags` to an RDS resource by ARN.
pub async fn retag_rds(
    client: &aws_sdk_rds::Client,
    arn: &str,
    tags: &Tags,
) -> Result<(), Failure> {
    client
        .add_tags_to_resource()
        .resource_name(arn)
        .set_tags(Some(rds(tags)))
        .send()
        .await?;
    Ok(())
}

/// Re-applies `tags` to a KMS key.
pub async fn retag_kms(
    client: &aws_sdk_kms::Client,
    key_id: &str,
    tags: &Tags,
) -> Result<(), Failure> {
    client
        .tag_resource()
        .key_id(key_id)
        .set_tags(Some(kms(tags)?))
        .send()
        .await?;
    Ok(())
}

/// Re-applies `tags` to an IAM role.
pub async fn retag_iam_role(
    client: &aws_sdk_iam::Client,
    role: &str,
    tags: &Tags,
) -> Result<(), Failure> {
    client
        .tag_role()
        .role_name(role)
        .set_tags(Some(iam(tags)?))
        .send()
        .await?;
    Ok(())
}

/// Re-applies `tags` to a CloudWatch Logs resource by ARN.
pub async fn retag_logs(
    client: &aws_sdk_cloudwatchlogs::Client,
    arn: &str,
    tags: &Tags,
) -> Result<(), Failure> {
    client
        .tag_resource()
        .resource_arn(arn)
        .set_tags(Some(map(tags)))
        .send()
        .await?;
    Ok(())
}

/// Re-applies `tags` to a Route53 hosted zone (`Z…`, without `/hostedzone/`).
pub async fn retag_route53_zone(
    client: &aws_sdk_route53::Client,
    zone_id: &str,
    tags: &Tags,
) -> Result<(), Failure> {
    client
        .change_tags_for_resource()
        .resource_type(aws_sdk_route53::types::TagResourceType::Hostedzone)
        .resource_id(zone_id)
        .set_add_tags(Some(route53(tags)))
        .send()
        .await?;
    Ok(())
}

/// Re-applies `tags` to an AWS Backup resource by ARN.
pub async fn retag_backup(
    client: &aws_sdk_backup::Client,
    arn: &str,
    tags: &Tags,
) -> Result<(), Failure> {
    client
        .tag_resource()
        .resource_arn(arn)
        .set_tags(Some(map(tags)))
        .send()
        .await?;
    Ok(())
}

/// ECS's tag type.
pub fn ecs(tags: &Tags) -> Vec<aws_sdk_ecs::types::Tag> {
    tags.iter()
        .map(|(k, v)| aws_sdk_ecs::types::Tag::builder().key(k).value(v).build())
        .collect()
}

optional_tags!(from_ecs, aws_sdk_ecs::types::Tag);

/// Re-applies `tags` to an ECS resource by ARN (cluster, service, task definition).
pub async fn retag_ecs(
    client: &aws_sdk_ecs::Client,
    arn: &str,
    tags: &Tags,
) -> Result<(), Failure> {
    client
        .tag_resource()
        .resource_arn(arn)
        .set_tags(Some(ecs(tags)))
        .send()
        .await?;
    Ok(())
}

/// Re-applies `tags` to a schedule group by ARN.
pub async fn retag_scheduler(
    client: &aws_sdk_scheduler::Client,
    arn: &str,
    tags: &Tags,
) -> Result<(), Failure> {
    client
        .tag_resource()
        .resource_arn(arn)
        .set_tags(Some(scheduler(tags)?))
        .send()
        .await?;
    Ok(())
}

/// Re-applies `tags` to an Application Auto Scaling scalable target by ARN.
pub async fn retag_autoscaling(
    client: &aws_sdk_applicationautoscaling::Client,
    arn: &str,
    tags: &Tags,
) -> Result<(), Failure> {
    client
        .tag_resource()
        .resource_arn(arn)
        .set_tags(Some(map(tags)))
        .send()
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resource_tagged_for_another_environment_or_node_is_claimed() {
        let tags = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(claimed_elsewhere(&tags(&[]), "tap-prod", "vpc"), None);
        assert_eq!(
            claimed_elsewhere(
                &tags(&[(ENV_TAG, "tap-prod"), (NODE_TAG, "vpc")]),
                "tap-prod",
                "vpc"
            ),
            None
        );
        assert_eq!(
            claimed_elsewhere(&tags(&[(ENV_TAG, "tap-other")]), "tap-prod", "vpc").as_deref(),
            Some("tap:environment=tap-other tap:node=(absent)")
        );
        assert!(
            claimed_elsewhere(&tags(&[(NODE_TAG, "subnet-a")]), "tap-prod", "vpc")
                .is_some_and(|s| s.contains("tap:node=subnet-a"))
        );
    }
}
