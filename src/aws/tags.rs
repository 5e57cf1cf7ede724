//! The tags every resource carries, and conversions to each service's tag type.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};

use crate::config::EnvConfig;
use crate::error::Failure;

/// Identity tag naming the environment (`tap-prod`); every find filters on it.
pub const ENV_TAG: &str = "tap:environment";
/// Identity tag naming the node of the step graph (`nat-a`).
pub const NODE_TAG: &str = "tap:node";

/// Environment, Project, CostCenter, the two identity tags and a Name for the console.
pub fn standard(env: &EnvConfig, node: &str) -> Vec<(String, String)> {
    vec![
        ("Name".into(), format!("{}-{node}", env.full_name())),
        ("Environment".into(), env.env.clone()),
        ("Project".into(), env.project.clone()),
        ("CostCenter".into(), env.cost_center.clone()),
        (ENV_TAG.into(), env.full_name()),
        (NODE_TAG.into(), node.into()),
    ]
}

pub fn ec2_tags(tags: &[(String, String)]) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// Tags for the create call itself, so the resource never exists untagged.
pub fn ec2_spec(resource: ResourceType, tags: &[(String, String)]) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(resource)
        .set_tags(Some(ec2_tags(tags)))
        .build()
}

pub fn from_ec2(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())))
        .collect()
}

/// True when EC2 tags carry this environment's identity and this node's.
pub fn ec2_is_node(tags: &[Tag], env_full: &str, node: &str) -> bool {
    let has = |k: &str, v: &str| {
        tags.iter()
            .any(|t| t.key() == Some(k) && t.value() == Some(v))
    };
    has(ENV_TAG, env_full) && has(NODE_TAG, node)
}

/// True when EC2 tags carry this environment's identity.
pub fn ec2_in_env(tags: &[Tag], env_full: &str) -> bool {
    tags.iter()
        .any(|t| t.key() == Some(ENV_TAG) && t.value() == Some(env_full))
}

fn invalid(e: impl std::fmt::Display) -> Failure {
    Failure::new("InvalidTag", e.to_string())
}

pub fn kms_tags(tags: &[(String, String)]) -> Result<Vec<aws_sdk_kms::types::Tag>, Failure> {
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

pub fn iam_tags(tags: &[(String, String)]) -> Result<Vec<aws_sdk_iam::types::Tag>, Failure> {
    tags.iter()
        .map(|(k, v)| {
            aws_sdk_iam::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(invalid)
        })
        .collect()
}

pub fn rds_tags(tags: &[(String, String)]) -> Vec<aws_sdk_rds::types::Tag> {
    tags.iter()
        .map(|(k, v)| aws_sdk_rds::types::Tag::builder().key(k).value(v).build())
        .collect()
}

pub fn from_rds(tags: &[aws_sdk_rds::types::Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())))
        .collect()
}
