//! VPC flow logs: ALL traffic to the KMS-encrypted log group, delivered with its role.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::types::{
    FlowLog as AwsFlowLog, FlowLogsResourceType, LogDestinationType, ResourceType, TrafficType,
};

use super::{single, Ids, NodeCx, Resource};
use crate::aws::inventory::of_node;
use crate::aws::{retry, tags};
use crate::diff::{Change, Changes};
use crate::error::Failure;

pub struct FlowLog {
    pub vpc: String,
    pub log_group: String,
    pub role: String,
}

#[async_trait]
impl Resource for FlowLog {
    type Observed = AwsFlowLog;
    const KIND: &'static str = "flow_log";

    async fn find(&self, cx: &NodeCx<'_>) -> Result<Option<AwsFlowLog>, Failure> {
        let all = cx.cx.ec2.flow_logs().await?;
        Ok(single(
            cx,
            Self::KIND,
            of_node(all, AwsFlowLog::tags, &cx.env_full(), cx.node),
        )
        .cloned())
    }

    fn ids(&self, _cx: &NodeCx<'_>, have: &AwsFlowLog) -> Result<Ids, Failure> {
        Ok(Ids::id(
            have.flow_log_id()
                .ok_or_else(|| Failure::missing("flow log id"))?,
        ))
    }

    fn diff(&self, cx: &NodeCx<'_>, have: &AwsFlowLog) -> Result<Vec<Change>, Failure> {
        let vpc = cx.ids_of(&self.vpc)?;
        let group = cx.ids_of(&self.log_group)?;
        let role = cx.ids_of(&self.role)?;
        let mut c = Changes::default();
        c.immutable(
            "resource_id",
            vpc.id.as_str(),
            have.resource_id().unwrap_or(""),
        );
        c.immutable(
            "traffic_type",
            "ALL",
            have.traffic_type().map(|t| t.as_str()).unwrap_or(""),
        );
        c.immutable(
            "log_group_name",
            group.id.as_str(),
            have.log_group_name().unwrap_or(""),
        );
        c.immutable(
            "deliver_logs_permission_arn",
            role.arn(&self.role)?,
            have.deliver_logs_permission_arn().unwrap_or(""),
        );
        c.tags(&cx.tags(), &tags::from_ec2(have.tags()));
        Ok(c.into_vec())
    }

    async fn create(&self, cx: &NodeCx<'_>) -> Result<Ids, Failure> {
        let vpc = cx.ids_of(&self.vpc)?;
        let group = cx.ids_of(&self.log_group)?;
        let role = cx.ids_of(&self.role)?;
        let role_arn = role.arn(&self.role)?.to_string();
        let ec2 = &cx.cx.clients.ec2;
        // PLATFORM.md: a new IAM role may not be assumable yet: retry "Unable to assume given
        // IAM role" for 2 minutes. CreateFlowLogs reports it per item, not as an error.
        let id = retry::eventually(
            Duration::from_secs(120),
            |f| f.code == "InvalidParameter" && f.message.contains("Unable to assume"),
            || async {
                let out = ec2
                    .create_flow_logs()
                    .resource_ids(&vpc.id)
                    .resource_type(FlowLogsResourceType::Vpc)
                    .traffic_type(TrafficType::All)
                    .log_destination_type(LogDestinationType::CloudWatchLogs)
                    .log_group_name(&group.id)
                    .deliver_logs_permission_arn(&role_arn)
                    .max_aggregation_interval(60)
                    .client_token(cx.token())
                    .tag_specifications(tags::ec2_spec(ResourceType::VpcFlowLog, &cx.tags()))
                    .send()
                    .await?;
                if let Some(item) = out.unsuccessful().first() {
                    let e = item.error();
                    return Err(Failure::new(
                        e.and_then(|e| e.code()).unwrap_or("Unsuccessful"),
                        format!(
                            "{}: {}",
                            e.and_then(|e| e.code()).unwrap_or("Unsuccessful"),
                            e.and_then(|e| e.message()).unwrap_or("no reason given")
                        ),
                    ));
                }
                out.flow_log_ids()
                    .first()
                    .cloned()
                    .ok_or_else(|| Failure::missing("flow log id"))
            },
        )
        .await?;
        Ok(Ids::id(id))
    }

    async fn update(
        &self,
        cx: &NodeCx<'_>,
        have: &AwsFlowLog,
        changes: &[Change],
    ) -> Result<(), Failure> {
        let id = have
            .flow_log_id()
            .ok_or_else(|| Failure::missing("flow log id"))?;
        super::retag_ec2(cx, id, changes).await
    }

    async fn delete(&self, cx: &NodeCx<'_>, have: &AwsFlowLog) -> Result<(), Failure> {
        let id = have
            .flow_log_id()
            .ok_or_else(|| Failure::missing("flow log id"))?;
        cx.cx
            .clients
            .ec2
            .delete_flow_logs()
            .flow_log_ids(id)
            .send()
            .await?;
        Ok(())
    }
}
