//! The step graph of a scheduled run, from the applied record alone (no env file): each node
//! the last `up` had in its config, as it applied it, with its recorded tags. The scheduled
//! repair's own nodes are left out: a scheduled run never changes its schedule, its roles or
//! its task (so its role cannot widen itself).

use std::sync::Arc;

use super::{StepGraph, SCHEDULED_REPAIR};
use crate::executor::Task;
use crate::graph::{Builder, GraphError};
use crate::model::NodeRecord;
use crate::record::{Applied, Record};
use crate::resources::aurora_cluster::AuroraCluster;
use crate::resources::aurora_instance::AuroraInstance;
use crate::resources::backup_plan::BackupPlan;
use crate::resources::backup_vault::BackupVault;
use crate::resources::bucket_policy::BucketPolicy;
use crate::resources::certificate::Certificate;
use crate::resources::dashboard::Dashboard;
use crate::resources::db_subnet_group::DbSubnetGroup;
use crate::resources::distribution::Distribution;
use crate::resources::dns_record::{AliasRecord, ValidationRecords};
use crate::resources::ecs_cluster::EcsCluster;
use crate::resources::ecs_service::EcsService;
use crate::resources::eip::ElasticIp;
use crate::resources::flow_log::FlowLog;
use crate::resources::hosted_zone::HostedZone;
use crate::resources::iam_role::IamRole;
use crate::resources::internet_gateway::InternetGateway;
use crate::resources::kms_key::KmsKey;
use crate::resources::listener::{Listener, ListenerRule};
use crate::resources::load_balancer::LoadBalancer;
use crate::resources::log_group::LogGroup;
use crate::resources::managed_policy::ManagedPolicy;
use crate::resources::metric_alarm::MetricAlarm;
use crate::resources::nat_gateway::NatGateway;
use crate::resources::origin_access::OriginAccess;
use crate::resources::route_table::RouteTable;
use crate::resources::s3_bucket::S3Bucket;
use crate::resources::schedule::Schedule;
use crate::resources::schedule_group::ScheduleGroup;
use crate::resources::secret::Secret;
use crate::resources::security_group::SecurityGroup;
use crate::resources::service_scaling::ServiceScaling;
use crate::resources::sns_topic::SnsTopic;
use crate::resources::subnet::Subnet;
use crate::resources::target_group::TargetGroup;
use crate::resources::task_definition::TaskDefinition;
use crate::resources::vpc::Vpc;
use crate::resources::{Adapter, Cx, Resource};

/// The node as recorded, as kind `R`.
fn adapter<R: Resource>(id: &str, entry: &NodeRecord) -> Result<Arc<dyn Task<Cx>>, String> {
    let spec: R = serde_json::from_value(entry.spec.clone()).map_err(|e| e.to_string())?;
    let task = Adapter::new(id, entry.tags.clone(), spec).map_err(|e| e.join("; "))?;
    Ok(Arc::new(task))
}

/// The one list of every kind, by its name: what a recorded node is made of.
fn recorded_task(id: &str, entry: &NodeRecord) -> Result<Arc<dyn Task<Cx>>, String> {
    macro_rules! kinds {
        ($($kind:ty),* $(,)?) => {
            $(if entry.kind == <$kind as Resource>::KIND {
                return adapter::<$kind>(id, entry);
            })*
        };
    }
    kinds!(
        AliasRecord,
        AuroraCluster,
        AuroraInstance,
        BackupPlan,
        BackupVault,
        BucketPolicy,
        Certificate,
        Dashboard,
        DbSubnetGroup,
        Distribution,
        EcsCluster,
        EcsService,
        ElasticIp,
        FlowLog,
        HostedZone,
        IamRole,
        InternetGateway,
        KmsKey,
        Listener,
        ListenerRule,
        LoadBalancer,
        LogGroup,
        ManagedPolicy,
        MetricAlarm,
        NatGateway,
        OriginAccess,
        RouteTable,
        S3Bucket,
        Schedule,
        ScheduleGroup,
        Secret,
        SecurityGroup,
        ServiceScaling,
        SnsTopic,
        Subnet,
        TargetGroup,
        TaskDefinition,
        ValidationRecords,
        Vpc,
    );
    Err(format!(
        "recorded as a `{}`, a kind this version does not know",
        entry.kind
    ))
}

/// True for the scheduled repair's own nodes.
pub fn is_scheduled_repair(node: &str) -> bool {
    node.starts_with(SCHEDULED_REPAIR)
}

/// The graph of what the last `up` applied (see the module's doc).
pub fn from_record(record: &Record, applied: &Applied) -> Result<StepGraph, Vec<GraphError>> {
    let mut builder = Builder::default();
    for id in applied.nodes.iter().filter(|id| !is_scheduled_repair(id)) {
        let Some(entry) = record.nodes.get(id) else {
            builder.reject(GraphError::Spec {
                node: id.clone(),
                message: "the last `up` had it, the record has no entry for it (the run that made it did not finish): run `up`".into(),
            });
            continue;
        };
        match recorded_task(id, entry) {
            Ok(task) => {
                let deps = task
                    .inputs()
                    .into_iter()
                    .map(|r| (r.node, r.needs))
                    .collect();
                let kind = task.kind();
                builder.add(id.clone(), kind, deps, task);
            }
            Err(message) => builder.reject(GraphError::Spec {
                node: id.clone(),
                message,
            }),
        }
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Repair;
    use std::collections::BTreeSet;

    #[test]
    fn every_kind_of_the_graph_is_rebuilt_from_its_record() {
        let env = super::super::tests::env(3);
        let graph = super::super::build(&env).unwrap();
        let mut record = Record::new("tap-prod");
        for node in graph.nodes() {
            record.nodes.insert(node.id.clone(), node.payload.record());
        }
        let applied = Applied {
            project: "tap".into(),
            env: "prod".into(),
            region: "eu-west-1".into(),
            wait_seconds: 1200,
            repair: Repair::default(),
            nodes: graph.nodes().iter().map(|n| n.id.clone()).collect(),
        };
        let Ok(again) = from_record(&record, &applied) else {
            panic!("the record did not rebuild");
        };
        let edges = |g: &StepGraph| -> BTreeSet<(String, String, String)> {
            g.edges()
                .map(|(n, d, needs)| {
                    (
                        g.node(n).id.clone(),
                        g.node(d).id.clone(),
                        needs.to_string(),
                    )
                })
                .collect()
        };
        assert_eq!(again.len(), graph.len());
        assert_eq!(edges(&again), edges(&graph));
        for node in again.nodes() {
            let original = graph.index_of(&node.id).unwrap();
            assert_eq!(node.payload.record(), graph.node(original).payload.record());
        }
        // A node removed from the config since is not in the last `up`'s list: never made.
        let mut fewer = applied.clone();
        fewer.nodes.retain(|n| n != "alarm-target-5xx");
        let Ok(g) = from_record(&record, &fewer) else {
            panic!("fewer nodes did not rebuild");
        };
        assert!(g.index_of("alarm-target-5xx").is_none());
        // A kind this version does not know is named.
        let mut odd = record.clone();
        odd.nodes.get_mut("vpc").unwrap().kind = "quantum_link".into();
        let Err(errors) = from_record(&odd, &applied) else {
            panic!("an unknown kind was taken");
        };
        assert!(errors
            .iter()
            .any(|e| e.to_string().contains("`quantum_link`")));
    }
}
