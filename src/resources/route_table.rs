//! Route tables: public (0.0.0.0/0 to the internet gateway), private per zone (0.0.0.0/0 to
//! the NAT gateway of its zone), isolated (no internet route). Routes and subnet
//! associations are part of the table's node, so a route added by hand is drift.

use async_trait::async_trait;
use aws_sdk_ec2::types::{Filter, ResourceType, Route, RouteOrigin, RouteTable as AwsRouteTable};
use serde::{Deserialize, Serialize};

use super::{ec2_delete, NodeCx, Resource};
use crate::aws::retry::{self, NEW_GATEWAY_NOT_VISIBLE};
use crate::aws::tags;
use crate::diff::{fields, tags_changed, Change, Changes};
use crate::error::Failure;
use crate::model::{Attrs, Inputs, RecordedIds, Ref};
use crate::policy::{grant, Grants, On, EC2_DESCRIBE};

fields! {
    /// The fields a route table is compared on, as `plan`, `drift` and `history` name them.
    enum Field {
        VpcId = "vpc_id",
        Routes = "routes",
        SubnetAssociations = "subnet_associations",
    }
}

/// What a route sends its traffic to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    InternetGateway,
    NatGateway,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RouteSpec {
    pub destination: String,
    pub via: Via,
    pub target: Ref,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RouteTable {
    pub vpc: Ref,
    pub routes: Vec<RouteSpec>,
    /// Subnets associated with this table.
    pub subnets: Vec<Ref>,
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

fn table_id(t: &AwsRouteTable) -> Result<&str, Failure> {
    t.route_table_id()
        .ok_or_else(|| Failure::missing("route table id"))
}

fn route_target(r: &Route) -> Option<&str> {
    r.nat_gateway_id()
        .or(r.gateway_id())
        .or(r.transit_gateway_id())
        .or(r.vpc_peering_connection_id())
        .or(r.network_interface_id())
        .or(r.instance_id())
        .or(r.egress_only_internet_gateway_id())
}

/// Routes AWS adds and owns, never drift: the VPC's `local` route, and routes propagated
/// from a virtual private gateway (a VPN someone attached, which AWS keeps in the table).
fn is_aws_route(r: &Route) -> bool {
    r.gateway_id() == Some("local") || r.origin() == Some(&RouteOrigin::EnableVgwRoutePropagation)
}

/// The table's routes beside AWS's own ([`is_aws_route`]), IPv4 and IPv6, sorted.
fn have_routes(t: &AwsRouteTable) -> Vec<RouteKey> {
    let mut out: Vec<RouteKey> = t
        .routes()
        .iter()
        .filter(|r| !is_aws_route(r))
        .filter_map(|r| {
            let dest = r
                .destination_cidr_block()
                .or(r.destination_ipv6_cidr_block())
                .or(r.destination_prefix_list_id())?;
            Some(RouteKey {
                dest: dest.to_string(),
                target: route_target(r).unwrap_or("(blackhole)").to_string(),
            })
        })
        .collect();
    out.sort();
    out
}

/// (subnet id, association id) of every explicit association.
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
    fn want_routes(&self, inputs: &Inputs<'_>) -> Result<Vec<RouteKey>, Failure> {
        let mut out = self
            .routes
            .iter()
            .map(|r| {
                Ok(RouteKey {
                    dest: r.destination.clone(),
                    target: inputs.id(&r.target)?.to_string(),
                })
            })
            .collect::<Result<Vec<_>, Failure>>()?;
        out.sort();
        Ok(out)
    }

    fn want_subnets(&self, inputs: &Inputs<'_>) -> Result<Vec<String>, Failure> {
        let mut out = self
            .subnets
            .iter()
            .map(|s| Ok(inputs.id(s)?.to_string()))
            .collect::<Result<Vec<_>, Failure>>()?;
        out.sort();
        Ok(out)
    }

    fn via(&self, dest: &str) -> Via {
        self.routes
            .iter()
            .find(|r| r.destination == dest)
            .map(|r| r.via)
            .unwrap_or(Via::InternetGateway)
    }

    async fn put_route(
        &self,
        cx: &NodeCx<'_>,
        table: &str,
        route: &RouteKey,
        replace: bool,
    ) -> Result<(), Failure> {
        let ec2 = &cx.aws().ec2;
        let nat = self.via(&route.dest) == Via::NatGateway;
        // PLATFORM.md: a route to a NAT gateway still `pending` is accepted, but a new
        // gateway may not be visible yet.
        let replace_route = || async {
            let call = ec2
                .replace_route()
                .route_table_id(table)
                .destination_cidr_block(&route.dest);
            let call = if nat {
                call.nat_gateway_id(&route.target)
            } else {
                call.gateway_id(&route.target)
            };
            call.send().await.map(|_| ()).map_err(Failure::from)
        };
        retry::on(&[&NEW_GATEWAY_NOT_VISIBLE], || async {
            if replace {
                return replace_route().await;
            }
            let call = ec2
                .create_route()
                .route_table_id(table)
                .destination_cidr_block(&route.dest);
            let call = if nat {
                call.nat_gateway_id(&route.target)
            } else {
                call.gateway_id(&route.target)
            };
            match call.send().await.map_err(Failure::from) {
                // There already: made by this call's earlier attempt, whose answer was lost;
                // set to this target all the same (a no-op when it is).
                Err(f) if f.code == "RouteAlreadyExists" => replace_route().await,
                other => other.map(|_| ()),
            }
        })
        .await
        .map_err(|f| f.context(format!("route {route}")))
    }

    /// Brings routes and associations of `table` to the spec's.
    async fn converge(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        table: &str,
        routes: &[RouteKey],
        subnets: &[(String, String)],
    ) -> Result<(), Failure> {
        let ec2 = &cx.aws().ec2;
        let want = self.want_routes(inputs)?;
        for w in want.iter().filter(|w| !routes.contains(w)) {
            let replace = routes.iter().any(|h| h.dest == w.dest);
            self.put_route(cx, table, w, replace).await?;
        }
        for h in routes
            .iter()
            .filter(|h| !want.iter().any(|w| w.dest == h.dest))
        {
            let call = ec2.delete_route().route_table_id(table);
            let call = if h.dest.contains(':') {
                call.destination_ipv6_cidr_block(&h.dest)
            } else if h.dest.starts_with("pl-") {
                call.destination_prefix_list_id(&h.dest)
            } else {
                call.destination_cidr_block(&h.dest)
            };
            call.send().await?;
        }
        let want_subnets = self.want_subnets(inputs)?;
        for s in &want_subnets {
            if !subnets.iter().any(|(id, _)| id == s) {
                let out = ec2
                    .associate_route_table()
                    .route_table_id(table)
                    .subnet_id(s)
                    .send()
                    .await
                    .map_err(Failure::from);
                match out {
                    // Associated already: with this table, by this call's earlier attempt
                    // whose answer was lost, is done; with another, an error.
                    Err(f) if f.code == "Resource.AlreadyAssociated" => {
                        let with = ec2
                            .describe_route_tables()
                            .filters(
                                Filter::builder()
                                    .name("association.subnet-id")
                                    .values(s)
                                    .build(),
                            )
                            .send()
                            .await?;
                        if !with
                            .route_tables()
                            .iter()
                            .any(|t| t.route_table_id() == Some(table))
                        {
                            return Err(f.context(format!("associating subnet {s}")));
                        }
                    }
                    other => {
                        other?;
                    }
                }
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
    const GRANTS: &'static Grants = &Grants {
        read: &[grant(&["ec2:DescribeRouteTables"], On::Any(EC2_DESCRIBE))],
        write: &[
            grant(&["ec2:CreateRouteTable"], On::Creating),
            grant(&["ec2:CreateTags"], On::TagOnCreate("ec2:CreateAction")),
            grant(
                &[
                    "ec2:CreateRoute",
                    "ec2:ReplaceRoute",
                    "ec2:DeleteRoute",
                    "ec2:AssociateRouteTable",
                    "ec2:DisassociateRouteTable",
                    "ec2:CreateTags",
                ],
                On::Tagged,
            ),
        ],
        delete: &[grant(
            &["ec2:DisassociateRouteTable", "ec2:DeleteRouteTable"],
            On::Tagged,
        )],
    };
    const FIELDS: &'static [&'static str] = Field::NAMES;

    async fn observe(&self, cx: &NodeCx<'_>) -> Result<Option<AwsRouteTable>, Failure> {
        cx.ec2_find(Self::KIND).await
    }

    async fn observe_recorded(
        &self,
        cx: &NodeCx<'_>,
        recorded: &RecordedIds,
    ) -> Result<Option<AwsRouteTable>, Failure> {
        cx.ec2_recorded(Self::KIND, recorded).await
    }

    fn attrs(&self, _cx: &NodeCx<'_>, have: &AwsRouteTable) -> Result<Attrs, Failure> {
        Ok(Attrs::id(table_id(have)?))
    }

    fn diff(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &AwsRouteTable,
        c: &mut Changes,
    ) -> Result<(), Failure> {
        c.immutable(
            Field::VpcId,
            inputs.id(&self.vpc)?,
            have.vpc_id().unwrap_or(""),
        );
        c.set(
            Field::Routes,
            &self.want_routes(inputs)?,
            &have_routes(have),
        );
        let mut got: Vec<String> = have_subnets(have).into_iter().map(|(s, _)| s).collect();
        got.sort();
        c.set(Field::SubnetAssociations, &self.want_subnets(inputs)?, &got);
        c.tags(cx.tags(), &tags::from_ec2(have.tags()));
        Ok(())
    }

    async fn create(&self, cx: &NodeCx<'_>, inputs: &Inputs<'_>) -> Result<Attrs, Failure> {
        let out = cx
            .aws()
            .ec2
            .create_route_table()
            .vpc_id(inputs.id(&self.vpc)?)
            // An SDK retry of a create whose answer was lost is answered, not made again.
            .client_token(cx.run_token(&[]))
            .tag_specifications(tags::ec2_spec(ResourceType::RouteTable, cx.tags()))
            .send()
            .await?;
        let id = table_id(
            out.route_table()
                .ok_or_else(|| Failure::missing("route table"))?,
        )?
        .to_string();
        self.converge(cx, inputs, &id, &[], &[]).await?;
        Ok(Attrs::id(id))
    }

    async fn update(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &AwsRouteTable,
        changes: &[Change],
    ) -> Result<Attrs, Failure> {
        let id = table_id(have)?;
        self.converge(cx, inputs, id, &have_routes(have), &have_subnets(have))
            .await?;
        if tags_changed(changes) {
            tags::retag_ec2(&cx.aws().ec2, id, cx.tags()).await?;
        }
        Ok(Attrs::id(id))
    }

    async fn delete(&self, cx: &NodeCx<'_>, have: &AwsRouteTable) -> Result<(), Failure> {
        let id = table_id(have)?;
        let ec2 = &cx.aws().ec2;
        for (_, association) in have_subnets(have) {
            let association = &association;
            ec2_delete(&[], || async move {
                ec2.disassociate_route_table()
                    .association_id(association)
                    .send()
                    .await
                    .map_err(Failure::from)
            })
            .await?;
        }
        ec2_delete(&[], || async move {
            ec2.delete_route_table()
                .route_table_id(id)
                .send()
                .await
                .map_err(Failure::from)
        })
        .await
    }
}
