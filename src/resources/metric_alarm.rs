//! CloudWatch metric alarms: each watches one metric or a metric-math expression whose
//! dimensions name live resources of the environment (filled from the nodes it reads, so an
//! alarm that watches nothing cannot be built), and notifies the alerts topic on ALARM and
//! on OK. Found by name: the environment's alarms are described once per run, by prefix;
//! tagged at creation.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_cloudwatch::types::{
    ComparisonOperator, Dimension, Metric, MetricAlarm as AwsAlarm, MetricDataQuery, MetricStat,
    Statistic,
};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use super::template::{render, Attr, Template};
use super::{output_item, NodeCx, Resource};
use crate::aws::errors::OrAbsent;
use crate::diff::{beyond_tags, fields, tags_changed, Change, Changes};
use crate::error::Failure;
use crate::model::{Attrs, Inputs, Output, Ref};
use crate::policy::{grant, Grants, On};

fields! {
    /// The fields a metric alarm is compared on, as `plan`, `drift` and `history` name them.
    enum Field {
        Description = "description",
        ActionsEnabled = "actions_enabled",
        AlarmActions = "alarm_actions",
        OkActions = "ok_actions",
        Comparison = "comparison",
        Threshold = "threshold",
        EvaluationPeriods = "evaluation_periods",
        DatapointsToAlarm = "datapoints_to_alarm",
        TreatMissingData = "treat_missing_data",
        Metrics = "metrics",
    }
}

/// One metric and how it is aggregated. Dimension values may hold `${node.attr}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Watched {
    pub namespace: String,
    pub metric_name: String,
    pub dimensions: BTreeMap<String, Template>,
    /// `Average`, `Sum`, `Maximum`, ...
    pub stat: String,
    pub period: i32,
}

/// One line of a metric-math alarm: a metric (`m1`) or an expression over them (`e1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Query {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<Watched>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The one line the alarm compares with its threshold.
    pub return_data: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Watch {
    Metric(Watched),
    Math(Vec<Query>),
}

#[derive(Debug, Serialize, Deserialize)]
pub struct MetricAlarm {
    /// Name suffix: the alarm is `<project>-<env>-<suffix>`.
    pub suffix: String,
    /// What it means and what to check first.
    pub description: String,
    pub watch: Watch,
    /// `GreaterThanThreshold`, `GreaterThanOrEqualToThreshold`, ...
    pub comparison: String,
    pub threshold: f64,
    pub evaluation_periods: i32,
    pub datapoints_to_alarm: i32,
    /// `notBreaching` for utilisation, `breaching` for health.
    pub treat_missing_data: String,
    pub topic: Ref,
}

pub struct Observed {
    alarm: AwsAlarm,
    tags: BTreeMap<String, String>,
}

/// The run's one DescribeAlarms (by the environment's prefix), shared by its alarms.
#[derive(Default)]
struct EnvAlarms(OnceCell<Vec<AwsAlarm>>);

async fn env_alarms(cx: &NodeCx<'_>) -> Result<Vec<AwsAlarm>, Failure> {
    let cache = cx.shared::<EnvAlarms>();
    let all = cache
        .0
        .get_or_try_init(|| async {
            let pages = cx
                .aws()
                .cloudwatch
                .describe_alarms()
                .alarm_name_prefix(format!("{}-", cx.env_full()))
                .into_paginator()
                .send()
                .collect::<Result<Vec<_>, _>>()
                .await
                .map_err(Failure::from)?;
            let all: Vec<_> = pages
                .iter()
                .flat_map(|p| p.metric_alarms().iter().cloned())
                .collect();
            Ok::<_, Failure>(all)
        })
        .await?;
    Ok(all.clone())
}

fn watched_of(metric: Option<&Metric>, stat: Option<&str>, period: Option<i32>) -> Watched {
    Watched {
        namespace: metric
            .and_then(Metric::namespace)
            .unwrap_or_default()
            .into(),
        metric_name: metric
            .and_then(Metric::metric_name)
            .unwrap_or_default()
            .into(),
        dimensions: metric
            .map(Metric::dimensions)
            .unwrap_or_default()
            .iter()
            .filter_map(|d| Some((d.name()?.to_string(), Template::from(d.value()?))))
            .collect(),
        stat: stat.unwrap_or_default().into(),
        period: period.unwrap_or_default(),
    }
}

/// What the live alarm watches, in the spec's terms.
fn live_watch(a: &AwsAlarm) -> Watch {
    if a.metrics().is_empty() {
        let metric = Metric::builder()
            .set_namespace(a.namespace().map(String::from))
            .set_metric_name(a.metric_name().map(String::from))
            .set_dimensions(Some(a.dimensions().to_vec()))
            .build();
        return Watch::Metric(watched_of(
            Some(&metric),
            a.statistic().map(Statistic::as_str),
            a.period(),
        ));
    }
    Watch::Math(
        a.metrics()
            .iter()
            .map(|q| Query {
                id: q.id().unwrap_or_default().into(),
                metric: q
                    .metric_stat()
                    .map(|s| watched_of(s.metric(), s.stat(), s.period())),
                expression: q.expression().map(String::from),
                label: q.label().map(String::from),
                return_data: q.return_data().unwrap_or(true),
            })
            .collect(),
    )
}

fn aws_metric(w: &Watched) -> Metric {
    Metric::builder()
        .namespace(&w.namespace)
        .metric_name(&w.metric_name)
        .set_dimensions(Some(
            w.dimensions
                .iter()
                .map(|(k, v)| Dimension::builder().name(k).value(v.to_text()).build())
                .collect(),
        ))
        .build()
}

impl MetricAlarm {
    fn name(&self, cx: &NodeCx<'_>) -> String {
        format!("{}-{}", cx.env_full(), self.suffix)
    }

    /// The watched metrics with every `${node.attr}` filled from the live resources.
    fn rendered(&self, cx: &NodeCx<'_>, inputs: &Inputs<'_>) -> Result<Watch, Failure> {
        let template = serde_json::to_value(&self.watch)
            .map_err(|e| Failure::new("BadSpec", e.to_string()))?;
        let value = render(&Template(template), cx.scope(), inputs)?;
        serde_json::from_value(value).map_err(|e| Failure::new("BadSpec", e.to_string()))
    }

    fn attrs_of(&self, cx: &NodeCx<'_>, alarm: &AwsAlarm) -> Attrs {
        let mut a = Attrs::id(self.name(cx));
        a.arn = alarm.alarm_arn().map(String::from);
        a.state = alarm.state_value().map(|s| s.as_str().to_string());
        a
    }

    async fn put(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        with_tags: bool,
    ) -> Result<(), Failure> {
        let topic = inputs.arn(&self.topic)?;
        let mut put = cx
            .aws()
            .cloudwatch
            .put_metric_alarm()
            .alarm_name(self.name(cx))
            .alarm_description(&self.description)
            .actions_enabled(true)
            .alarm_actions(topic)
            .ok_actions(topic)
            .comparison_operator(ComparisonOperator::from(self.comparison.as_str()))
            .threshold(self.threshold)
            .evaluation_periods(self.evaluation_periods)
            .datapoints_to_alarm(self.datapoints_to_alarm)
            .treat_missing_data(&self.treat_missing_data);
        put = match self.rendered(cx, inputs)? {
            Watch::Metric(w) => {
                let metric = aws_metric(&w);
                put.namespace(&w.namespace)
                    .metric_name(&w.metric_name)
                    .set_dimensions(Some(metric.dimensions().to_vec()))
                    .statistic(Statistic::from(w.stat.as_str()))
                    .period(w.period)
            }
            Watch::Math(queries) => put.set_metrics(Some(
                queries
                    .iter()
                    .map(|q| {
                        MetricDataQuery::builder()
                            .id(&q.id)
                            .set_expression(q.expression.clone())
                            .set_label(q.label.clone())
                            .return_data(q.return_data)
                            .set_metric_stat(q.metric.as_ref().map(|w| {
                                MetricStat::builder()
                                    .metric(aws_metric(w))
                                    .stat(&w.stat)
                                    .period(w.period)
                                    .build()
                            }))
                            .build()
                    })
                    .collect(),
            )),
        };
        if with_tags {
            put = put.set_tags(Some(Self::aws_tags(cx)));
        }
        put.send().await?;
        Ok(())
    }

    fn aws_tags(cx: &NodeCx<'_>) -> Vec<aws_sdk_cloudwatch::types::Tag> {
        cx.tags()
            .iter()
            .map(|(k, v)| {
                aws_sdk_cloudwatch::types::Tag::builder()
                    .key(k)
                    .value(v)
                    .build()
            })
            .collect()
    }

    async fn find(&self, cx: &NodeCx<'_>) -> Result<Option<AwsAlarm>, Failure> {
        let name = self.name(cx);
        Ok(env_alarms(cx)
            .await?
            .into_iter()
            .find(|a| a.alarm_name() == Some(name.as_str())))
    }
}

#[async_trait]
impl Resource for MetricAlarm {
    type Observed = Observed;
    const KIND: &'static str = "metric_alarm";
    const GRANTS: &'static Grants = &Grants {
        read: &[
            crate::policy::BULK_TAGS,
            grant(
                &["cloudwatch:DescribeAlarms"],
                On::Any("DescribeAlarms by name prefix has no resource-level permission"),
            ),
            grant(
                &["cloudwatch:ListTagsForResource"],
                On::Arns(&[
                    "arn:${partition}:cloudwatch:${region}:${account}:alarm:${env}-${suffix}",
                ]),
            ),
        ],
        write: &[grant(
            &["cloudwatch:PutMetricAlarm", "cloudwatch:TagResource"],
            On::Arns(&["arn:${partition}:cloudwatch:${region}:${account}:alarm:${env}-${suffix}"]),
        )],
        delete: &[grant(
            &["cloudwatch:DeleteAlarms"],
            On::Arns(&["arn:${partition}:cloudwatch:${region}:${account}:alarm:${env}-${suffix}"]),
        )],
    };
    const FIELDS: &'static [&'static str] = Field::NAMES;
    const PUBLISHES: &'static [Attr] = &[Attr::Id, Attr::Arn];
    const TAGS_READ_AHEAD: bool = true;

    fn name_part(&self) -> Option<&str> {
        Some(&self.suffix)
    }

    /// Named by config, so its ARN is known before it exists.
    fn planned_attrs(&self, cx: &NodeCx<'_>) -> Option<Attrs> {
        let name = self.name(cx);
        let arn = cx.arn("cloudwatch", &format!("alarm:{name}"));
        Some(Attrs::id(name).with_arn(arn))
    }

    async fn observe(&self, cx: &NodeCx<'_>) -> Result<Option<Observed>, Failure> {
        let Some(alarm) = self.find(cx).await? else {
            return Ok(None);
        };
        let arn = alarm
            .alarm_arn()
            .ok_or_else(|| Failure::missing("alarm ARN"))?;
        let own = async {
            let listed = cx
                .aws()
                .cloudwatch
                .list_tags_for_resource()
                .resource_arn(arn)
                .send()
                .await
                .or_absent()?;
            Ok(listed.map(|l| crate::aws::tags::from_cloudwatch(l.tags())))
        };
        let Some(tags) = cx.tags_of(arn, own).await? else {
            return Ok(None);
        };
        Ok(Some(Observed { alarm, tags }))
    }

    fn attrs(&self, cx: &NodeCx<'_>, have: &Observed) -> Result<Attrs, Failure> {
        Ok(self.attrs_of(cx, &have.alarm))
    }

    fn diff(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &Observed,
        c: &mut Changes,
    ) -> Result<(), Failure> {
        let a = &have.alarm;
        let topic = inputs.arn(&self.topic)?.to_string();
        c.field(
            Field::Description,
            Some(self.description.as_str()),
            a.alarm_description(),
        );
        c.field(Field::ActionsEnabled, Some(true), a.actions_enabled());
        c.field(
            Field::AlarmActions,
            vec![topic.clone()],
            a.alarm_actions().to_vec(),
        );
        c.field(Field::OkActions, vec![topic], a.ok_actions().to_vec());
        c.field(
            Field::Comparison,
            Some(self.comparison.as_str()),
            a.comparison_operator().map(ComparisonOperator::as_str),
        );
        c.field(Field::Threshold, Some(self.threshold), a.threshold());
        c.field(
            Field::EvaluationPeriods,
            Some(self.evaluation_periods),
            a.evaluation_periods(),
        );
        c.field(
            Field::DatapointsToAlarm,
            Some(self.datapoints_to_alarm),
            a.datapoints_to_alarm(),
        );
        c.field(
            Field::TreatMissingData,
            Some(self.treat_missing_data.as_str()),
            a.treat_missing_data(),
        );
        let want = serde_json::to_value(self.rendered(cx, inputs)?).unwrap_or_default();
        let live = serde_json::to_value(live_watch(a)).unwrap_or_default();
        c.document(Field::Metrics, &want, &live);
        c.tags(cx.tags(), &have.tags);
        Ok(())
    }

    async fn create(&self, cx: &NodeCx<'_>, inputs: &Inputs<'_>) -> Result<Attrs, Failure> {
        // PutMetricAlarm creates or overwrites by name: a retry is harmless.
        self.put(cx, inputs, true).await?;
        let cw = &cx.aws().cloudwatch;
        let found = cw
            .describe_alarms()
            .alarm_names(self.name(cx))
            .send()
            .await?;
        let alarm = found
            .metric_alarms()
            .first()
            .ok_or_else(|| Failure::missing("the alarm just put"))?;
        Ok(self.attrs_of(cx, alarm))
    }

    async fn update(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &Observed,
        changes: &[Change],
    ) -> Result<Attrs, Failure> {
        if beyond_tags(changes) {
            // The whole alarm again (PutMetricAlarm replaces it; its tags stay).
            self.put(cx, inputs, false).await?;
        }
        if tags_changed(changes) {
            if let Some(arn) = have.alarm.alarm_arn() {
                cx.aws()
                    .cloudwatch
                    .tag_resource()
                    .resource_arn(arn)
                    .set_tags(Some(Self::aws_tags(cx)))
                    .send()
                    .await?;
            }
        }
        Ok(self.attrs_of(cx, &have.alarm))
    }

    async fn delete(&self, cx: &NodeCx<'_>, _have: &Observed) -> Result<(), Failure> {
        cx.aws()
            .cloudwatch
            .delete_alarms()
            .alarm_names(self.name(cx))
            .send()
            .await
            .or_absent()?;
        Ok(())
    }

    fn outputs(&self, attrs: &Attrs) -> Vec<Output> {
        vec![output_item(
            "alarms",
            serde_json::json!({
                "name": attrs.id,
                "state": attrs.state.as_deref().unwrap_or("INSUFFICIENT_DATA"),
            }),
        )]
    }
}
