//! The DB subnet group: exactly the isolated subnets.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_rds::types::DbSubnetGroup as AwsDbSubnetGroup;
use serde::{Deserialize, Serialize};

use super::{NodeCx, Resource};
use crate::aws::errors::OrAbsent;
use crate::aws::retry::{self, DB_SUBNET_GROUP_IN_USE};
use crate::aws::tags;
use crate::diff::{fields, has, tags_changed, Change, Changes};
use crate::error::Failure;
use crate::model::{Attrs, Inputs, Ref};
use crate::policy::{grant, Grants, On};
use crate::resources::template::Attr;

fields! {
    /// The fields a db subnet group is compared on, as `plan`, `drift` and `history` name them.
    enum Field {
        Subnets = "subnets",
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct DbSubnetGroup {
    /// The isolated subnets.
    pub subnets: Vec<Ref>,
}

pub struct Observed {
    group: AwsDbSubnetGroup,
    tags: BTreeMap<String, String>,
}

impl DbSubnetGroup {
    fn name(cx: &NodeCx<'_>) -> String {
        cx.env_full().to_string()
    }

    fn want_subnets(&self, inputs: &Inputs<'_>) -> Result<Vec<String>, Failure> {
        let mut ids = self
            .subnets
            .iter()
            .map(|s| Ok(inputs.id(s)?.to_string()))
            .collect::<Result<Vec<_>, Failure>>()?;
        ids.sort();
        Ok(ids)
    }
}

#[async_trait]
impl Resource for DbSubnetGroup {
    type Observed = Observed;
    const KIND: &'static str = "db_subnet_group";
    const GRANTS: &'static Grants = &Grants {
        read: &[
            crate::policy::BULK_TAGS,
            grant(
                &["rds:DescribeDBSubnetGroups", "rds:ListTagsForResource"],
                On::Arns(&["arn:${partition}:rds:${region}:${account}:subgrp:${env}"]),
            ),
        ],
        write: &[grant(
            &[
                "rds:CreateDBSubnetGroup",
                "rds:ModifyDBSubnetGroup",
                "rds:AddTagsToResource",
            ],
            On::Arns(&["arn:${partition}:rds:${region}:${account}:subgrp:${env}"]),
        )],
        delete: &[grant(
            &["rds:DeleteDBSubnetGroup"],
            On::Arns(&["arn:${partition}:rds:${region}:${account}:subgrp:${env}"]),
        )],
    };
    const FIELDS: &'static [&'static str] = Field::NAMES;
    const PUBLISHES: &'static [Attr] = &[Attr::Id, Attr::Arn];
    const TAGS_READ_AHEAD: bool = true;

    async fn observe(&self, cx: &NodeCx<'_>) -> Result<Option<Observed>, Failure> {
        let rds = &cx.aws().rds;
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
        let own = async {
            let listed = rds
                .list_tags_for_resource()
                .resource_name(arn)
                .send()
                .await
                .or_absent()?;
            Ok(listed.map(|l| tags::from_rds(l.tag_list())))
        };
        let Some(tags) = cx.tags_of(arn, own).await? else {
            return Ok(None);
        };
        Ok(Some(Observed { tags, group }))
    }

    fn planned_attrs(&self, cx: &NodeCx<'_>) -> Option<Attrs> {
        let name = Self::name(cx);
        Some(Attrs::id(&name).with_arn(cx.arn("rds", &format!("subgrp:{name}"))))
    }

    fn attrs(&self, cx: &NodeCx<'_>, have: &Observed) -> Result<Attrs, Failure> {
        let mut a = Attrs::id(Self::name(cx));
        a.arn = have.group.db_subnet_group_arn().map(String::from);
        Ok(a)
    }

    fn diff(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &Observed,
        c: &mut Changes,
    ) -> Result<(), Failure> {
        let mut got: Vec<String> = have
            .group
            .subnets()
            .iter()
            .filter_map(|s| s.subnet_identifier().map(String::from))
            .collect();
        got.sort();
        c.set(Field::Subnets, &self.want_subnets(inputs)?, &got);
        c.tags(cx.tags(), &have.tags);
        Ok(())
    }

    async fn create(&self, cx: &NodeCx<'_>, inputs: &Inputs<'_>) -> Result<Attrs, Failure> {
        let out = cx
            .aws()
            .rds
            .create_db_subnet_group()
            .db_subnet_group_name(Self::name(cx))
            .db_subnet_group_description(format!(
                "{}: isolated subnets for Aurora (tap-provision)",
                cx.env_full()
            ))
            .set_subnet_ids(Some(self.want_subnets(inputs)?))
            .set_tags(Some(tags::rds(cx.tags())))
            .send()
            .await?;
        let mut a = Attrs::id(Self::name(cx));
        a.arn = out
            .db_subnet_group()
            .and_then(|g| g.db_subnet_group_arn())
            .map(String::from);
        Ok(a)
    }

    async fn update(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &Observed,
        changes: &[Change],
    ) -> Result<Attrs, Failure> {
        let rds = &cx.aws().rds;
        if has(changes, Field::Subnets) {
            rds.modify_db_subnet_group()
                .db_subnet_group_name(Self::name(cx))
                .set_subnet_ids(Some(self.want_subnets(inputs)?))
                .send()
                .await?;
        }
        if let (true, Some(arn)) = (tags_changed(changes), have.group.db_subnet_group_arn()) {
            tags::retag_rds(rds, arn, cx.tags()).await?;
        }
        self.attrs(cx, have)
    }

    async fn delete(&self, cx: &NodeCx<'_>, _have: &Observed) -> Result<(), Failure> {
        let rds = &cx.aws().rds;
        let name = Self::name(cx);
        retry::on(&[&DB_SUBNET_GROUP_IN_USE], || async {
            rds.delete_db_subnet_group()
                .db_subnet_group_name(&name)
                .send()
                .await
                .or_absent()
                .map(|_| ())
        })
        .await
    }
}
