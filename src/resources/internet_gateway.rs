//! The internet gateway, created and attached in one step: dependents (NAT gateways, the
//! public route, an internet-facing ALB) need it attached, and get that with its id
//! (PLATFORM.md: "internet gateway -> NAT gateway ...: after AttachInternetGateway returns").

use async_trait::async_trait;
use aws_sdk_ec2::types::{InternetGateway as AwsIgw, ResourceType};
use serde::{Deserialize, Serialize};

use super::{ec2_delete, NodeCx, Resource};
use crate::aws::tags;
use crate::diff::{fields, has, tags_changed, Change, Changes};
use crate::error::Failure;
use crate::model::{Attrs, Inputs, RecordedIds, Ref};
use crate::policy::{grant, Grants, On, EC2_DESCRIBE};

fields! {
    /// The fields an internet gateway is compared on, as `plan`, `drift` and `history` name them.
    enum Field {
        AttachedVpc = "attached_vpc",
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct InternetGateway {
    pub vpc: Ref,
}

fn igw_id(igw: &AwsIgw) -> Result<&str, Failure> {
    igw.internet_gateway_id()
        .ok_or_else(|| Failure::missing("internet gateway id"))
}

fn attached_vpc(igw: &AwsIgw) -> Option<&str> {
    igw.attachments().iter().find_map(|a| a.vpc_id())
}

async fn attach(cx: &NodeCx<'_>, igw: &str, vpc: &str) -> Result<(), Failure> {
    let result = cx
        .aws()
        .ec2
        .attach_internet_gateway()
        .internet_gateway_id(igw)
        .vpc_id(vpc)
        .send()
        .await
        .map_err(Failure::from);
    match result {
        // Attached by an earlier, interrupted run.
        Err(f) if f.code == "Resource.AlreadyAssociated" => Ok(()),
        other => other.map(|_| ()),
    }
}

#[async_trait]
impl Resource for InternetGateway {
    type Observed = AwsIgw;
    const KIND: &'static str = "internet_gateway";
    const GRANTS: &'static Grants = &Grants {
        read: &[grant(
            &["ec2:DescribeInternetGateways"],
            On::Any(EC2_DESCRIBE),
        )],
        write: &[
            grant(&["ec2:CreateInternetGateway"], On::Creating),
            grant(&["ec2:CreateTags"], On::TagOnCreate("ec2:CreateAction")),
            grant(
                &[
                    "ec2:AttachInternetGateway",
                    "ec2:DetachInternetGateway",
                    "ec2:CreateTags",
                ],
                On::Tagged,
            ),
        ],
        delete: &[grant(
            &["ec2:DetachInternetGateway", "ec2:DeleteInternetGateway"],
            On::Tagged,
        )],
    };
    const FIELDS: &'static [&'static str] = Field::NAMES;

    async fn observe(&self, cx: &NodeCx<'_>) -> Result<Option<AwsIgw>, Failure> {
        cx.ec2_find(Self::KIND).await
    }

    async fn observe_recorded(
        &self,
        cx: &NodeCx<'_>,
        recorded: &RecordedIds,
    ) -> Result<Option<AwsIgw>, Failure> {
        cx.ec2_recorded(Self::KIND, recorded).await
    }

    fn attrs(&self, _cx: &NodeCx<'_>, have: &AwsIgw) -> Result<Attrs, Failure> {
        Ok(Attrs::id(igw_id(have)?))
    }

    fn diff(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &AwsIgw,
        c: &mut Changes,
    ) -> Result<(), Failure> {
        c.field(
            Field::AttachedVpc,
            inputs.id(&self.vpc)?,
            attached_vpc(have).unwrap_or("(none)"),
        );
        c.tags(cx.tags(), &tags::from_ec2(have.tags()));
        Ok(())
    }

    async fn create(&self, cx: &NodeCx<'_>, inputs: &Inputs<'_>) -> Result<Attrs, Failure> {
        let out = cx
            .aws()
            .ec2
            .create_internet_gateway()
            .tag_specifications(tags::ec2_spec(ResourceType::InternetGateway, cx.tags()))
            .send()
            .await?;
        let id = igw_id(
            out.internet_gateway()
                .ok_or_else(|| Failure::missing("internet gateway"))?,
        )?
        .to_string();
        attach(cx, &id, inputs.id(&self.vpc)?).await?;
        Ok(Attrs::id(id))
    }

    async fn update(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &AwsIgw,
        changes: &[Change],
    ) -> Result<Attrs, Failure> {
        let id = igw_id(have)?;
        if has(changes, Field::AttachedVpc) {
            if let Some(other) = attached_vpc(have) {
                cx.aws()
                    .ec2
                    .detach_internet_gateway()
                    .internet_gateway_id(id)
                    .vpc_id(other)
                    .send()
                    .await?;
            }
            attach(cx, id, inputs.id(&self.vpc)?).await?;
        }
        if tags_changed(changes) {
            tags::retag_ec2(&cx.aws().ec2, id, cx.tags()).await?;
        }
        Ok(Attrs::id(id))
    }

    async fn delete(&self, cx: &NodeCx<'_>, have: &AwsIgw) -> Result<(), Failure> {
        let id = igw_id(have)?;
        let ec2 = &cx.aws().ec2;
        if let Some(vpc) = attached_vpc(have) {
            // DependencyViolation while the VPC still has mapped public addresses (NAT
            // gateways being deleted).
            ec2_delete(&[], || async move {
                let out = ec2
                    .detach_internet_gateway()
                    .internet_gateway_id(id)
                    .vpc_id(vpc)
                    .send()
                    .await
                    .map_err(Failure::from);
                match out {
                    // Detached already: by this call's earlier attempt, whose answer was lost.
                    Err(f) if f.code == "Gateway.NotAttached" => Ok(()),
                    other => other.map(|_| ()),
                }
            })
            .await?;
        }
        ec2_delete(&[], || async move {
            ec2.delete_internet_gateway()
                .internet_gateway_id(id)
                .send()
                .await
                .map_err(Failure::from)
        })
        .await
    }
}
