//! NAT gateways, one per zone (or one in all, outside prod), each with its Elastic IP.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::types::{NatGateway as AwsNat, NatGatewayState, ResourceType};

use super::{single, Ids, NodeCx, Resource};
use crate::aws::errors::OrAbsent;
use crate::aws::inventory::of_node;
use crate::aws::tags;
use crate::aws::wait::{self, Poll};
use crate::diff::{Change, Changes};
use crate::error::Failure;

pub struct NatGateway {
    pub subnet: String,
    pub eip: String,
}

/// Readiness of a NAT gateway from its state (pure).
pub fn nat_ready(state: Option<&NatGatewayState>, failure: Option<&str>) -> Poll {
    match state {
        Some(NatGatewayState::Available) => Poll::Ready,
        Some(NatGatewayState::Pending) | None => Poll::Pending("pending".into()),
        Some(other) => Poll::Failed(format!(
            "state `{}`: {}",
            other.as_str(),
            failure.unwrap_or("no reason given")
        )),
    }
}

/// Whether a NAT gateway in this state still counts as the node's resource.
fn is_live(nat: &AwsNat) -> bool {
    matches!(
        nat.state(),
        Some(NatGatewayState::Pending) | Some(NatGatewayState::Available)
    )
}

async fn describe(cx: &NodeCx<'_>, id: &str) -> Result<Option<AwsNat>, Failure> {
    let out = cx
        .cx
        .clients
        .ec2
        .describe_nat_gateways()
        .nat_gateway_ids(id)
        .send()
        .await
        .or_absent()?;
    Ok(out.and_then(|o| o.nat_gateways().first().cloned()))
}

#[async_trait]
impl Resource for NatGateway {
    type Observed = AwsNat;
    const KIND: &'static str = "nat_gateway";

    async fn find(&self, cx: &NodeCx<'_>) -> Result<Option<AwsNat>, Failure> {
        let all = cx.cx.ec2.nat_gateways().await?;
        let live: Vec<&AwsNat> = of_node(all, AwsNat::tags, &cx.env_full(), cx.node)
            .into_iter()
            .filter(|n| is_live(n))
            .collect();
        Ok(single(cx, Self::KIND, live).cloned())
    }

    fn ids(&self, _cx: &NodeCx<'_>, have: &AwsNat) -> Result<Ids, Failure> {
        Ok(Ids::id(
            have.nat_gateway_id()
                .ok_or_else(|| Failure::missing("NAT gateway id"))?,
        ))
    }

    fn diff(&self, cx: &NodeCx<'_>, have: &AwsNat) -> Result<Vec<Change>, Failure> {
        let subnet = cx.ids_of(&self.subnet)?;
        let eip = cx.ids_of(&self.eip)?;
        let allocation = have
            .nat_gateway_addresses()
            .iter()
            .find_map(|a| a.allocation_id());
        let mut c = Changes::default();
        c.immutable(
            "subnet_id",
            subnet.id.as_str(),
            have.subnet_id().unwrap_or(""),
        );
        c.immutable(
            "allocation_id",
            eip.id.as_str(),
            allocation.unwrap_or("(none)"),
        );
        c.tags(&cx.tags(), &tags::from_ec2(have.tags()));
        Ok(c.into_vec())
    }

    async fn create(&self, cx: &NodeCx<'_>) -> Result<Ids, Failure> {
        let subnet = cx.ids_of(&self.subnet)?;
        let eip = cx.ids_of(&self.eip)?;
        let out = cx
            .cx
            .clients
            .ec2
            .create_nat_gateway()
            .subnet_id(subnet.id)
            .allocation_id(eip.id)
            .client_token(cx.token())
            .tag_specifications(tags::ec2_spec(ResourceType::Natgateway, &cx.tags()))
            .send()
            .await?;
        let id = out
            .nat_gateway()
            .and_then(AwsNat::nat_gateway_id)
            .ok_or_else(|| Failure::missing("NAT gateway id"))?;
        Ok(Ids::id(id))
    }

    fn is_ready(&self, have: &AwsNat) -> bool {
        have.state() == Some(&NatGatewayState::Available)
    }

    /// A NAT gateway takes one to a few minutes to become `available`; routes to it are
    /// accepted before that, so dependents only need its id.
    async fn wait_ready(&self, cx: &NodeCx<'_>, ids: &Ids) -> Result<(), Failure> {
        wait::until(
            &format!("NAT gateway {}", ids.id),
            cx.env().wait_timeout,
            Duration::from_secs(1),
            |state, waited| {
                cx.progress(format!(
                    "waiting for available ({state}, {}s)",
                    waited.as_secs()
                ))
            },
            || async {
                let nat = describe(cx, &ids.id).await?;
                Ok(match nat {
                    Some(n) => nat_ready(n.state(), n.failure_message()),
                    // Not yet visible to describes (eventual consistency).
                    None => Poll::Pending("not yet visible".into()),
                })
            },
        )
        .await
    }

    async fn update(
        &self,
        cx: &NodeCx<'_>,
        have: &AwsNat,
        changes: &[Change],
    ) -> Result<(), Failure> {
        let id = have
            .nat_gateway_id()
            .ok_or_else(|| Failure::missing("NAT gateway id"))?;
        super::retag_ec2(cx, id, changes).await
    }

    /// Deletes and waits for `deleted`, so the Elastic IP and the subnet can go next.
    async fn delete(&self, cx: &NodeCx<'_>, have: &AwsNat) -> Result<(), Failure> {
        let id = have
            .nat_gateway_id()
            .ok_or_else(|| Failure::missing("NAT gateway id"))?;
        cx.cx
            .clients
            .ec2
            .delete_nat_gateway()
            .nat_gateway_id(id)
            .send()
            .await
            .or_absent()?;
        wait::until(
            &format!("NAT gateway {id} to be deleted"),
            cx.env().wait_timeout,
            Duration::from_secs(1),
            |state, waited| {
                cx.progress(format!(
                    "waiting for deleted ({state}, {}s)",
                    waited.as_secs()
                ))
            },
            || async {
                Ok(match describe(cx, id).await? {
                    None => Poll::Ready,
                    Some(n) => match n.state() {
                        Some(NatGatewayState::Deleted) => Poll::Ready,
                        Some(s) => Poll::Pending(s.as_str().to_string()),
                        None => Poll::Pending("unknown".into()),
                    },
                })
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_table() {
        assert_eq!(
            nat_ready(Some(&NatGatewayState::Available), None),
            Poll::Ready
        );
        assert_eq!(
            nat_ready(Some(&NatGatewayState::Pending), None),
            Poll::Pending("pending".into())
        );
        assert!(matches!(
            nat_ready(Some(&NatGatewayState::Failed), Some("Subnet has no internet gateway")),
            Poll::Failed(m) if m.contains("no internet gateway")
        ));
        assert!(matches!(
            nat_ready(Some(&NatGatewayState::Deleting), None),
            Poll::Failed(_)
        ));
    }
}
