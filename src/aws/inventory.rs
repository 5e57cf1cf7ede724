//! Batched finds: one tag-filtered, paginated describe per EC2 resource type per run,
//! shared by every node of that type. A converged `up` of the network layer reads EC2
//! with eight calls, whatever the number of subnets, NATs or route tables.
//!
//! Items are also checked client-side for the environment tag: not every emulator honours
//! every filter (moto ignores tag filters on NAT gateways), and a wrong match is costly.

use aws_sdk_ec2::types::{
    Address, Filter, FlowLog, InternetGateway, NatGateway, RouteTable, SecurityGroup, Subnet, Vpc,
};
use tokio::sync::OnceCell;

use super::tags::{ec2_in_env, ec2_is_node, ENV_TAG};
use crate::error::Failure;

pub struct Ec2Inventory {
    client: aws_sdk_ec2::Client,
    env_full: String,
    vpcs: OnceCell<Vec<Vpc>>,
    subnets: OnceCell<Vec<Subnet>>,
    internet_gateways: OnceCell<Vec<InternetGateway>>,
    addresses: OnceCell<Vec<Address>>,
    nat_gateways: OnceCell<Vec<NatGateway>>,
    route_tables: OnceCell<Vec<RouteTable>>,
    security_groups: OnceCell<Vec<SecurityGroup>>,
    flow_logs: OnceCell<Vec<FlowLog>>,
}

macro_rules! batched {
    ($name:ident, $ty:ty, $call:ident, $filter:ident) => {
        pub async fn $name(&self) -> Result<&[$ty], Failure> {
            self.$name
                .get_or_try_init(|| async {
                    let items: Vec<$ty> = self
                        .client
                        .$call()
                        .$filter(self.env_filter())
                        .into_paginator()
                        .items()
                        .send()
                        .collect::<Result<Vec<_>, _>>()
                        .await
                        .map_err(|e| Failure::from(e).context(stringify!($call)))?;
                    // Also checked here: some emulators ignore tag filters.
                    Ok(items
                        .into_iter()
                        .filter(|i| ec2_in_env(i.tags(), &self.env_full))
                        .collect())
                })
                .await
                .map(Vec::as_slice)
        }
    };
}

impl Ec2Inventory {
    pub fn new(client: aws_sdk_ec2::Client, env_full: String) -> Self {
        Ec2Inventory {
            client,
            env_full,
            vpcs: OnceCell::new(),
            subnets: OnceCell::new(),
            internet_gateways: OnceCell::new(),
            addresses: OnceCell::new(),
            nat_gateways: OnceCell::new(),
            route_tables: OnceCell::new(),
            security_groups: OnceCell::new(),
            flow_logs: OnceCell::new(),
        }
    }

    fn env_filter(&self) -> Filter {
        Filter::builder()
            .name(format!("tag:{ENV_TAG}"))
            .values(&self.env_full)
            .build()
    }

    batched!(vpcs, Vpc, describe_vpcs, filters);
    batched!(subnets, Subnet, describe_subnets, filters);
    batched!(
        internet_gateways,
        InternetGateway,
        describe_internet_gateways,
        filters
    );
    batched!(nat_gateways, NatGateway, describe_nat_gateways, filter);
    batched!(route_tables, RouteTable, describe_route_tables, filters);
    batched!(
        security_groups,
        SecurityGroup,
        describe_security_groups,
        filters
    );
    batched!(flow_logs, FlowLog, describe_flow_logs, filter);

    /// DescribeAddresses is not paginated.
    pub async fn addresses(&self) -> Result<&[Address], Failure> {
        self.addresses
            .get_or_try_init(|| async {
                let out = self
                    .client
                    .describe_addresses()
                    .filters(self.env_filter())
                    .send()
                    .await
                    .map_err(|e| Failure::from(e).context("DescribeAddresses"))?;
                Ok(out
                    .addresses()
                    .iter()
                    .filter(|a| ec2_in_env(a.tags(), &self.env_full))
                    .cloned()
                    .collect())
            })
            .await
            .map(Vec::as_slice)
    }

    pub fn env_full(&self) -> &str {
        &self.env_full
    }
}

/// Items of `items` tagged as `node` of environment `env_full`.
pub fn of_node<'a, T>(
    items: &'a [T],
    tags: impl Fn(&T) -> &[aws_sdk_ec2::types::Tag],
    env_full: &str,
    node: &str,
) -> Vec<&'a T> {
    items
        .iter()
        .filter(|i| ec2_is_node(tags(i), env_full, node))
        .collect()
}
