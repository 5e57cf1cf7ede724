//! Subnets: public (ALB, NAT), private with egress (ECS), isolated (Aurora), one per zone.

use async_trait::async_trait;
use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType, Subnet as AwsSubnet};
use serde::{Deserialize, Serialize};

use super::{ec2_delete, output_item, NodeCx, Resource};
use crate::aws::tags;
use crate::config::Ipv4Cidr;
use crate::diff::{fields, has, tags_changed, Change, Changes};
use crate::error::Failure;
use crate::model::{Attrs, Inputs, Output, RecordedIds, Ref};
use crate::policy::{grant, Grants, On, EC2_DESCRIBE};

fields! {
    /// The fields a subnet is compared on, as `plan`, `drift` and `history` name them.
    enum Field {
        VpcId = "vpc_id",
        CidrBlock = "cidr_block",
        AvailabilityZone = "availability_zone",
        MapPublicIpOnLaunch = "map_public_ip_on_launch",
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Subnet {
    pub vpc: Ref,
    pub cidr: Ipv4Cidr,
    pub zone: String,
    /// `public`, `private` or `isolated`.
    pub tier: String,
}

fn subnet_id(s: &AwsSubnet) -> Result<&str, Failure> {
    s.subnet_id().ok_or_else(|| Failure::missing("subnet id"))
}

#[async_trait]
impl Resource for Subnet {
    type Observed = AwsSubnet;
    const KIND: &'static str = "subnet";
    const GRANTS: &'static Grants = &Grants {
        read: &[grant(&["ec2:DescribeSubnets"], On::Any(EC2_DESCRIBE))],
        write: &[
            grant(&["ec2:CreateSubnet"], On::Creating),
            grant(&["ec2:CreateTags"], On::TagOnCreate("ec2:CreateAction")),
            grant(&["ec2:ModifySubnetAttribute", "ec2:CreateTags"], On::Tagged),
        ],
        delete: &[grant(&["ec2:DeleteSubnet"], On::Tagged)],
    };
    const FIELDS: &'static [&'static str] = Field::NAMES;

    async fn observe(&self, cx: &NodeCx<'_>) -> Result<Option<AwsSubnet>, Failure> {
        cx.ec2_find(Self::KIND).await
    }

    async fn observe_recorded(
        &self,
        cx: &NodeCx<'_>,
        recorded: &RecordedIds,
    ) -> Result<Option<AwsSubnet>, Failure> {
        cx.ec2_recorded(Self::KIND, recorded).await
    }

    fn attrs(&self, _cx: &NodeCx<'_>, have: &AwsSubnet) -> Result<Attrs, Failure> {
        Ok(Attrs::id(subnet_id(have)?))
    }

    fn diff(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &AwsSubnet,
        c: &mut Changes,
    ) -> Result<(), Failure> {
        c.immutable(
            Field::VpcId,
            inputs.id(&self.vpc)?,
            have.vpc_id().unwrap_or(""),
        );
        c.immutable(
            Field::CidrBlock,
            self.cidr.to_string().as_str(),
            have.cidr_block().unwrap_or(""),
        );
        c.immutable(
            Field::AvailabilityZone,
            self.zone.as_str(),
            have.availability_zone().unwrap_or(""),
        );
        c.field(
            Field::MapPublicIpOnLaunch,
            false,
            have.map_public_ip_on_launch().unwrap_or(false),
        );
        c.tags(cx.tags(), &tags::from_ec2(have.tags()));
        Ok(())
    }

    async fn create(&self, cx: &NodeCx<'_>, inputs: &Inputs<'_>) -> Result<Attrs, Failure> {
        let out = cx
            .aws()
            .ec2
            .create_subnet()
            .vpc_id(inputs.id(&self.vpc)?)
            .cidr_block(self.cidr.to_string())
            .availability_zone(&self.zone)
            .tag_specifications(tags::ec2_spec(ResourceType::Subnet, cx.tags()))
            .send()
            .await?;
        Ok(Attrs::id(subnet_id(
            out.subnet().ok_or_else(|| Failure::missing("subnet"))?,
        )?))
    }

    async fn update(
        &self,
        cx: &NodeCx<'_>,
        _inputs: &Inputs<'_>,
        have: &AwsSubnet,
        changes: &[Change],
    ) -> Result<Attrs, Failure> {
        let id = subnet_id(have)?;
        if has(changes, Field::MapPublicIpOnLaunch) {
            cx.aws()
                .ec2
                .modify_subnet_attribute()
                .subnet_id(id)
                .map_public_ip_on_launch(AttributeBooleanValue::builder().value(false).build())
                .send()
                .await?;
        }
        if tags_changed(changes) {
            tags::retag_ec2(&cx.aws().ec2, id, cx.tags()).await?;
        }
        Ok(Attrs::id(id))
    }

    async fn delete(&self, cx: &NodeCx<'_>, have: &AwsSubnet) -> Result<(), Failure> {
        let id = subnet_id(have)?;
        let ec2 = &cx.aws().ec2;
        // A deleted NAT gateway's ENI stays in the subnet for a minute or two.
        ec2_delete(&[], || async move {
            ec2.delete_subnet()
                .subnet_id(id)
                .send()
                .await
                .map_err(Failure::from)
        })
        .await
    }

    fn outputs(&self, attrs: &Attrs) -> Vec<Output> {
        let key = match self.tier.as_str() {
            "public" => "public_subnet_ids",
            "private" => "private_subnet_ids",
            _ => "isolated_subnet_ids",
        };
        vec![output_item(key, &attrs.id)]
    }
}
