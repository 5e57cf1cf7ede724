//! The DB subnet group: exactly the isolated subnets.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_rds::types::DbSubnetGroup as AwsDbSubnetGroup;

use crate::aws::tags::{from_rds, rds_tags};

use super::{Ids, NodeCx, Resource};
use crate::aws::errors::OrAbsent;
use crate::diff::{Change, Changes};
use crate::error::Failure;

pub struct DbSubnetGroup {
    /// Subnet nodes (the isolated tier).
    pub subnets: Vec<String>,
}

pub struct Observed {
    group: AwsDbSubnetGroup,
    tags: BTreeMap<String, String>,
}

impl DbSubnetGroup {
    fn name(cx: &NodeCx<'_>) -> String {
        cx.env_full()
    }

    fn want_subnets(&self, cx: &NodeCx<'_>) -> Result<Vec<String>, Failure> {
        let mut ids: Vec<String> = self
            .subnets
            .iter()
            .map(|s| Ok(cx.ids_of(s)?.id))
            .collect::<Result<_, Failure>>()?;
        ids.sort();
        Ok(ids)
    }
}

#[async_trait]
impl Resource for DbSubnetGroup {
    type Observed = Observed;
    const KIND: &'static str = "db_subnet_group";

    async fn find(&self, cx: &NodeCx<'_>) -> Result<Option<Observed>, Failure> {
        let rds = &cx.cx.clients.rds;
        let Some(out) = rds
            .describe_db_subnet_groups()
            .db_subnet_group_name(Self::name(cx))
            .send()
            .await
            .or_absent()?
        else {
            return Ok(None);
        };
        let Some(group) = out.db_subnet_groups().first().cloned() else {
            return Ok(None);
        };
        let arn = group
            .db_subnet_group_arn()
            .ok_or_else(|| Failure::missing("DB subnet group ARN"))?;
        let tags = rds
            .list_tags_for_resource()
            .resource_name(arn)
            .send()
            .await?;
        Ok(Some(Observed {
            tags: from_rds(tags.tag_list()),
            group,
        }))
    }

    fn ids(&self, cx: &NodeCx<'_>, have: &Observed) -> Result<Ids, Failure> {
        Ok(Ids {
            id: Self::name(cx),
            arn: have.group.db_subnet_group_arn().map(String::from),
        })
    }

    fn diff(&self, cx: &NodeCx<'_>, have: &Observed) -> Result<Vec<Change>, Failure> {
        let mut got: Vec<String> = have
            .group
            .subnets()
            .iter()
            .filter_map(|s| s.subnet_identifier().map(String::from))
            .collect();
        got.sort();
        let mut c = Changes::default();
        c.set("subnets", &self.want_subnets(cx)?, &got);
        c.tags(&cx.tags(), &have.tags);
        Ok(c.into_vec())
    }

    async fn create(&self, cx: &NodeCx<'_>) -> Result<Ids, Failure> {
        let out = cx
            .cx
            .clients
            .rds
            .create_db_subnet_group()
            .db_subnet_group_name(Self::name(cx))
            .db_subnet_group_description(format!(
                "{}: isolated subnets for Aurora (tap-provision)",
                cx.env_full()
            ))
            .set_subnet_ids(Some(self.want_subnets(cx)?))
            .set_tags(Some(rds_tags(&cx.tags())))
            .send()
            .await?;
        let arn = out
            .db_subnet_group()
            .and_then(|g| g.db_subnet_group_arn())
            .map(String::from);
        Ok(Ids {
            id: Self::name(cx),
            arn,
        })
    }

    async fn update(
        &self,
        cx: &NodeCx<'_>,
        have: &Observed,
        changes: &[Change],
    ) -> Result<(), Failure> {
        let rds = &cx.cx.clients.rds;
        if changes.iter().any(|c| c.field == "subnets") {
            rds.modify_db_subnet_group()
                .db_subnet_group_name(Self::name(cx))
                .set_subnet_ids(Some(self.want_subnets(cx)?))
                .send()
                .await?;
        }
        if changes.iter().any(|c| c.field.starts_with("tags.")) {
            if let Some(arn) = have.group.db_subnet_group_arn() {
                rds.add_tags_to_resource()
                    .resource_name(arn)
                    .set_tags(Some(rds_tags(&cx.tags())))
                    .send()
                    .await?;
            }
        }
        Ok(())
    }

    async fn delete(&self, cx: &NodeCx<'_>, _have: &Observed) -> Result<(), Failure> {
        let rds = &cx.cx.clients.rds;
        let name = Self::name(cx);
        // Still in use for a moment after the cluster is gone.
        crate::aws::retry::eventually(
            std::time::Duration::from_secs(300),
            |f| f.code == "InvalidDBSubnetGroupStateFault",
            || async {
                rds.delete_db_subnet_group()
                    .db_subnet_group_name(&name)
                    .send()
                    .await
                    .or_absent()
                    .map(|_| ())
            },
        )
        .await
    }
}
