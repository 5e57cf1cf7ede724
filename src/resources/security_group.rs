//! Security groups with exactly the rules the config gives: a rule added by hand is drift
//! and `up` revokes it.

use std::fmt;

use async_trait::async_trait;
use aws_sdk_ec2::types::{
    IpPermission, IpRange, ResourceType, SecurityGroup as AwsSg, UserIdGroupPair,
};
use serde::{Deserialize, Serialize};

use super::{ec2_delete, NodeCx, Resource};
use crate::aws::tags;
use crate::diff::{fields, tags_changed, Change, Changes};
use crate::error::Failure;
use crate::model::{Attrs, Inputs, RecordedIds, Ref};
use crate::policy::{grant, Grants, On, EC2_DESCRIBE};

fields! {
    /// The fields a security group is compared on, as `plan`, `drift` and `history` name them.
    enum Field {
        VpcId = "vpc_id",
        GroupName = "group_name",
        Ingress = "ingress",
        Egress = "egress",
    }
}

/// Where a rule lets traffic come from (ingress) or go to (egress).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Peer {
    Cidr(String),
    /// Another security group of the environment.
    Group(Ref),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rule {
    pub protocol: String,
    pub port: u16,
    pub peer: Peer,
    pub description: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SecurityGroup {
    pub vpc: Ref,
    /// Group name suffix: the group is named `<project>-<env>-<name>`.
    pub name: String,
    pub description: String,
    pub ingress: Vec<Rule>,
    /// `None` keeps AWS's default allow-all egress; `Some(vec![])` allows no egress.
    pub egress: Option<Vec<Rule>>,
}

/// A rule as compared: protocol, port range and peer id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct RuleKey {
    protocol: String,
    from: Option<i32>,
    to: Option<i32>,
    peer: String,
}

impl fmt::Display for RuleKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.protocol.as_str(), self.from, self.to) {
            ("-1", ..) => write!(f, "all traffic {}", self.peer),
            (p, Some(a), Some(b)) if a == b => write!(f, "{p}/{a} {}", self.peer),
            (p, Some(a), Some(b)) => write!(f, "{p}/{a}-{b} {}", self.peer),
            (p, ..) => write!(f, "{p} {}", self.peer),
        }
    }
}

fn flatten(perms: &[IpPermission]) -> Vec<RuleKey> {
    let mut out = Vec::new();
    for p in perms {
        let protocol = p.ip_protocol().unwrap_or("-1").to_string();
        let (from, to) = if protocol == "-1" {
            (None, None)
        } else {
            (p.from_port(), p.to_port())
        };
        let key = |peer: String| RuleKey {
            protocol: protocol.clone(),
            from,
            to,
            peer,
        };
        out.extend(
            p.ip_ranges()
                .iter()
                .filter_map(|r| r.cidr_ip())
                .map(|c| key(c.to_string())),
        );
        out.extend(
            p.ipv6_ranges()
                .iter()
                .filter_map(|r| r.cidr_ipv6())
                .map(|c| key(c.to_string())),
        );
        out.extend(
            p.user_id_group_pairs()
                .iter()
                .filter_map(|g| g.group_id())
                .map(|g| key(g.to_string())),
        );
        out.extend(
            p.prefix_list_ids()
                .iter()
                .filter_map(|l| l.prefix_list_id())
                .map(|l| key(l.to_string())),
        );
    }
    out.sort();
    out
}

fn permission(rule: &RuleKey, description: Option<&str>) -> IpPermission {
    let mut b = IpPermission::builder().ip_protocol(&rule.protocol);
    if rule.protocol != "-1" {
        b = b.set_from_port(rule.from).set_to_port(rule.to);
    }
    if rule.peer.starts_with("sg-") {
        b.user_id_group_pairs(
            UserIdGroupPair::builder()
                .group_id(&rule.peer)
                .set_description(description.map(String::from))
                .build(),
        )
        .build()
    } else if rule.peer.starts_with("pl-") {
        b.prefix_list_ids(
            aws_sdk_ec2::types::PrefixListId::builder()
                .prefix_list_id(&rule.peer)
                .build(),
        )
        .build()
    } else if rule.peer.contains(':') {
        b.ipv6_ranges(
            aws_sdk_ec2::types::Ipv6Range::builder()
                .cidr_ipv6(&rule.peer)
                .build(),
        )
        .build()
    } else {
        b.ip_ranges(
            IpRange::builder()
                .cidr_ip(&rule.peer)
                .set_description(description.map(String::from))
                .build(),
        )
        .build()
    }
}

impl SecurityGroup {
    fn group_name(&self, cx: &NodeCx<'_>) -> String {
        format!("{}-{}", cx.env_full(), self.name)
    }

    fn resolve<'r>(
        &self,
        inputs: &Inputs<'_>,
        rules: &'r [Rule],
    ) -> Result<Vec<(RuleKey, &'r str)>, Failure> {
        let mut out = rules
            .iter()
            .map(|r| {
                let peer = match &r.peer {
                    Peer::Cidr(c) => c.clone(),
                    Peer::Group(g) => inputs.id(g)?.to_string(),
                };
                let port = i32::from(r.port);
                Ok((
                    RuleKey {
                        protocol: r.protocol.clone(),
                        from: Some(port),
                        to: Some(port),
                        peer,
                    },
                    r.description.as_str(),
                ))
            })
            .collect::<Result<Vec<_>, Failure>>()?;
        out.sort();
        Ok(out)
    }

    fn want_egress(&self, inputs: &Inputs<'_>) -> Result<Vec<(RuleKey, &str)>, Failure> {
        match &self.egress {
            Some(rules) => self.resolve(inputs, rules),
            None => Ok(vec![(
                RuleKey {
                    protocol: "-1".into(),
                    from: None,
                    to: None,
                    peer: "0.0.0.0/0".into(),
                },
                "all outbound",
            )]),
        }
    }

    /// Authorizes what is missing and revokes what is extra, in both directions.
    async fn converge(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        id: &str,
        ingress: &[RuleKey],
        egress: &[RuleKey],
    ) -> Result<(), Failure> {
        let ec2 = &cx.aws().ec2;
        let want_in = self.resolve(inputs, &self.ingress)?;
        let want_out = self.want_egress(inputs)?;
        let add_in: Vec<IpPermission> = want_in
            .iter()
            .filter(|(k, _)| !ingress.contains(k))
            .map(|(k, d)| permission(k, Some(d)))
            .collect();
        let del_in: Vec<IpPermission> = ingress
            .iter()
            .filter(|h| !want_in.iter().any(|(k, _)| k == *h))
            .map(|h| permission(h, None))
            .collect();
        let add_out: Vec<IpPermission> = want_out
            .iter()
            .filter(|(k, _)| !egress.contains(k))
            .map(|(k, d)| permission(k, Some(d)))
            .collect();
        let del_out: Vec<IpPermission> = egress
            .iter()
            .filter(|h| !want_out.iter().any(|(k, _)| k == *h))
            .map(|h| permission(h, None))
            .collect();
        // An answer "already there" / "not there" may be an earlier attempt's work whose
        // answer was lost (the SDK sent it again): the rules are then sent one by one, so each
        // one still to do is done.
        rules(add_in, DUPLICATE, "authorizing ingress", |p| async move {
            ec2.authorize_security_group_ingress()
                .group_id(id)
                .set_ip_permissions(Some(p))
                .send()
                .await
                .map(|_| ())
                .map_err(Failure::from)
        })
        .await?;
        rules(del_in, NO_SUCH_RULE, "revoking ingress", |p| async move {
            ec2.revoke_security_group_ingress()
                .group_id(id)
                .set_ip_permissions(Some(p))
                .send()
                .await
                .map(|_| ())
                .map_err(Failure::from)
        })
        .await?;
        rules(add_out, DUPLICATE, "authorizing egress", |p| async move {
            ec2.authorize_security_group_egress()
                .group_id(id)
                .set_ip_permissions(Some(p))
                .send()
                .await
                .map(|_| ())
                .map_err(Failure::from)
        })
        .await?;
        rules(del_out, NO_SUCH_RULE, "revoking egress", |p| async move {
            ec2.revoke_security_group_egress()
                .group_id(id)
                .set_ip_permissions(Some(p))
                .send()
                .await
                .map(|_| ())
                .map_err(Failure::from)
        })
        .await?;
        Ok(())
    }
}

/// Sends `perms` in one call; when EC2 answers `settled` (already there, or not there), one
/// call per rule, each `settled` answer taken as done, so every rule still to do is done.
async fn rules<F, Fut>(
    perms: Vec<IpPermission>,
    settled: &str,
    what: &str,
    call: F,
) -> Result<(), Failure>
where
    F: Fn(Vec<IpPermission>) -> Fut,
    Fut: std::future::Future<Output = Result<(), Failure>>,
{
    if perms.is_empty() {
        return Ok(());
    }
    match call(perms.clone()).await {
        Err(f) if f.code == settled => {
            for p in perms {
                match call(vec![p]).await {
                    Err(f) if f.code != settled => return Err(f.context(what)),
                    _ => {}
                }
            }
            Ok(())
        }
        other => other.map_err(|f| f.context(what)),
    }
}

/// EC2's answer to a rule that is already there.
const DUPLICATE: &str = "InvalidPermission.Duplicate";

/// EC2's answer to a rule that is not there.
const NO_SUCH_RULE: &str = "InvalidPermission.NotFound";

fn group_id(g: &AwsSg) -> Result<&str, Failure> {
    g.group_id()
        .ok_or_else(|| Failure::missing("security group id"))
}

#[async_trait]
impl Resource for SecurityGroup {
    type Observed = AwsSg;
    const KIND: &'static str = "security_group";
    const GRANTS: &'static Grants = &Grants {
        read: &[grant(
            &["ec2:DescribeSecurityGroups"],
            On::Any(EC2_DESCRIBE),
        )],
        write: &[
            grant(&["ec2:CreateSecurityGroup"], On::Creating),
            grant(&["ec2:CreateTags"], On::TagOnCreate("ec2:CreateAction")),
            grant(
                &[
                    "ec2:AuthorizeSecurityGroupIngress",
                    "ec2:RevokeSecurityGroupIngress",
                    "ec2:AuthorizeSecurityGroupEgress",
                    "ec2:RevokeSecurityGroupEgress",
                    "ec2:CreateTags",
                ],
                On::Tagged,
            ),
        ],
        delete: &[grant(&["ec2:DeleteSecurityGroup"], On::Tagged)],
    };
    const FIELDS: &'static [&'static str] = Field::NAMES;

    async fn observe(&self, cx: &NodeCx<'_>) -> Result<Option<AwsSg>, Failure> {
        cx.ec2_find(Self::KIND).await
    }

    async fn observe_recorded(
        &self,
        cx: &NodeCx<'_>,
        recorded: &RecordedIds,
    ) -> Result<Option<AwsSg>, Failure> {
        cx.ec2_recorded(Self::KIND, recorded).await
    }

    fn attrs(&self, _cx: &NodeCx<'_>, have: &AwsSg) -> Result<Attrs, Failure> {
        let mut a = Attrs::id(group_id(have)?);
        a.name = have.group_name().map(String::from);
        Ok(a)
    }

    /// Every rule, ingress and egress, compared as a whole tuple (protocol, ports, peer:
    /// IPv4, IPv6, group or prefix list): a rule added by hand is drift.
    fn diff(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &AwsSg,
        c: &mut Changes,
    ) -> Result<(), Failure> {
        c.immutable(
            Field::VpcId,
            inputs.id(&self.vpc)?,
            have.vpc_id().unwrap_or(""),
        );
        c.immutable(
            Field::GroupName,
            self.group_name(cx).as_str(),
            have.group_name().unwrap_or(""),
        );
        let keys =
            |v: Vec<(RuleKey, &str)>| -> Vec<RuleKey> { v.into_iter().map(|(k, _)| k).collect() };
        let want_in = keys(self.resolve(inputs, &self.ingress)?);
        let want_out = keys(self.want_egress(inputs)?);
        c.set(Field::Ingress, &want_in, &flatten(have.ip_permissions()));
        c.set(
            Field::Egress,
            &want_out,
            &flatten(have.ip_permissions_egress()),
        );
        c.tags(cx.tags(), &tags::from_ec2(have.tags()));
        Ok(())
    }

    async fn create(&self, cx: &NodeCx<'_>, inputs: &Inputs<'_>) -> Result<Attrs, Failure> {
        let out = cx
            .aws()
            .ec2
            .create_security_group()
            .group_name(self.group_name(cx))
            .description(&self.description)
            .vpc_id(inputs.id(&self.vpc)?)
            .tag_specifications(tags::ec2_spec(ResourceType::SecurityGroup, cx.tags()))
            .send()
            .await?;
        let id = out
            .group_id()
            .ok_or_else(|| Failure::missing("security group id"))?
            .to_string();
        let mut a = Attrs::id(id.clone());
        a.name = Some(self.group_name(cx));
        // Other groups' rules and the resources placed in this group need only its id: they
        // start while this one's rules are set.
        inputs.publish(&a);
        // A new group has AWS's default allow-all egress rule and no ingress.
        let default_egress = flatten(&[IpPermission::builder()
            .ip_protocol("-1")
            .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
            .build()]);
        self.converge(cx, inputs, &id, &[], &default_egress).await?;
        Ok(a)
    }

    async fn update(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &AwsSg,
        changes: &[Change],
    ) -> Result<Attrs, Failure> {
        let id = group_id(have)?;
        self.converge(
            cx,
            inputs,
            id,
            &flatten(have.ip_permissions()),
            &flatten(have.ip_permissions_egress()),
        )
        .await?;
        if tags_changed(changes) {
            tags::retag_ec2(&cx.aws().ec2, id, cx.tags()).await?;
        }
        self.attrs(cx, have)
    }

    async fn delete(&self, cx: &NodeCx<'_>, have: &AwsSg) -> Result<(), Failure> {
        let id = group_id(have)?;
        let ec2 = &cx.aws().ec2;
        // ENIs of services and load balancers release their groups a little after deletion.
        ec2_delete(&[], || async move {
            ec2.delete_security_group()
                .group_id(id)
                .send()
                .await
                .map_err(Failure::from)
        })
        .await
    }
}
