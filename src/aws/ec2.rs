//! One generic find-by-tag for EC2: per run, one tag-filtered, paginated describe per EC2
//! resource type, shared by every node of that type. A converged run reads EC2 with one call
//! per type, whatever the number of subnets, NAT gateways or route tables.
//!
//! Items are also checked client-side for the environment tag: not every emulator honours
//! every filter (moto ignores tag filters on NAT gateways), and a wrong match is costly.

use async_trait::async_trait;
use aws_sdk_ec2::types::{
    Address, Filter, FlowLog, InternetGateway, NatGateway, RouteTable, SecurityGroup, Subnet, Tag,
    Vpc,
};
use aws_sdk_ec2::Client;
use tokio::sync::OnceCell;

use super::shared::Shared;
use super::tags::{ENV_TAG, NODE_TAG};
use crate::error::Failure;

/// An EC2 resource type found by the environment's tags.
#[async_trait]
pub trait Ec2Item: Clone + Send + Sync + 'static {
    fn tags(&self) -> &[Tag];
    /// Every item the filter matches, all pages.
    async fn describe(client: &Client, filter: Filter) -> Result<Vec<Self>, Failure>;
}

macro_rules! paginated {
    ($ty:ty, $call:ident, $filter:ident) => {
        #[async_trait]
        impl Ec2Item for $ty {
            fn tags(&self) -> &[Tag] {
                <$ty>::tags(self)
            }
            async fn describe(client: &Client, filter: Filter) -> Result<Vec<Self>, Failure> {
                client
                    .$call()
                    .$filter(filter)
                    .into_paginator()
                    .items()
                    .send()
                    .collect::<Result<Vec<_>, _>>()
                    .await
                    .map_err(|e| Failure::from(e).context(stringify!($call)))
            }
        }
    };
}

paginated!(Vpc, describe_vpcs, filters);
paginated!(Subnet, describe_subnets, filters);
paginated!(InternetGateway, describe_internet_gateways, filters);
paginated!(NatGateway, describe_nat_gateways, filter);
paginated!(RouteTable, describe_route_tables, filters);
paginated!(SecurityGroup, describe_security_groups, filters);
paginated!(FlowLog, describe_flow_logs, filter);

/// DescribeAddresses is not paginated.
#[async_trait]
impl Ec2Item for Address {
    fn tags(&self) -> &[Tag] {
        Address::tags(self)
    }
    async fn describe(client: &Client, filter: Filter) -> Result<Vec<Self>, Failure> {
        let out = client
            .describe_addresses()
            .filters(filter)
            .send()
            .await
            .map_err(|e| Failure::from(e).context("describe_addresses"))?;
        Ok(out.addresses().to_vec())
    }
}

/// The run's one describe of `T` for the environment.
struct Batch<T>(OnceCell<Vec<T>>);

impl<T> Default for Batch<T> {
    fn default() -> Self {
        Batch(OnceCell::new())
    }
}

fn has_tag(tags: &[Tag], key: &str, value: &str) -> bool {
    tags.iter()
        .any(|t| t.key() == Some(key) && t.value() == Some(value))
}

/// Every `T` of the environment (described once per run).
pub async fn of_env<T: Ec2Item>(
    shared: &Shared,
    client: &Client,
    env_full: &str,
) -> Result<Vec<T>, Failure> {
    let batch = shared.get::<Batch<T>>();
    let all = batch
        .0
        .get_or_try_init(|| async {
            let filter = Filter::builder()
                .name(format!("tag:{ENV_TAG}"))
                .values(env_full)
                .build();
            let items = T::describe(client, filter).await?;
            Ok::<_, Failure>(
                items
                    .into_iter()
                    .filter(|i| has_tag(i.tags(), ENV_TAG, env_full))
                    .collect(),
            )
        })
        .await?;
    Ok(all.clone())
}

/// Every `T` tagged as `node` of the environment.
pub async fn tagged_as<T: Ec2Item>(
    shared: &Shared,
    client: &Client,
    env_full: &str,
    node: &str,
) -> Result<Vec<T>, Failure> {
    Ok(of_env::<T>(shared, client, env_full)
        .await?
        .into_iter()
        .filter(|i| has_tag(i.tags(), NODE_TAG, node))
        .collect())
}
