//! The VPC: CIDR from config, DNS support and hostnames on.

use async_trait::async_trait;
use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType, Vpc as AwsVpc, VpcAttributeName};

use super::{single, Ids, NodeCx, Resource};
use crate::aws::inventory::of_node;
use std::time::Duration;

use crate::aws::tags;
use crate::config::Ipv4Cidr;
use crate::diff::{Change, Changes};
use crate::error::Failure;

pub struct Vpc {
    pub cidr: Ipv4Cidr,
}

pub struct Observed {
    vpc: AwsVpc,
    dns_support: bool,
    dns_hostnames: bool,
}

impl Observed {
    fn id(&self) -> Result<&str, Failure> {
        self.vpc.vpc_id().ok_or_else(|| Failure::missing("VPC id"))
    }
}

async fn attribute(cx: &NodeCx<'_>, id: &str, name: VpcAttributeName) -> Result<bool, Failure> {
    let out = cx
        .cx
        .clients
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
    let call = cx.cx.clients.ec2.modify_vpc_attribute().vpc_id(id);
    let call = match name {
        VpcAttributeName::EnableDnsSupport => call.enable_dns_support(on),
        _ => call.enable_dns_hostnames(on),
    };
    call.send().await?;
    Ok(())
}

#[async_trait]
impl Resource for Vpc {
    type Observed = Observed;
    const KIND: &'static str = "vpc";

    async fn find(&self, cx: &NodeCx<'_>) -> Result<Option<Observed>, Failure> {
        let all = cx.cx.ec2.vpcs().await?;
        let Some(vpc) = single(
            cx,
            Self::KIND,
            of_node(all, AwsVpc::tags, &cx.env_full(), cx.node),
        ) else {
            return Ok(None);
        };
        let id = vpc.vpc_id().ok_or_else(|| Failure::missing("VPC id"))?;
        let (dns_support, dns_hostnames) = tokio::try_join!(
            attribute(cx, id, VpcAttributeName::EnableDnsSupport),
            attribute(cx, id, VpcAttributeName::EnableDnsHostnames)
        )?;
        Ok(Some(Observed {
            vpc: vpc.clone(),
            dns_support,
            dns_hostnames,
        }))
    }

    fn ids(&self, _cx: &NodeCx<'_>, have: &Observed) -> Result<Ids, Failure> {
        Ok(Ids::id(have.id()?))
    }

    fn diff(&self, cx: &NodeCx<'_>, have: &Observed) -> Result<Vec<Change>, Failure> {
        let mut c = Changes::default();
        c.immutable(
            "cidr_block",
            self.cidr.to_string().as_str(),
            have.vpc.cidr_block().unwrap_or(""),
        );
        c.field("enable_dns_support", true, have.dns_support);
        c.field("enable_dns_hostnames", true, have.dns_hostnames);
        c.tags(&cx.tags(), &tags::from_ec2(have.vpc.tags()));
        Ok(c.into_vec())
    }

    async fn create(&self, cx: &NodeCx<'_>) -> Result<Ids, Failure> {
        let out = cx
            .cx
            .clients
            .ec2
            .create_vpc()
            .cidr_block(self.cidr.to_string())
            .tag_specifications(tags::ec2_spec(ResourceType::Vpc, &cx.tags()))
            .send()
            .await?;
        let id = out
            .vpc()
            .and_then(AwsVpc::vpc_id)
            .ok_or_else(|| Failure::missing("VPC id"))?
            .to_string();
        // DNS support is on by default; hostnames are not. Both are set so a VPC found
        // half-made by the next run converges the same way.
        set_attribute(cx, &id, VpcAttributeName::EnableDnsHostnames).await?;
        Ok(Ids::id(id))
    }

    async fn update(
        &self,
        cx: &NodeCx<'_>,
        have: &Observed,
        changes: &[Change],
    ) -> Result<(), Failure> {
        let id = have.id()?;
        for ch in changes {
            match ch.field.as_str() {
                "enable_dns_support" => {
                    set_attribute(cx, id, VpcAttributeName::EnableDnsSupport).await?
                }
                "enable_dns_hostnames" => {
                    set_attribute(cx, id, VpcAttributeName::EnableDnsHostnames).await?
                }
                _ => {}
            }
        }
        super::retag_ec2(cx, id, changes).await
    }

    async fn delete(&self, cx: &NodeCx<'_>, have: &Observed) -> Result<(), Failure> {
        let id = have.id()?;
        let ec2 = &cx.cx.clients.ec2;
        // ENIs of deleted NAT gateways linger for a while after their owner is gone.
        super::ec2_delete(Duration::from_secs(300), &[], || async move {
            ec2.delete_vpc()
                .vpc_id(id)
                .send()
                .await
                .map_err(Failure::from)
        })
        .await
    }
}
