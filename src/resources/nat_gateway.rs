//! NAT gateways, one per zone (or one in all, outside prod), each with its Elastic IP.
//!
//! PLATFORM.md: a NAT gateway created before its internet gateway is attached is accepted,
//! then turns `failed` minutes later, so it needs the attached gateway (`igw`, an ordering
//! input); routes to it are accepted while it is `pending` (its dependents need its id only).
//! A NAT gateway deleted out of band stays `deleting` for about a minute and keeps its
//! Elastic IP until it is `deleted`: a new one for the same address waits for that.

use crate::aws::wait::expected::{NAT_GATEWAY_AVAILABLE, NAT_GATEWAY_DELETED};

use async_trait::async_trait;
use aws_sdk_ec2::types::{NatGateway as AwsNat, NatGatewayState, ResourceType};
use serde::{Deserialize, Serialize};

use super::{Leaving, NodeCx, Resource};
use crate::aws::ec2::of_env;
use crate::aws::errors::OrAbsent;
use crate::aws::tags;
use crate::aws::wait::Poll;
use crate::diff::{fields, tags_changed, Change, Changes};
use crate::error::Failure;
use crate::model::{Attrs, Inputs, RecordedIds, Ref};
use crate::policy::{grant, Grants, On, EC2_DESCRIBE};

fields! {
    /// The fields a nat gateway is compared on, as `plan`, `drift` and `history` name them.
    enum Field {
        SubnetId = "subnet_id",
        AllocationId = "allocation_id",
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct NatGateway {
    pub subnet: Ref,
    pub eip: Ref,
    /// Ordering only: the internet gateway must be attached first.
    pub igw: Ref,
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

fn nat_id(nat: &AwsNat) -> Result<&str, Failure> {
    nat.nat_gateway_id()
        .ok_or_else(|| Failure::missing("NAT gateway id"))
}

fn allocation(nat: &AwsNat) -> Option<&str> {
    nat.nat_gateway_addresses()
        .iter()
        .find_map(|a| a.allocation_id())
}

async fn describe(cx: &NodeCx<'_>, id: &str) -> Result<Option<AwsNat>, Failure> {
    let out = cx
        .aws()
        .ec2
        .describe_nat_gateways()
        .nat_gateway_ids(id)
        .send()
        .await
        .or_absent()?;
    Ok(out.and_then(|o| o.nat_gateways().first().cloned()))
}

/// Every NAT gateway tagged as this node, whatever its state (one batched describe a run).
async fn tagged(cx: &NodeCx<'_>) -> Result<Vec<AwsNat>, Failure> {
    crate::aws::ec2::tagged_as::<AwsNat>(&cx.cx.shared, &cx.aws().ec2, cx.env_full(), cx.node).await
}

/// The state of NAT gateway `id` while it is going away; `None` once it is `deleted`.
async fn deleting_state(cx: &NodeCx<'_>, id: &str) -> Result<Option<String>, Failure> {
    Ok(match describe(cx, id).await? {
        None => None,
        Some(n) => match n.state() {
            Some(NatGatewayState::Deleted) => None,
            Some(s) => Some(s.as_str().to_string()),
            None => Some("unknown".into()),
        },
    })
}

#[async_trait]
impl Resource for NatGateway {
    type Observed = AwsNat;
    const KIND: &'static str = "nat_gateway";
    const GRANTS: &'static Grants = &Grants {
        read: &[grant(&["ec2:DescribeNatGateways"], On::Any(EC2_DESCRIBE))],
        write: &[
            grant(&["ec2:CreateNatGateway"], On::Creating),
            grant(&["ec2:CreateTags"], On::TagOnCreate("ec2:CreateAction")),
            grant(&["ec2:CreateTags"], On::Tagged),
        ],
        delete: &[grant(&["ec2:DeleteNatGateway"], On::Tagged)],
    };
    const FIELDS: &'static [&'static str] = Field::NAMES;

    async fn observe(&self, cx: &NodeCx<'_>) -> Result<Option<AwsNat>, Failure> {
        let live = tagged(cx).await?.into_iter().filter(is_live).collect();
        Ok(cx.single(Self::KIND, live))
    }

    async fn observe_recorded(
        &self,
        cx: &NodeCx<'_>,
        recorded: &RecordedIds,
    ) -> Result<Option<AwsNat>, Failure> {
        // One `deleted` or `failed` is gone, whatever it is called.
        Ok(cx
            .ec2_recorded::<AwsNat>(Self::KIND, recorded)
            .await?
            .filter(is_live))
    }

    fn attrs(&self, _cx: &NodeCx<'_>, have: &AwsNat) -> Result<Attrs, Failure> {
        let mut a = Attrs::id(nat_id(have)?);
        a.state = have.state().map(|s| s.as_str().to_string());
        Ok(a)
    }

    fn is_ready(&self, have: &AwsNat) -> bool {
        have.state() == Some(&NatGatewayState::Available)
    }

    fn diff(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &AwsNat,
        c: &mut Changes,
    ) -> Result<(), Failure> {
        c.immutable(
            Field::SubnetId,
            inputs.id(&self.subnet)?,
            have.subnet_id().unwrap_or(""),
        );
        c.immutable(
            Field::AllocationId,
            inputs.id(&self.eip)?,
            allocation(have).unwrap_or("(none)"),
        );
        c.tags(cx.tags(), &tags::from_ec2(have.tags()));
        Ok(())
    }

    async fn create(&self, cx: &NodeCx<'_>, inputs: &Inputs<'_>) -> Result<Attrs, Failure> {
        let eip = inputs.id(&self.eip)?;
        // A NAT gateway of this environment that is being deleted may still hold the
        // address: wait until it lets go rather than fail `Resource.AlreadyAssociated`.
        let all = of_env::<AwsNat>(&cx.cx.shared, &cx.aws().ec2, cx.env_full()).await?;
        for old in all
            .iter()
            .filter(|n| allocation(n) == Some(eip) && n.state() == Some(&NatGatewayState::Deleting))
        {
            let old_id = nat_id(old)?;
            cx.wait_gone(
                &format!("NAT gateway {old_id}, which holds Elastic IP {eip},"),
                NAT_GATEWAY_DELETED,
                || deleting_state(cx, old_id),
            )
            .await?;
        }
        // A token of this run: its SDK retries reuse it; a later run finds what this one
        // made by its tags first, and never sends it again (EC2 would answer a token it saw
        // before with that NAT gateway, deleted since or not).
        let subnet = inputs.id(&self.subnet)?;
        let token = cx.run_token(&[subnet, eip]);
        let out = cx
            .aws()
            .ec2
            .create_nat_gateway()
            .subnet_id(subnet)
            .allocation_id(eip)
            .client_token(token)
            .tag_specifications(tags::ec2_spec(ResourceType::Natgateway, cx.tags()))
            .send()
            .await?;
        let nat = out
            .nat_gateway()
            .ok_or_else(|| Failure::missing("NAT gateway"))?;
        self.attrs(cx, nat)
    }

    /// A NAT gateway takes one to a few minutes to become `available`; `up` waits for it
    /// before calling the network healthy (PLATFORM.md), nothing else does.
    async fn wait_ready(&self, cx: &NodeCx<'_>, mut attrs: Attrs) -> Result<Attrs, Failure> {
        let id = attrs.id.clone();
        cx.wait_ready(
            &format!("NAT gateway {id} to be available"),
            NAT_GATEWAY_AVAILABLE,
            || async {
                Ok(match describe(cx, &id).await? {
                    Some(n) => nat_ready(n.state(), n.failure_message()),
                    // Not yet visible to describes (eventual consistency).
                    None => Poll::Pending("not yet visible".into()),
                })
            },
        )
        .await?;
        attrs.state = Some("available".into());
        Ok(attrs)
    }

    async fn update(
        &self,
        cx: &NodeCx<'_>,
        _inputs: &Inputs<'_>,
        have: &AwsNat,
        changes: &[Change],
    ) -> Result<Attrs, Failure> {
        if tags_changed(changes) {
            tags::retag_ec2(&cx.aws().ec2, nat_id(have)?, cx.tags()).await?;
        }
        self.attrs(cx, have)
    }

    /// A NAT gateway holds no data: one in the wrong subnet or with the wrong address is
    /// replaced, and the routes to it follow.
    fn replaceable(&self) -> bool {
        true
    }

    /// Waits for this node's NAT gateways already `deleting` to be `deleted`: until then they
    /// hold their Elastic IP and their subnet.
    async fn wait_leaving(&self, cx: &NodeCx<'_>) -> Result<Leaving, Failure> {
        let leaving: Vec<AwsNat> = tagged(cx)
            .await?
            .into_iter()
            .filter(|n| n.state() == Some(&NatGatewayState::Deleting))
            .collect();
        for nat in &leaving {
            let id = nat_id(nat)?;
            cx.wait_gone(&format!("NAT gateway {id}"), NAT_GATEWAY_DELETED, || {
                deleting_state(cx, id)
            })
            .await?;
        }
        Ok(if leaving.is_empty() {
            Leaving::Nothing
        } else {
            Leaving::Waited
        })
    }

    /// Deletes and waits for `deleted`, so the Elastic IP and the subnet can go next.
    async fn delete(&self, cx: &NodeCx<'_>, have: &AwsNat) -> Result<(), Failure> {
        let id = nat_id(have)?;
        cx.aws()
            .ec2
            .delete_nat_gateway()
            .nat_gateway_id(id)
            .send()
            .await
            .or_absent()?;
        cx.wait_gone(&format!("NAT gateway {id}"), NAT_GATEWAY_DELETED, || {
            deleting_state(cx, id)
        })
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
