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
    /// The describe filter that names one item by its id (`vpc-id`, `group-id`).
    const ID_FILTER: &'static str;
    fn tags(&self) -> &[Tag];
    /// Its id (`vpc-…`, `eipalloc-…`).
    fn id(&self) -> Option<&str>;
    /// Every item the filter matches, all pages.
    async fn describe(client: &Client, filter: Filter) -> Result<Vec<Self>, Failure>;
}

macro_rules! paginated {
    ($ty:ty, $call:ident, $filter:ident, $id:ident, $id_filter:literal) => {
        #[async_trait]
        impl Ec2Item for $ty {
            const ID_FILTER: &'static str = $id_filter;
            fn tags(&self) -> &[Tag] {
                <$ty>::tags(self)
            }
            fn id(&self) -> Option<&str> {
                <$ty>::$id(self)
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

paginated!(Vpc, describe_vpcs, filters, vpc_id, "vpc-id");
paginated!(Subnet, describe_subnets, filters, subnet_id, "subnet-id");
paginated!(
    InternetGateway,
    describe_internet_gateways,
    filters,
    internet_gateway_id,
    "internet-gateway-id"
);
paginated!(
    NatGateway,
    describe_nat_gateways,
    filter,
    nat_gateway_id,
    "nat-gateway-id"
);
paginated!(
    RouteTable,
    describe_route_tables,
    filters,
    route_table_id,
    "route-table-id"
);
paginated!(
    SecurityGroup,
    describe_security_groups,
    filters,
    group_id,
    "group-id"
);
paginated!(
    FlowLog,
    describe_flow_logs,
    filter,
    flow_log_id,
    "flow-log-id"
);

/// DescribeAddresses is not paginated.
#[async_trait]
impl Ec2Item for Address {
    const ID_FILTER: &'static str = "allocation-id";
    fn tags(&self) -> &[Tag] {
        Address::tags(self)
    }
    fn id(&self) -> Option<&str> {
        self.allocation_id()
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

/// The item with id `id`, whatever its tags (the applied record's identifiers); `None` when
/// it does not exist. An id filter rather than the id list, so a missing one is an empty
/// answer, not an error.
pub async fn by_id<T: Ec2Item>(client: &Client, id: &str) -> Result<Option<T>, Failure> {
    let filter = Filter::builder().name(T::ID_FILTER).values(id).build();
    Ok(T::describe(client, filter)
        .await?
        .into_iter()
        .find(|i| i.id() == Some(id)))
}
