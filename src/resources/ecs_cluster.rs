//! The ECS cluster: Container Insights on, FARGATE and FARGATE_SPOT capacity providers.
//! Found by its name, `<project>-<env>`.

use async_trait::async_trait;
use aws_sdk_ecs::types::{
    CapacityProviderStrategyItem, Cluster, ClusterField, ClusterSetting, ClusterSettingName,
};
use serde::{Deserialize, Serialize};

use super::{NodeCx, Resource};
use crate::aws::errors::{OrAbsent, Required};
use crate::aws::retry::{self, NEW_ECS_SERVICE_LINKED_ROLE, SERVICES_DRAINING};
use crate::aws::tags::{self, from_ecs, retag_ecs};
use crate::diff::{fields, has, tags_changed, Change, Changes};
use crate::error::Failure;
use crate::model::{Attrs, Inputs};
use crate::policy::{grant, Grants, On};
use crate::resources::template::Attr;

fields! {
    /// The fields an ecs cluster is compared on, as `plan`, `drift` and `history` name them.
    enum Field {
        ContainerInsights = "container_insights",
        CapacityProviders = "capacity_providers",
    }
}

pub const PROVIDERS: [&str; 2] = ["FARGATE", "FARGATE_SPOT"];

#[derive(Debug, Serialize, Deserialize)]
pub struct EcsCluster {
    pub container_insights: bool,
}

pub struct ObservedCluster {
    cluster: Cluster,
}

/// The cluster's name.
pub fn cluster_name(env_full: &str) -> String {
    env_full.to_string()
}

fn attrs_of(c: &Cluster) -> Result<Attrs, Failure> {
    let arn = c
        .cluster_arn()
        .ok_or_else(|| Failure::missing("cluster ARN"))?;
    let mut a = Attrs::id(c.cluster_name().required("cluster name")?).with_arn(arn);
    a.state = c.status().map(String::from);
    Ok(a)
}

impl EcsCluster {
    fn insights(&self) -> &'static str {
        if self.container_insights {
            "enabled"
        } else {
            "disabled"
        }
    }

    fn setting(&self) -> ClusterSetting {
        ClusterSetting::builder()
            .name(ClusterSettingName::ContainerInsights)
            .value(self.insights())
            .build()
    }

    /// New tasks go to FARGATE unless a service says otherwise.
    fn default_strategy() -> CapacityProviderStrategyItem {
        CapacityProviderStrategyItem::builder()
            .capacity_provider("FARGATE")
            .weight(1)
            .build()
            .expect("capacity provider is set")
    }
}

#[async_trait]
impl Resource for EcsCluster {
    type Observed = ObservedCluster;
    const KIND: &'static str = "ecs_cluster";
    const GRANTS: &'static Grants = &Grants {
        read: &[grant(&["ecs:DescribeClusters"], On::Arns(&["arn:${partition}:ecs:${region}:${account}:cluster/${env}"]))],
        write: &[
            grant(
                &["ecs:CreateCluster", "ecs:UpdateCluster", "ecs:PutClusterCapacityProviders", "ecs:TagResource"],
                On::Arns(&["arn:${partition}:ecs:${region}:${account}:cluster/${env}"]),
            ),
            grant(
                &["iam:CreateServiceLinkedRole"],
                On::Arns(&["arn:${partition}:iam::${account}:role/aws-service-role/ecs.amazonaws.com/AWSServiceRoleForECS"]),
            ),
        ],
        delete: &[grant(&["ecs:DeleteCluster"], On::Arns(&["arn:${partition}:ecs:${region}:${account}:cluster/${env}"]))],
    };
    const FIELDS: &'static [&'static str] = Field::NAMES;
    const PUBLISHES: &'static [Attr] = &[Attr::Id, Attr::Arn];

    async fn observe(&self, cx: &NodeCx<'_>) -> Result<Option<ObservedCluster>, Failure> {
        let out = cx
            .aws()
            .ecs
            .describe_clusters()
            .clusters(cluster_name(cx.env_full()))
            .include(ClusterField::Settings)
            .include(ClusterField::Tags)
            .send()
            .await
            .or_absent()?;
        Ok(out
            .and_then(|o| o.clusters().first().cloned())
            .filter(|c| c.status() == Some("ACTIVE"))
            .map(|cluster| ObservedCluster { cluster }))
    }

    fn attrs(&self, _cx: &NodeCx<'_>, have: &ObservedCluster) -> Result<Attrs, Failure> {
        attrs_of(&have.cluster)
    }

    fn planned_attrs(&self, cx: &NodeCx<'_>) -> Option<Attrs> {
        let name = cluster_name(cx.env_full());
        Some(Attrs::id(&name).with_arn(cx.arn("ecs", &format!("cluster/{name}"))))
    }

    fn diff(
        &self,
        cx: &NodeCx<'_>,
        _inputs: &Inputs<'_>,
        have: &ObservedCluster,
        c: &mut Changes,
    ) -> Result<(), Failure> {
        let cl = &have.cluster;
        let insights = cl
            .settings()
            .iter()
            .find(|s| s.name() == Some(&ClusterSettingName::ContainerInsights))
            .and_then(|s| s.value())
            .unwrap_or("disabled");
        c.field(Field::ContainerInsights, self.insights(), insights);
        let mut providers = cl.capacity_providers().to_vec();
        providers.sort();
        c.set(
            Field::CapacityProviders,
            &PROVIDERS.map(String::from),
            &providers,
        );
        c.tags(cx.tags(), &from_ecs(cl.tags()));
        Ok(())
    }

    async fn create(&self, cx: &NodeCx<'_>, _inputs: &Inputs<'_>) -> Result<Attrs, Failure> {
        // A name already taken answers with that cluster (CreateCluster is idempotent).
        let out = retry::on(&[&NEW_ECS_SERVICE_LINKED_ROLE], || async {
            Ok(cx
                .aws()
                .ecs
                .create_cluster()
                .cluster_name(cluster_name(cx.env_full()))
                .settings(self.setting())
                .set_capacity_providers(Some(PROVIDERS.map(String::from).to_vec()))
                .default_capacity_provider_strategy(Self::default_strategy())
                .set_tags(Some(tags::ecs(cx.tags())))
                .send()
                .await?)
        })
        .await?;
        attrs_of(out.cluster().ok_or_else(|| Failure::missing("cluster"))?)
    }

    async fn update(
        &self,
        cx: &NodeCx<'_>,
        _inputs: &Inputs<'_>,
        have: &ObservedCluster,
        changes: &[Change],
    ) -> Result<Attrs, Failure> {
        let ecs = &cx.aws().ecs;
        let name = cluster_name(cx.env_full());
        if has(changes, Field::ContainerInsights) {
            ecs.update_cluster()
                .cluster(&name)
                .settings(self.setting())
                .send()
                .await?;
        }
        if has(changes, Field::CapacityProviders) {
            retry::on(&[&NEW_ECS_SERVICE_LINKED_ROLE], || async {
                ecs.put_cluster_capacity_providers()
                    .cluster(&name)
                    .set_capacity_providers(Some(PROVIDERS.map(String::from).to_vec()))
                    .default_capacity_provider_strategy(Self::default_strategy())
                    .send()
                    .await?;
                Ok(())
            })
            .await?;
        }
        if tags_changed(changes) {
            retag_ecs(
                ecs,
                have.cluster.cluster_arn().required("cluster ARN")?,
                cx.tags(),
            )
            .await?;
        }
        attrs_of(&have.cluster)
    }

    /// Services go first (the graph deletes them before); ECS refuses while they drain.
    async fn delete(&self, cx: &NodeCx<'_>, _have: &ObservedCluster) -> Result<(), Failure> {
        let ecs = &cx.aws().ecs;
        let name = cluster_name(cx.env_full());
        retry::on(&[&SERVICES_DRAINING], || async {
            ecs.delete_cluster()
                .cluster(&name)
                .send()
                .await
                .or_absent()
                .map(|_| ())
        })
        .await
    }
}
