//! The VPC: CIDR from config, DNS support and hostnames on.

use async_trait::async_trait;
use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType, Vpc as AwsVpc, VpcAttributeName};
use serde::{Deserialize, Serialize};

use super::{ec2_delete, output, NodeCx, Resource};
use crate::aws::tags;
use crate::config::Ipv4Cidr;
use crate::diff::{fields, has, tags_changed, Change, Changes};
use crate::error::Failure;
use crate::model::{Attrs, Inputs, Output, RecordedIds};
use crate::policy::{grant, Grants, On, EC2_DESCRIBE};

fields! {
    /// The fields a vpc is compared on, as `plan`, `drift` and `history` name them.
    enum Field {
        CidrBlock = "cidr_block",
        EnableDnsSupport = "enable_dns_support",
        EnableDnsHostnames = "enable_dns_hostnames",
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Vpc {
    pub cidr: Ipv4Cidr,
}

pub struct Observed {
    vpc: AwsVpc,
    dns_support: bool,
    dns_hostnames: bool,
}

fn vpc_id(vpc: &AwsVpc) -> Result<&str, Failure> {
    vpc.vpc_id().ok_or_else(|| Failure::missing("VPC id"))
}

async fn attribute(cx: &NodeCx<'_>, id: &str, name: VpcAttributeName) -> Result<bool, Failure> {
    let out = cx
        .aws()
        .ec2
        .describe_vpc_attribute()
        .vpc_id(id)
        .attribute(name.clone())
        .send()
        .await?;
    let value = match name {
        VpcAttributeName::EnableDnsSupport => out.enable_dns_support(),
        _ => out.enable_dns_hostnames(),
    };
    Ok(value
        .and_then(AttributeBooleanValue::value)
        .unwrap_or(false))
}

async fn set_attribute(cx: &NodeCx<'_>, id: &str, name: VpcAttributeName) -> Result<(), Failure> {
    let on = AttributeBooleanValue::builder().value(true).build();
    let call = cx.aws().ec2.modify_vpc_attribute().vpc_id(id);
    let call = match name {
        VpcAttributeName::EnableDnsSupport => call.enable_dns_support(on),
        _ => call.enable_dns_hostnames(on),
    };
    call.send().await?;
    Ok(())
}

/// A VPC with the attributes `diff` reads.
async fn observed(cx: &NodeCx<'_>, vpc: AwsVpc) -> Result<Observed, Failure> {
    let id = vpc_id(&vpc)?;
    let (dns_support, dns_hostnames) = tokio::try_join!(
        attribute(cx, id, VpcAttributeName::EnableDnsSupport),
        attribute(cx, id, VpcAttributeName::EnableDnsHostnames)
    )?;
    Ok(Observed {
        vpc,
        dns_support,
        dns_hostnames,
    })
}

#[async_trait]
impl Resource for Vpc {
    type Observed = Observed;
    const KIND: &'static str = "vpc";
    const GRANTS: &'static Grants = &Grants {
        read: &[grant(
            &["ec2:DescribeVpcs", "ec2:DescribeVpcAttribute"],
            On::Any(EC2_DESCRIBE),
        )],
        write: &[
            grant(&["ec2:CreateVpc"], On::Creating),
            grant(&["ec2:CreateTags"], On::TagOnCreate("ec2:CreateAction")),
            grant(&["ec2:ModifyVpcAttribute", "ec2:CreateTags"], On::Tagged),
        ],
        delete: &[grant(&["ec2:DeleteVpc"], On::Tagged)],
    };
    const FIELDS: &'static [&'static str] = Field::NAMES;

    async fn observe(&self, cx: &NodeCx<'_>) -> Result<Option<Observed>, Failure> {
        let all = crate::aws::ec2::tagged_as::<AwsVpc>(
            &cx.cx.shared,
            &cx.aws().ec2,
            cx.env_full(),
            cx.node,
        )
        .await?;
        // Each read in full (one, unless someone made a duplicate), so `down` can delete all.
        let mut found = Vec::new();
        for vpc in all {
            found.push(observed(cx, vpc).await?);
        }
        Ok(cx.single(Self::KIND, found))
    }

    async fn observe_recorded(
        &self,
        cx: &NodeCx<'_>,
        recorded: &RecordedIds,
    ) -> Result<Option<Observed>, Failure> {
        match cx.ec2_recorded::<AwsVpc>(Self::KIND, recorded).await? {
            Some(vpc) => Ok(Some(observed(cx, vpc).await?)),
            None => Ok(None),
        }
    }

    fn attrs(&self, _cx: &NodeCx<'_>, have: &Observed) -> Result<Attrs, Failure> {
        Ok(Attrs::id(vpc_id(&have.vpc)?))
    }

    fn diff(
        &self,
        cx: &NodeCx<'_>,
        _inputs: &Inputs<'_>,
        have: &Observed,
        c: &mut Changes,
    ) -> Result<(), Failure> {
        c.immutable(
            Field::CidrBlock,
            self.cidr.to_string().as_str(),
            have.vpc.cidr_block().unwrap_or(""),
        );
        c.field(Field::EnableDnsSupport, true, have.dns_support);
        c.field(Field::EnableDnsHostnames, true, have.dns_hostnames);
        c.tags(cx.tags(), &tags::from_ec2(have.vpc.tags()));
        Ok(())
    }

    async fn create(&self, cx: &NodeCx<'_>, inputs: &Inputs<'_>) -> Result<Attrs, Failure> {
        let out = cx
            .aws()
            .ec2
            .create_vpc()
            .cidr_block(self.cidr.to_string())
            .tag_specifications(tags::ec2_spec(ResourceType::Vpc, cx.tags()))
            .send()
            .await?;
        let id = vpc_id(out.vpc().ok_or_else(|| Failure::missing("VPC"))?)?.to_string();
        // Subnets, groups and the gateway need only the id: they start while this sets DNS
        // hostnames (nothing here needs them before it exists: no interface endpoints).
        inputs.publish(&Attrs::id(id.clone()));
        // DNS support is on by default; hostnames are not. A VPC found half-made by the next
        // run (killed here) has its hostnames set by `update`.
        set_attribute(cx, &id, VpcAttributeName::EnableDnsHostnames).await?;
        Ok(Attrs::id(id))
    }

    async fn update(
        &self,
        cx: &NodeCx<'_>,
        _inputs: &Inputs<'_>,
        have: &Observed,
        changes: &[Change],
    ) -> Result<Attrs, Failure> {
        let id = vpc_id(&have.vpc)?;
        if has(changes, Field::EnableDnsSupport) {
            set_attribute(cx, id, VpcAttributeName::EnableDnsSupport).await?;
        }
        if has(changes, Field::EnableDnsHostnames) {
            set_attribute(cx, id, VpcAttributeName::EnableDnsHostnames).await?;
        }
        if tags_changed(changes) {
            tags::retag_ec2(&cx.aws().ec2, id, cx.tags()).await?;
        }
        Ok(Attrs::id(id))
    }

    async fn delete(&self, cx: &NodeCx<'_>, have: &Observed) -> Result<(), Failure> {
        let id = vpc_id(&have.vpc)?;
        let ec2 = &cx.aws().ec2;
        // ENIs of deleted NAT gateways linger for a while after their owner is gone.
        ec2_delete(&[], || async move {
            ec2.delete_vpc()
                .vpc_id(id)
                .send()
                .await
                .map_err(Failure::from)
        })
        .await
    }

    fn outputs(&self, attrs: &Attrs) -> Vec<Output> {
        vec![output("vpc_id", &attrs.id)]
    }
}
