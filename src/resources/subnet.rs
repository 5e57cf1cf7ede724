//! Subnets: public (ALB, NAT), private with egress (ECS), isolated (Aurora), one per zone.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::types::{ResourceType, Subnet as AwsSubnet};

use super::{single, Ids, NodeCx, Resource};
use crate::aws::inventory::of_node;
use crate::aws::tags;
use crate::config::Ipv4Cidr;
use crate::diff::{Change, Changes};
use crate::error::Failure;

pub struct Subnet {
    /// Node id of the VPC.
    pub vpc: String,
    pub cidr: Ipv4Cidr,
    pub zone: String,
}

#[async_trait]
impl Resource for Subnet {
    type Observed = AwsSubnet;
    const KIND: &'static str = "subnet";

    async fn find(&self, cx: &NodeCx<'_>) -> Result<Option<AwsSubnet>, Failure> {
        let all = cx.cx.ec2.subnets().await?;
        Ok(single(
            cx,
            Self::KIND,
            of_node(all, AwsSubnet::tags, &cx.env_full(), cx.node),
        )
        .cloned())
    }

    fn ids(&self, _cx: &NodeCx<'_>, have: &AwsSubnet) -> Result<Ids, Failure> {
        Ok(Ids::id(
            have.subnet_id()
                .ok_or_else(|| Failure::missing("subnet id"))?,
        ))
    }

    fn diff(&self, cx: &NodeCx<'_>, have: &AwsSubnet) -> Result<Vec<Change>, Failure> {
        let vpc = cx.ids_of(&self.vpc)?;
        let mut c = Changes::default();
        c.immutable("vpc_id", vpc.id.as_str(), have.vpc_id().unwrap_or(""));
        c.immutable(
            "cidr_block",
            self.cidr.to_string().as_str(),
            have.cidr_block().unwrap_or(""),
        );
        c.immutable(
            "availability_zone",
            self.zone.as_str(),
            have.availability_zone().unwrap_or(""),
        );
        c.field(
            "map_public_ip_on_launch",
            false,
            have.map_public_ip_on_launch().unwrap_or(false),
        );
        c.tags(&cx.tags(), &tags::from_ec2(have.tags()));
        Ok(c.into_vec())
    }

    async fn create(&self, cx: &NodeCx<'_>) -> Result<Ids, Failure> {
        let vpc = cx.ids_of(&self.vpc)?;
        let out = cx
            .cx
            .clients
            .ec2
            .create_subnet()
            .vpc_id(vpc.id)
            .cidr_block(self.cidr.to_string())
            .availability_zone(&self.zone)
            .tag_specifications(tags::ec2_spec(ResourceType::Subnet, &cx.tags()))
            .send()
            .await?;
        let id = out
            .subnet()
            .and_then(AwsSubnet::subnet_id)
            .ok_or_else(|| Failure::missing("subnet id"))?;
        Ok(Ids::id(id))
    }

    async fn update(
        &self,
        cx: &NodeCx<'_>,
        have: &AwsSubnet,
        changes: &[Change],
    ) -> Result<(), Failure> {
        let id = have
            .subnet_id()
            .ok_or_else(|| Failure::missing("subnet id"))?;
        if changes.iter().any(|c| c.field == "map_public_ip_on_launch") {
            cx.cx
                .clients
                .ec2
                .modify_subnet_attribute()
                .subnet_id(id)
                .map_public_ip_on_launch(
                    aws_sdk_ec2::types::AttributeBooleanValue::builder()
                        .value(false)
                        .build(),
                )
                .send()
                .await?;
        }
        super::retag_ec2(cx, id, changes).await
    }

    async fn delete(&self, cx: &NodeCx<'_>, have: &AwsSubnet) -> Result<(), Failure> {
        let id = have
            .subnet_id()
            .ok_or_else(|| Failure::missing("subnet id"))?;
        let ec2 = &cx.cx.clients.ec2;
        // A deleted NAT gateway's ENI stays in the subnet for a minute or two.
        super::ec2_delete(Duration::from_secs(300), &[], || async move {
            ec2.delete_subnet()
                .subnet_id(id)
                .send()
                .await
                .map_err(Failure::from)
        })
        .await
    }
}
