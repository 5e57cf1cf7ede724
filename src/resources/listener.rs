//! The load balancer's listeners (80: a permanent redirect to 443; 443: HTTPS with the
//! certificate, a TLS 1.2+ policy and a fixed 404 by default) and the HTTPS listener's rules
//! (`/api/*` to the backend, `/*` to the frontend). Found through the environment's load
//! balancer (looked up by name once per run): a listener by its port, a rule by its priority.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, Certificate, FixedResponseActionConfig, Listener as AwsListener,
    PathPatternConditionConfig, ProtocolEnum, RedirectActionConfig, RedirectActionStatusCodeEnum,
    Rule, RuleCondition, RulePriorityPair,
};
use futures_util::future::try_join_all;
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use super::load_balancer::{elb_tag_list, elb_tags, find_load_balancer, retag_elb};
use super::{NodeCx, Resource};
use crate::aws::errors::{OrAbsent, Required};
use crate::diff::{beyond, beyond_tags, fields, has, tags_changed, Change, Changes};
use crate::error::Failure;
use crate::model::{Attrs, Inputs, RecordedIds, Ref};
use crate::policy::{grant, Grant, Grants, On, ELB_DESCRIBE};
use crate::resources::template::Attr;

fields! {
    /// The fields a listener is compared on, as `plan`, `drift` and `history` name them.
    enum Field {
        LoadBalancerArn = "load_balancer_arn",
        Protocol = "protocol",
        Certificate = "certificate",
        SslPolicy = "ssl_policy",
        DefaultAction = "default_action",
        PathPatterns = "path_patterns",
        Actions = "actions",
        /// A listener's port, a rule's priority: what each is found by, so a change to
        /// either is found through the applied record's ARN and put back.
        Port = "port",
        Priority = "priority",
    }
}

/// TLS 1.2 and 1.3 only.
pub const SSL_POLICY: &str = "ELBSecurityPolicy-TLS13-1-2-2021-06";

/// What a listener does with a request no rule takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DefaultAction {
    /// 301 to HTTPS on 443, same host, path and query.
    RedirectToHttps,
    /// A fixed 404.
    NotFound,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Listener {
    pub load_balancer: Ref,
    pub port: i32,
    /// HTTPS with this certificate (it must be ISSUED: a readiness input); HTTP without.
    pub certificate: Option<Ref>,
    pub default: DefaultAction,
}

/// The run's one listing of the load balancer's listeners and their rules.
#[derive(Default)]
struct Listeners(OnceCell<Vec<(AwsListener, Vec<Rule>)>>);

async fn listeners(cx: &NodeCx<'_>) -> Result<Vec<(AwsListener, Vec<Rule>)>, Failure> {
    let cache = cx.shared::<Listeners>();
    let all = cache
        .0
        .get_or_try_init(|| async {
            let Some(lb) = find_load_balancer(cx).await? else {
                return Ok::<_, Failure>(Vec::new());
            };
            let elb = &cx.aws().elb;
            let found = elb
                .describe_listeners()
                .load_balancer_arn(lb.load_balancer_arn().required("load balancer ARN")?)
                .into_paginator()
                .items()
                .send()
                .collect::<Result<Vec<_>, _>>()
                .await
                .or_absent()?
                .unwrap_or_default();
            // Each listener's rules at once: one round of latency, not one per listener.
            let rules = try_join_all(found.iter().map(|l| async {
                Ok::<_, Failure>(
                    elb.describe_rules()
                        .listener_arn(l.listener_arn().required("listener ARN")?)
                        .into_paginator()
                        .items()
                        .send()
                        .collect::<Result<Vec<_>, _>>()
                        .await
                        .or_absent()?
                        .unwrap_or_default(),
                )
            }))
            .await?;
            Ok(found.into_iter().zip(rules).collect())
        })
        .await?;
    Ok(all.clone())
}

/// An action as compared: its kind and where it sends.
fn describe_action(a: &Action) -> String {
    match a.r#type() {
        Some(ActionTypeEnum::Redirect) => {
            let r = a.redirect_config();
            format!(
                "redirect {}:{} {}",
                r.and_then(|r| r.protocol()).unwrap_or("#{protocol}"),
                r.and_then(|r| r.port()).unwrap_or("#{port}"),
                r.and_then(|r| r.status_code())
                    .map(|s| s.as_str())
                    .unwrap_or("")
            )
        }
        Some(ActionTypeEnum::FixedResponse) => {
            let f = a.fixed_response_config();
            format!("fixed {}", f.and_then(|f| f.status_code()).unwrap_or(""))
        }
        Some(ActionTypeEnum::Forward) => format!(
            "forward {}",
            a.target_group_arn()
                .or_else(|| {
                    a.forward_config()
                        .and_then(|f| f.target_groups().first())
                        .and_then(|t| t.target_group_arn())
                })
                .unwrap_or("")
        ),
        Some(other) => other.as_str().to_string(),
        None => "(none)".to_string(),
    }
}

impl DefaultAction {
    fn action(self) -> Action {
        match self {
            DefaultAction::RedirectToHttps => Action::builder()
                .r#type(ActionTypeEnum::Redirect)
                .redirect_config(
                    RedirectActionConfig::builder()
                        .protocol("HTTPS")
                        .port("443")
                        .status_code(RedirectActionStatusCodeEnum::Http301)
                        .build(),
                )
                .build(),
            DefaultAction::NotFound => Action::builder()
                .r#type(ActionTypeEnum::FixedResponse)
                .fixed_response_config(
                    FixedResponseActionConfig::builder()
                        .status_code("404")
                        .content_type("text/plain")
                        .message_body("Not found")
                        .build(),
                )
                .build(),
        }
    }
}

pub struct ObservedListener {
    listener: AwsListener,
    tags: BTreeMap<String, String>,
}

fn listener_attrs(l: &AwsListener) -> Result<Attrs, Failure> {
    let arn = l
        .listener_arn()
        .ok_or_else(|| Failure::missing("listener ARN"))?;
    Ok(Attrs::id(arn).with_arn(arn))
}

impl Listener {
    fn protocol(&self) -> ProtocolEnum {
        if self.certificate.is_some() {
            ProtocolEnum::Https
        } else {
            ProtocolEnum::Http
        }
    }

    fn certificate_arn<'a>(&self, inputs: &Inputs<'a>) -> Result<Option<&'a str>, Failure> {
        self.certificate.as_ref().map(|c| inputs.id(c)).transpose()
    }
}

/// What a listener and a rule read: each finds itself from its load balancer down, and its
/// tags in bulk or with ELB's own read.
const READS: &[Grant] = &[
    crate::policy::BULK_TAGS,
    grant(
        &[
            "elasticloadbalancing:DescribeLoadBalancers",
            "elasticloadbalancing:DescribeListeners",
            "elasticloadbalancing:DescribeRules",
            "elasticloadbalancing:DescribeTags",
        ],
        On::Any(ELB_DESCRIBE),
    ),
];

#[async_trait]
impl Resource for Listener {
    type Observed = ObservedListener;
    const KIND: &'static str = "listener";
    const GRANTS: &'static Grants = &Grants {
        read: READS,
        write: &[
            grant(&["elasticloadbalancing:CreateListener"], On::Creating),
            grant(
                &["elasticloadbalancing:AddTags"],
                On::TagOnCreate("elasticloadbalancing:CreateAction"),
            ),
            grant(
                &[
                    "elasticloadbalancing:ModifyListener",
                    "elasticloadbalancing:AddTags",
                ],
                On::Tagged,
            ),
        ],
        delete: &[grant(&["elasticloadbalancing:DeleteListener"], On::Tagged)],
    };
    const FIELDS: &'static [&'static str] = Field::NAMES;
    const PUBLISHES: &'static [Attr] = &[Attr::Id, Attr::Arn];

    async fn observe(&self, cx: &NodeCx<'_>) -> Result<Option<ObservedListener>, Failure> {
        let Some((listener, _)) = listeners(cx)
            .await?
            .into_iter()
            .find(|(l, _)| l.port() == Some(self.port))
        else {
            return Ok(None);
        };
        let tags = elb_tags(cx, listener.listener_arn().required("listener ARN")?).await?;
        Ok(Some(ObservedListener { listener, tags }))
    }

    /// Found by its port above; by the recorded ARN when the port was changed.
    async fn observe_recorded(
        &self,
        cx: &NodeCx<'_>,
        recorded: &RecordedIds,
    ) -> Result<Option<ObservedListener>, Failure> {
        let arn = recorded.arn.as_deref().unwrap_or(&recorded.id);
        let Some(out) = cx
            .aws()
            .elb
            .describe_listeners()
            .listener_arns(arn)
            .send()
            .await
            .or_absent()?
        else {
            return Ok(None);
        };
        let Some(listener) = out.listeners().first().cloned() else {
            return Ok(None);
        };
        let tags = elb_tags(cx, arn).await?;
        cx.not_claimed(Self::KIND, arn, &tags)?;
        Ok(Some(ObservedListener { listener, tags }))
    }

    fn attrs(&self, _cx: &NodeCx<'_>, have: &ObservedListener) -> Result<Attrs, Failure> {
        listener_attrs(&have.listener)
    }

    fn diff(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &ObservedListener,
        c: &mut Changes,
    ) -> Result<(), Failure> {
        let l = &have.listener;
        c.immutable(
            Field::LoadBalancerArn,
            inputs.id(&self.load_balancer)?,
            l.load_balancer_arn().unwrap_or(""),
        );
        c.field(Field::Port, Some(self.port), l.port());
        c.field(
            Field::Protocol,
            self.protocol().as_str(),
            l.protocol().map(|p| p.as_str()).unwrap_or(""),
        );
        if let Some(want) = self.certificate_arn(inputs)? {
            c.field(
                Field::Certificate,
                Some(want),
                l.certificates().first().and_then(|c| c.certificate_arn()),
            );
            c.field(Field::SslPolicy, Some(SSL_POLICY), l.ssl_policy());
        }
        let have_actions: Vec<String> = l.default_actions().iter().map(describe_action).collect();
        c.field(
            Field::DefaultAction,
            vec![describe_action(&self.default.action())],
            have_actions,
        );
        c.tags(cx.tags(), &have.tags);
        Ok(())
    }

    async fn create(&self, cx: &NodeCx<'_>, inputs: &Inputs<'_>) -> Result<Attrs, Failure> {
        let mut call = cx
            .aws()
            .elb
            .create_listener()
            .load_balancer_arn(inputs.id(&self.load_balancer)?)
            .port(self.port)
            .protocol(self.protocol())
            .default_actions(self.default.action())
            .set_tags(Some(elb_tag_list(cx.tags())));
        if let Some(cert) = self.certificate_arn(inputs)? {
            call = call
                .certificates(Certificate::builder().certificate_arn(cert).build())
                .ssl_policy(SSL_POLICY);
        }
        let out = call.send().await?;
        listener_attrs(
            out.listeners()
                .first()
                .ok_or_else(|| Failure::missing("listener"))?,
        )
    }

    async fn update(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &ObservedListener,
        changes: &[Change],
    ) -> Result<Attrs, Failure> {
        let arn = have.listener.listener_arn().required("listener ARN")?;
        if beyond_tags(changes) {
            let mut call = cx
                .aws()
                .elb
                .modify_listener()
                .listener_arn(arn)
                .port(self.port)
                .protocol(self.protocol())
                .default_actions(self.default.action());
            if let Some(cert) = self.certificate_arn(inputs)? {
                call = call
                    .certificates(Certificate::builder().certificate_arn(cert).build())
                    .ssl_policy(SSL_POLICY);
            }
            call.send().await?;
        }
        if tags_changed(changes) {
            retag_elb(cx, arn).await?;
        }
        listener_attrs(&have.listener)
    }

    async fn delete(&self, cx: &NodeCx<'_>, have: &ObservedListener) -> Result<(), Failure> {
        cx.aws()
            .elb
            .delete_listener()
            .listener_arn(have.listener.listener_arn().required("listener ARN")?)
            .send()
            .await
            .or_absent()?;
        Ok(())
    }
}

/// A rule of the HTTPS listener: these paths go to this target group.
#[derive(Debug, Serialize, Deserialize)]
pub struct ListenerRule {
    pub listener: Ref,
    /// The listener's port, to find the rule without reading another node.
    pub listener_port: i32,
    pub priority: i32,
    pub paths: Vec<String>,
    pub target_group: Ref,
}

pub struct ObservedRule {
    rule: Rule,
    tags: BTreeMap<String, String>,
}

fn rule_attrs(r: &Rule) -> Result<Attrs, Failure> {
    let arn = r.rule_arn().ok_or_else(|| Failure::missing("rule ARN"))?;
    Ok(Attrs::id(arn).with_arn(arn))
}

fn rule_paths(r: &Rule) -> Vec<String> {
    let mut paths: Vec<String> = r
        .conditions()
        .iter()
        .filter(|c| c.field() == Some("path-pattern"))
        .flat_map(|c| {
            c.path_pattern_config()
                .map(|p| p.values().to_vec())
                .unwrap_or_else(|| c.values().to_vec())
        })
        .collect();
    paths.sort();
    paths
}

impl ListenerRule {
    fn condition(&self) -> RuleCondition {
        RuleCondition::builder()
            .field("path-pattern")
            .path_pattern_config(
                PathPatternConditionConfig::builder()
                    .set_values(Some(self.paths.clone()))
                    .build(),
            )
            .build()
    }

    fn action(&self, inputs: &Inputs<'_>) -> Result<Action, Failure> {
        Ok(Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .target_group_arn(inputs.id(&self.target_group)?)
            .build())
    }
}

#[async_trait]
impl Resource for ListenerRule {
    type Observed = ObservedRule;
    const KIND: &'static str = "listener_rule";
    const GRANTS: &'static Grants = &Grants {
        read: READS,
        write: &[
            grant(&["elasticloadbalancing:CreateRule"], On::Creating),
            grant(
                &["elasticloadbalancing:AddTags"],
                On::TagOnCreate("elasticloadbalancing:CreateAction"),
            ),
            grant(
                &[
                    "elasticloadbalancing:SetRulePriorities",
                    "elasticloadbalancing:ModifyRule",
                    "elasticloadbalancing:AddTags",
                ],
                On::Tagged,
            ),
        ],
        delete: &[grant(&["elasticloadbalancing:DeleteRule"], On::Tagged)],
    };
    const FIELDS: &'static [&'static str] = Field::NAMES;
    const PUBLISHES: &'static [Attr] = &[Attr::Id, Attr::Arn];

    async fn observe(&self, cx: &NodeCx<'_>) -> Result<Option<ObservedRule>, Failure> {
        let priority = self.priority.to_string();
        let rule = listeners(cx)
            .await?
            .into_iter()
            .filter(|(l, _)| l.port() == Some(self.listener_port))
            .flat_map(|(_, rules)| rules)
            .find(|r| r.priority() == Some(priority.as_str()));
        let Some(rule) = rule else {
            return Ok(None);
        };
        let tags = elb_tags(cx, rule.rule_arn().required("rule ARN")?).await?;
        Ok(Some(ObservedRule { rule, tags }))
    }

    /// Found by its priority above; by the recorded ARN when the priority was changed.
    async fn observe_recorded(
        &self,
        cx: &NodeCx<'_>,
        recorded: &RecordedIds,
    ) -> Result<Option<ObservedRule>, Failure> {
        let arn = recorded.arn.as_deref().unwrap_or(&recorded.id);
        let Some(out) = cx
            .aws()
            .elb
            .describe_rules()
            .rule_arns(arn)
            .send()
            .await
            .or_absent()?
        else {
            return Ok(None);
        };
        let Some(rule) = out.rules().first().cloned() else {
            return Ok(None);
        };
        let tags = elb_tags(cx, arn).await?;
        cx.not_claimed(Self::KIND, arn, &tags)?;
        Ok(Some(ObservedRule { rule, tags }))
    }

    fn attrs(&self, _cx: &NodeCx<'_>, have: &ObservedRule) -> Result<Attrs, Failure> {
        rule_attrs(&have.rule)
    }

    fn diff(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &ObservedRule,
        c: &mut Changes,
    ) -> Result<(), Failure> {
        let mut want = self.paths.clone();
        want.sort();
        c.field(
            Field::Priority,
            Some(self.priority.to_string().as_str()),
            have.rule.priority(),
        );
        c.field(Field::PathPatterns, want, rule_paths(&have.rule));
        let actions: Vec<String> = have.rule.actions().iter().map(describe_action).collect();
        c.field(
            Field::Actions,
            vec![describe_action(&self.action(inputs)?)],
            actions,
        );
        c.tags(cx.tags(), &have.tags);
        Ok(())
    }

    async fn create(&self, cx: &NodeCx<'_>, inputs: &Inputs<'_>) -> Result<Attrs, Failure> {
        let out = cx
            .aws()
            .elb
            .create_rule()
            .listener_arn(inputs.id(&self.listener)?)
            .priority(self.priority)
            .conditions(self.condition())
            .actions(self.action(inputs)?)
            .set_tags(Some(elb_tag_list(cx.tags())))
            .send()
            .await?;
        rule_attrs(
            out.rules()
                .first()
                .ok_or_else(|| Failure::missing("rule"))?,
        )
    }

    async fn update(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &ObservedRule,
        changes: &[Change],
    ) -> Result<Attrs, Failure> {
        let arn = have.rule.rule_arn().required("rule ARN")?;
        if has(changes, Field::Priority) {
            cx.aws()
                .elb
                .set_rule_priorities()
                .rule_priorities(
                    RulePriorityPair::builder()
                        .rule_arn(arn)
                        .priority(self.priority)
                        .build(),
                )
                .send()
                .await?;
        }
        if beyond(changes, &[Field::Priority]) {
            cx.aws()
                .elb
                .modify_rule()
                .rule_arn(arn)
                .conditions(self.condition())
                .actions(self.action(inputs)?)
                .send()
                .await?;
        }
        if tags_changed(changes) {
            retag_elb(cx, arn).await?;
        }
        rule_attrs(&have.rule)
    }

    async fn delete(&self, cx: &NodeCx<'_>, have: &ObservedRule) -> Result<(), Failure> {
        cx.aws()
            .elb
            .delete_rule()
            .rule_arn(have.rule.rule_arn().required("rule ARN")?)
            .send()
            .await
            .or_absent()?;
        Ok(())
    }
}
