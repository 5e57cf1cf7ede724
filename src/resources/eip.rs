//! Elastic IPs for the NAT gateways.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::types::{Address, DomainType, ResourceType};

use super::{single, Ids, NodeCx, Resource};
use crate::aws::inventory::of_node;
use crate::aws::tags;
use crate::diff::{Change, Changes};
use crate::error::Failure;

pub struct ElasticIp;

#[async_trait]
impl Resource for ElasticIp {
    type Observed = Address;
    const KIND: &'static str = "elastic_ip";

    async fn find(&self, cx: &NodeCx<'_>) -> Result<Option<Address>, Failure> {
        let all = cx.cx.ec2.addresses().await?;
        Ok(single(
            cx,
            Self::KIND,
            of_node(all, Address::tags, &cx.env_full(), cx.node),
        )
        .cloned())
    }

    fn ids(&self, _cx: &NodeCx<'_>, have: &Address) -> Result<Ids, Failure> {
        Ok(Ids::id(
            have.allocation_id()
                .ok_or_else(|| Failure::missing("allocation id"))?,
        ))
    }

    fn diff(&self, cx: &NodeCx<'_>, have: &Address) -> Result<Vec<Change>, Failure> {
        let mut c = Changes::default();
        c.tags(&cx.tags(), &tags::from_ec2(have.tags()));
        Ok(c.into_vec())
    }

    async fn create(&self, cx: &NodeCx<'_>) -> Result<Ids, Failure> {
        let out = cx
            .cx
            .clients
            .ec2
            .allocate_address()
            .domain(DomainType::Vpc)
            .tag_specifications(tags::ec2_spec(ResourceType::ElasticIp, &cx.tags()))
            .send()
            .await?;
        Ok(Ids::id(
            out.allocation_id()
                .ok_or_else(|| Failure::missing("allocation id"))?,
        ))
    }

    async fn update(
        &self,
        cx: &NodeCx<'_>,
        have: &Address,
        changes: &[Change],
    ) -> Result<(), Failure> {
        let id = have
            .allocation_id()
            .ok_or_else(|| Failure::missing("allocation id"))?;
        super::retag_ec2(cx, id, changes).await
    }

    async fn delete(&self, cx: &NodeCx<'_>, have: &Address) -> Result<(), Failure> {
        let id = have
            .allocation_id()
            .ok_or_else(|| Failure::missing("allocation id"))?;
        let ec2 = &cx.cx.clients.ec2;
        // The NAT gateway releases its association shortly after it is deleted.
        super::ec2_delete(
            Duration::from_secs(180),
            &["InvalidIPAddress.InUse"],
            || async move {
                ec2.release_address()
                    .allocation_id(id)
                    .send()
                    .await
                    .map_err(Failure::from)
            },
        )
        .await
    }
}
