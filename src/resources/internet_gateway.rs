//! The internet gateway, created and attached in one step: dependents (NAT gateways, the
//! public route, an internet-facing ALB) need it attached, and get that with its id
//! (PLATFORM.md: "internet gateway -> NAT gateway ...: after AttachInternetGateway returns").

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::types::{InternetGateway as AwsIgw, ResourceType};

use super::{single, Ids, NodeCx, Resource};
use crate::aws::inventory::of_node;
use crate::aws::tags;
use crate::diff::{Change, Changes};
use crate::error::Failure;

pub struct InternetGateway {
    pub vpc: String,
}

fn attached_vpc(igw: &AwsIgw) -> Option<&str> {
    igw.attachments().iter().find_map(|a| a.vpc_id())
}

async fn attach(cx: &NodeCx<'_>, igw: &str, vpc: &str) -> Result<(), Failure> {
    match cx
        .cx
        .clients
        .ec2
        .attach_internet_gateway()
        .internet_gateway_id(igw)
        .vpc_id(vpc)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) => {
            let f = Failure::from(e);
            // Attached by an earlier, interrupted run.
            if f.code == "Resource.AlreadyAssociated" {
                Ok(())
            } else {
                Err(f)
            }
        }
    }
}

#[async_trait]
impl Resource for InternetGateway {
    type Observed = AwsIgw;
    const KIND: &'static str = "internet_gateway";

    async fn find(&self, cx: &NodeCx<'_>) -> Result<Option<AwsIgw>, Failure> {
        let all = cx.cx.ec2.internet_gateways().await?;
        Ok(single(
            cx,
            Self::KIND,
            of_node(all, AwsIgw::tags, &cx.env_full(), cx.node),
        )
        .cloned())
    }

    fn ids(&self, _cx: &NodeCx<'_>, have: &AwsIgw) -> Result<Ids, Failure> {
        Ok(Ids::id(
            have.internet_gateway_id()
                .ok_or_else(|| Failure::missing("internet gateway id"))?,
        ))
    }

    fn diff(&self, cx: &NodeCx<'_>, have: &AwsIgw) -> Result<Vec<Change>, Failure> {
        let vpc = cx.ids_of(&self.vpc)?;
        let mut c = Changes::default();
        c.field(
            "attached_vpc",
            vpc.id.as_str(),
            attached_vpc(have).unwrap_or("(none)"),
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
            .create_internet_gateway()
            .tag_specifications(tags::ec2_spec(ResourceType::InternetGateway, &cx.tags()))
            .send()
            .await?;
        let id = out
            .internet_gateway()
            .and_then(AwsIgw::internet_gateway_id)
            .ok_or_else(|| Failure::missing("internet gateway id"))?
            .to_string();
        attach(cx, &id, &vpc.id).await?;
        Ok(Ids::id(id))
    }

    async fn update(
        &self,
        cx: &NodeCx<'_>,
        have: &AwsIgw,
        changes: &[Change],
    ) -> Result<(), Failure> {
        let id = have
            .internet_gateway_id()
            .ok_or_else(|| Failure::missing("internet gateway id"))?;
        if changes.iter().any(|c| c.field == "attached_vpc") {
            if let Some(other) = attached_vpc(have) {
                cx.cx
                    .clients
                    .ec2
                    .detach_internet_gateway()
                    .internet_gateway_id(id)
                    .vpc_id(other)
                    .send()
                    .await?;
            }
            attach(cx, id, &cx.ids_of(&self.vpc)?.id).await?;
        }
        super::retag_ec2(cx, id, changes).await
    }

    async fn delete(&self, cx: &NodeCx<'_>, have: &AwsIgw) -> Result<(), Failure> {
        let id = have
            .internet_gateway_id()
            .ok_or_else(|| Failure::missing("internet gateway id"))?;
        let ec2 = &cx.cx.clients.ec2;
        if let Some(vpc) = attached_vpc(have) {
            // Fails with DependencyViolation while the VPC still has mapped public addresses
            // (NAT gateways being deleted).
            super::ec2_delete(Duration::from_secs(300), &[], || async move {
                ec2.detach_internet_gateway()
                    .internet_gateway_id(id)
                    .vpc_id(vpc)
                    .send()
                    .await
                    .map_err(Failure::from)
            })
            .await?;
        }
        super::ec2_delete(Duration::from_secs(120), &[], || async move {
            ec2.delete_internet_gateway()
                .internet_gateway_id(id)
                .send()
                .await
                .map_err(Failure::from)
        })
        .await
    }
}
