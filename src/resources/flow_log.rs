//! VPC flow logs: ALL traffic to the KMS-encrypted log group, delivered with its role.

use async_trait::async_trait;
use aws_sdk_ec2::types::{
    FlowLog as AwsFlowLog, FlowLogsResourceType, LogDestinationType, ResourceType, TrafficType,
};
use serde::{Deserialize, Serialize};

use super::{NodeCx, Resource};
use crate::aws::errors::OrAbsent;
use crate::aws::retry::{self, NEW_ROLE_EC2};
use crate::aws::tags;
use crate::diff::{fields, tags_changed, Change, Changes};
use crate::error::Failure;
use crate::model::{Attrs, Inputs, RecordedIds, Ref};
use crate::policy::{grant, Grants, On, EC2_DESCRIBE};

fields! {
    /// The fields a flow log is compared on, as `plan`, `drift` and `history` name them.
    enum Field {
        ResourceId = "resource_id",
        TrafficType = "traffic_type",
        LogDestinationType = "log_destination_type",
        LogGroupName = "log_group_name",
        DeliverLogsPermissionArn = "deliver_logs_permission_arn",
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct FlowLog {
    pub vpc: Ref,
    pub log_group: Ref,
    pub role: Ref,
}

fn flow_log_id(f: &AwsFlowLog) -> Result<&str, Failure> {
    f.flow_log_id()
        .ok_or_else(|| Failure::missing("flow log id"))
}

#[async_trait]
impl Resource for FlowLog {
    type Observed = AwsFlowLog;
    const KIND: &'static str = "flow_log";
    const GRANTS: &'static Grants = &Grants {
        read: &[grant(&["ec2:DescribeFlowLogs"], On::Any(EC2_DESCRIBE))],
        write: &[
            grant(&["ec2:CreateFlowLogs"], On::Creating),
            grant(&["ec2:CreateTags"], On::TagOnCreate("ec2:CreateAction")),
            grant(&["ec2:CreateTags"], On::Tagged),
            grant(
                &["iam:PassRole"],
                On::Arns(&["arn:${partition}:iam::${account}:role/${env}-vpc-flow-logs"]),
            ),
        ],
        delete: &[grant(&["ec2:DeleteFlowLogs"], On::Tagged)],
    };
    const FIELDS: &'static [&'static str] = Field::NAMES;

    async fn observe(&self, cx: &NodeCx<'_>) -> Result<Option<AwsFlowLog>, Failure> {
        cx.ec2_find(Self::KIND).await
    }

    async fn observe_recorded(
        &self,
        cx: &NodeCx<'_>,
        recorded: &RecordedIds,
    ) -> Result<Option<AwsFlowLog>, Failure> {
        cx.ec2_recorded(Self::KIND, recorded).await
    }

    fn attrs(&self, _cx: &NodeCx<'_>, have: &AwsFlowLog) -> Result<Attrs, Failure> {
        Ok(Attrs::id(flow_log_id(have)?))
    }

    fn diff(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &AwsFlowLog,
        c: &mut Changes,
    ) -> Result<(), Failure> {
        c.immutable(
            Field::ResourceId,
            inputs.id(&self.vpc)?,
            have.resource_id().unwrap_or(""),
        );
        c.immutable(
            Field::TrafficType,
            "ALL",
            have.traffic_type().map(|t| t.as_str()).unwrap_or(""),
        );
        c.immutable(
            Field::LogDestinationType,
            "cloud-watch-logs",
            have.log_destination_type()
                .map(|t| t.as_str())
                .unwrap_or("cloud-watch-logs"),
        );
        c.immutable(
            Field::LogGroupName,
            inputs.id(&self.log_group)?,
            have.log_group_name().unwrap_or(""),
        );
        c.immutable(
            Field::DeliverLogsPermissionArn,
            inputs.arn(&self.role)?,
            have.deliver_logs_permission_arn().unwrap_or(""),
        );
        c.tags(cx.tags(), &tags::from_ec2(have.tags()));
        Ok(())
    }

    async fn create(&self, cx: &NodeCx<'_>, inputs: &Inputs<'_>) -> Result<Attrs, Failure> {
        let vpc = inputs.id(&self.vpc)?;
        let group = inputs.id(&self.log_group)?;
        let role_arn = inputs.arn(&self.role)?;
        let ec2 = &cx.aws().ec2;
        // A token of this run: its SDK retries reuse it; a later run finds what this one
        // made by its tags first, and never sends it again (EC2 would answer a token it saw
        // before with that flow log, deleted since or not).
        let token = cx.run_token(&[vpc, group, role_arn]);
        // CreateFlowLogs reports a role it cannot assume per item, not as an error.
        let id = retry::on(&[&NEW_ROLE_EC2], || async {
            let out = ec2
                .create_flow_logs()
                .resource_ids(vpc)
                .resource_type(FlowLogsResourceType::Vpc)
                .traffic_type(TrafficType::All)
                .log_destination_type(LogDestinationType::CloudWatchLogs)
                .log_group_name(group)
                .deliver_logs_permission_arn(role_arn)
                .max_aggregation_interval(60)
                .client_token(&token)
                .tag_specifications(tags::ec2_spec(ResourceType::VpcFlowLog, cx.tags()))
                .send()
                .await?;
            if let Some(item) = out.unsuccessful().first() {
                let e = item.error();
                let code = e.and_then(|e| e.code()).unwrap_or("Unsuccessful");
                return Err(Failure::new(
                    code,
                    format!(
                        "{code}: {}",
                        e.and_then(|e| e.message()).unwrap_or("no reason given")
                    ),
                ));
            }
            out.flow_log_ids()
                .first()
                .cloned()
                .ok_or_else(|| Failure::missing("flow log id"))
        })
        .await?;
        Ok(Attrs::id(id))
    }

    async fn update(
        &self,
        cx: &NodeCx<'_>,
        _inputs: &Inputs<'_>,
        have: &AwsFlowLog,
        changes: &[Change],
    ) -> Result<Attrs, Failure> {
        let id = flow_log_id(have)?;
        if tags_changed(changes) {
            tags::retag_ec2(&cx.aws().ec2, id, cx.tags()).await?;
        }
        Ok(Attrs::id(id))
    }

    /// A flow log holds no data (its log group does): one delivering elsewhere or with
    /// another role is replaced.
    fn replaceable(&self) -> bool {
        true
    }

    async fn delete(&self, cx: &NodeCx<'_>, have: &AwsFlowLog) -> Result<(), Failure> {
        let out = cx
            .aws()
            .ec2
            .delete_flow_logs()
            .flow_log_ids(flow_log_id(have)?)
            .send()
            .await
            .or_absent()?;
        // DeleteFlowLogs reports an unknown id per item: gone is success.
        if let Some(item) = out.as_ref().and_then(|o| o.unsuccessful().first()) {
            let code = item
                .error()
                .and_then(|e| e.code())
                .unwrap_or("Unsuccessful");
            if !code.ends_with("NotFound") {
                return Err(Failure::new(code, format!("deleting flow log: {code}")));
            }
        }
        Ok(())
    }
}
