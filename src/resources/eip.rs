//! Elastic IPs for the NAT gateways.

use async_trait::async_trait;
use aws_sdk_ec2::types::{Address, DomainType, ResourceType};
use serde::{Deserialize, Serialize};

use super::{ec2_delete, NodeCx, Resource};
use crate::aws::retry::EIP_STILL_ASSOCIATED;
use crate::aws::tags;
use crate::diff::{tags_changed, Change, Changes};
use crate::error::Failure;
use crate::model::{Attrs, Inputs, RecordedIds};
use crate::policy::{grant, Grants, On, EC2_DESCRIBE};

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ElasticIp {}

fn allocation_id(a: &Address) -> Result<&str, Failure> {
    a.allocation_id()
        .ok_or_else(|| Failure::missing("allocation id"))
}

#[async_trait]
impl Resource for ElasticIp {
    type Observed = Address;
    const KIND: &'static str = "elastic_ip";
    const GRANTS: &'static Grants = &Grants {
        read: &[grant(&["ec2:DescribeAddresses"], On::Any(EC2_DESCRIBE))],
        write: &[
            grant(&["ec2:AllocateAddress"], On::Creating),
            grant(&["ec2:CreateTags"], On::TagOnCreate("ec2:CreateAction")),
            grant(&["ec2:CreateTags"], On::Tagged),
        ],
        delete: &[grant(&["ec2:ReleaseAddress"], On::Tagged)],
    };

    async fn observe(&self, cx: &NodeCx<'_>) -> Result<Option<Address>, Failure> {
        cx.ec2_find(Self::KIND).await
    }

    async fn observe_recorded(
        &self,
        cx: &NodeCx<'_>,
        recorded: &RecordedIds,
    ) -> Result<Option<Address>, Failure> {
        cx.ec2_recorded(Self::KIND, recorded).await
    }

    fn attrs(&self, _cx: &NodeCx<'_>, have: &Address) -> Result<Attrs, Failure> {
        let mut a = Attrs::id(allocation_id(have)?);
        a.name = have.public_ip().map(String::from);
        Ok(a)
    }

    fn diff(
        &self,
        cx: &NodeCx<'_>,
        _inputs: &Inputs<'_>,
        have: &Address,
        c: &mut Changes,
    ) -> Result<(), Failure> {
        c.tags(cx.tags(), &tags::from_ec2(have.tags()));
        Ok(())
    }

    async fn create(&self, cx: &NodeCx<'_>, _inputs: &Inputs<'_>) -> Result<Attrs, Failure> {
        let out = cx
            .aws()
            .ec2
            .allocate_address()
            .domain(DomainType::Vpc)
            .tag_specifications(tags::ec2_spec(ResourceType::ElasticIp, cx.tags()))
            .send()
            .await?;
        let mut a = Attrs::id(
            out.allocation_id()
                .ok_or_else(|| Failure::missing("allocation id"))?,
        );
        a.name = out.public_ip().map(String::from);
        Ok(a)
    }

    async fn update(
        &self,
        cx: &NodeCx<'_>,
        _inputs: &Inputs<'_>,
        have: &Address,
        changes: &[Change],
    ) -> Result<Attrs, Failure> {
        if tags_changed(changes) {
            tags::retag_ec2(&cx.aws().ec2, allocation_id(have)?, cx.tags()).await?;
        }
        self.attrs(cx, have)
    }

    async fn delete(&self, cx: &NodeCx<'_>, have: &Address) -> Result<(), Failure> {
        let id = allocation_id(have)?;
        let ec2 = &cx.aws().ec2;
        // The NAT gateway releases its association once it is `deleted`.
        ec2_delete(&[&EIP_STILL_ASSOCIATED], || async move {
            ec2.release_address()
                .allocation_id(id)
                .send()
                .await
                .map_err(Failure::from)
        })
        .await
    }
}
