//! Route tables: public (0.0.0.0/0 to the internet gateway), private per zone (0.0.0.0/0 to
//! the NAT gateway of its zone), isolated (no internet route). Routes and subnet
//! associations are part of the table's node, so a route added by hand is drift.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::types::{ResourceType, Route, RouteTable as AwsRouteTable};

use super::{single, Ids, NodeCx, Resource};
use crate::aws::inventory::of_node;
use crate::aws::{retry, tags};
use crate::diff::{Change, Changes};
use crate::error::Failure;

#[derive(Debug, Clone)]
pub enum Target {
    InternetGateway(String),
    NatGateway(String),
}

pub struct RouteTable {
    pub vpc: String,
    /// (destination CIDR, target node).
    pub routes: Vec<(String, Target)>,
    /// Subnet nodes associated with this table.
    pub subnets: Vec<String>,
}

/// A route as compared: destination and target id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct RouteKey {
    dest: String,
    target: String,
}

impl std::fmt::Display for RouteKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} -> {}", self.dest, self.target)
    }
}

fn route_target(r: &Route) -> Option<&str> {
    r.nat_gateway_id()
        .or(r.gateway_id())
        .or(r.transit_gateway_id())
        .or(r.vpc_peering_connection_id())
        .or(r.network_interface_id())
        .or(r.instance_id())
}

fn have_routes(t: &AwsRouteTable) -> Vec<RouteKey> {
    t.routes()
        .iter()
        .filter(|r| r.gateway_id() != Some("local"))
        .filter_map(|r| {
            Some(RouteKey {
                dest: r.destination_cidr_block()?.to_string(),
                target: route_target(r).unwrap_or("(blackhole)").to_string(),
            })
        })
        .collect()
}

fn have_subnets(t: &AwsRouteTable) -> Vec<(String, String)> {
    t.associations()
        .iter()
        .filter(|a| !a.main().unwrap_or(false))
        .filter_map(|a| {
            Some((
                a.subnet_id()?.to_string(),
                a.route_table_association_id()?.to_string(),
            ))
        })
        .collect()
}

impl RouteTable {
    fn want_routes(&self, cx: &NodeCx<'_>) -> Result<Vec<RouteKey>, Failure> {
        self.routes
            .iter()
            .map(|(dest, target)| {
                let node = match target {
                    Target::InternetGateway(n) | Target::NatGateway(n) => n,
                };
                Ok(RouteKey {
                    dest: dest.clone(),
                    target: cx.ids_of(node)?.id,
                })
            })
            .collect()
    }

    fn want_subnets(&self, cx: &NodeCx<'_>) -> Result<Vec<String>, Failure> {
        self.subnets.iter().map(|s| Ok(cx.ids_of(s)?.id)).collect()
    }

    async fn create_route(
        &self,
        cx: &NodeCx<'_>,
        table: &str,
        route: &RouteKey,
        replace: bool,
    ) -> Result<(), Failure> {
        let ec2 = &cx.cx.clients.ec2;
        let is_nat = route.target.starts_with("nat-");
        // PLATFORM.md: a route to a NAT gateway still `pending` is accepted, but the new NAT
        // may not be visible yet: retry InvalidNatGatewayID.NotFound for up to 2 minutes.
        retry::eventually(
            Duration::from_secs(120),
            |f| f.code == "InvalidNatGatewayID.NotFound" || f.code == "InvalidGatewayID.NotFound",
            || async {
                if replace {
                    let call = ec2
                        .replace_route()
                        .route_table_id(table)
                        .destination_cidr_block(&route.dest);
                    let call = if is_nat {
                        call.nat_gateway_id(&route.target)
                    } else {
                        call.gateway_id(&route.target)
                    };
                    call.send().await.map(|_| ()).map_err(Failure::from)
                } else {
                    let call = ec2
                        .create_route()
                        .route_table_id(table)
                        .destination_cidr_block(&route.dest);
                    let call = if is_nat {
                        call.nat_gateway_id(&route.target)
                    } else {
                        call.gateway_id(&route.target)
                    };
                    call.send().await.map(|_| ()).map_err(Failure::from)
                }
            },
        )
        .await
        .map_err(|f| f.context(format!("route {route}")))
    }

    /// Brings routes and associations of `table` to the config's.
    async fn converge(
        &self,
        cx: &NodeCx<'_>,
        table: &str,
        routes: &[RouteKey],
        subnets: &[(String, String)],
    ) -> Result<(), Failure> {
        let ec2 = &cx.cx.clients.ec2;
        let want = self.want_routes(cx)?;
        for w in &want {
            if routes.contains(w) {
                continue;
            }
            let replace = routes.iter().any(|h| h.dest == w.dest);
            self.create_route(cx, table, w, replace).await?;
        }
        for h in routes {
            if !want.iter().any(|w| w.dest == h.dest) {
                ec2.delete_route()
                    .route_table_id(table)
                    .destination_cidr_block(&h.dest)
                    .send()
                    .await?;
            }
        }
        let want_subnets = self.want_subnets(cx)?;
        for s in &want_subnets {
            if !subnets.iter().any(|(id, _)| id == s) {
                ec2.associate_route_table()
                    .route_table_id(table)
                    .subnet_id(s)
                    .send()
                    .await?;
            }
        }
        for (subnet, association) in subnets {
            if !want_subnets.contains(subnet) {
                ec2.disassociate_route_table()
                    .association_id(association)
                    .send()
                    .await?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Resource for RouteTable {
    type Observed = AwsRouteTable;
    const KIND: &'static str = "route_table";

    async fn find(&self, cx: &NodeCx<'_>) -> Result<Option<AwsRouteTable>, Failure> {
        let all = cx.cx.ec2.route_tables().await?;
        Ok(single(
            cx,
            Self::KIND,
            of_node(all, AwsRouteTable::tags, &cx.env_full(), cx.node),
        )
        .cloned())
    }

    fn ids(&self, _cx: &NodeCx<'_>, have: &AwsRouteTable) -> Result<Ids, Failure> {
        Ok(Ids::id(
            have.route_table_id()
                .ok_or_else(|| Failure::missing("route table id"))?,
        ))
    }

    fn diff(&self, cx: &NodeCx<'_>, have: &AwsRouteTable) -> Result<Vec<Change>, Failure> {
        let vpc = cx.ids_of(&self.vpc)?;
        let mut c = Changes::default();
        c.immutable("vpc_id", vpc.id.as_str(), have.vpc_id().unwrap_or(""));
        let mut want = self.want_routes(cx)?;
        let mut got = have_routes(have);
        want.sort();
        got.sort();
        c.set("routes", &want, &got);
        let mut want_subnets = self.want_subnets(cx)?;
        let mut got_subnets: Vec<String> = have_subnets(have).into_iter().map(|(s, _)| s).collect();
        want_subnets.sort();
        got_subnets.sort();
        c.set("subnet_associations", &want_subnets, &got_subnets);
        c.tags(&cx.tags(), &tags::from_ec2(have.tags()));
        Ok(c.into_vec())
    }

    async fn create(&self, cx: &NodeCx<'_>) -> Result<Ids, Failure> {
        let vpc = cx.ids_of(&self.vpc)?;
        let out = cx
            .cx
            .clients
            .ec2
            .create_route_table()
            .vpc_id(vpc.id)
            .tag_specifications(tags::ec2_spec(ResourceType::RouteTable, &cx.tags()))
            .send()
            .await?;
        let id = out
            .route_table()
            .and_then(AwsRouteTable::route_table_id)
            .ok_or_else(|| Failure::missing("route table id"))?
            .to_string();
        self.converge(cx, &id, &[], &[]).await?;
        Ok(Ids::id(id))
    }

    async fn update(
        &self,
        cx: &NodeCx<'_>,
        have: &AwsRouteTable,
        changes: &[Change],
    ) -> Result<(), Failure> {
        let id = have
            .route_table_id()
            .ok_or_else(|| Failure::missing("route table id"))?;
        self.converge(cx, id, &have_routes(have), &have_subnets(have))
            .await?;
        super::retag_ec2(cx, id, changes).await
    }

    async fn delete(&self, cx: &NodeCx<'_>, have: &AwsRouteTable) -> Result<(), Failure> {
        let id = have
            .route_table_id()
            .ok_or_else(|| Failure::missing("route table id"))?;
        let ec2 = &cx.cx.clients.ec2;
        for (_, association) in have_subnets(have) {
            super::ec2_delete(Duration::from_secs(60), &[], || {
                let association = association.clone();
                async move {
                    ec2.disassociate_route_table()
                        .association_id(association)
                        .send()
                        .await
                        .map_err(Failure::from)
                }
            })
            .await?;
        }
        super::ec2_delete(Duration::from_secs(120), &[], || async move {
            ec2.delete_route_table()
                .route_table_id(id)
                .send()
                .await
                .map_err(Failure::from)
        })
        .await
    }
}
