//! Templates in specs: strings with `${...}` placeholders filled when used, so a recorded
//! spec says what was asked for in any account. `${partition}`, `${region}`, `${account}`,
//! `${project}` and `${env}` (the environment's full name) come from the scope;
//! `${<node>.<attr>}` from a node the spec reads (attr: `id`, `arn`, `secret_arn`,
//! `endpoint`, `port`, `arn_suffix`: what CloudWatch's ELB dimensions name, `app/<name>/<id>`
//! of a load balancer's ARN, `targetgroup/<name>/<id>` of a target group's).

use serde_json::Value;

use super::Scope;
use crate::error::Failure;
use crate::model::{Inputs, Ref};

/// Fills a template's placeholders (pure): `${partition}`, `${region}`, `${account}`,
/// `${env}` from the scope; `${<node>.<attr>}` (attr: `id`, `arn`, `secret_arn`) from the
/// inputs, unknown in `plan` until that node exists.
pub fn render(
    template: &Value,
    scope: &Scope,
    inputs: &Inputs<'_>,
    reads: &[Ref],
) -> Result<Value, Failure> {
    Ok(match template {
        Value::String(s) => Value::String(fill(s, scope, inputs, reads)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| render(v, scope, inputs, reads))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render(v, scope, inputs, reads)?)))
                .collect::<Result<_, Failure>>()?,
        ),
        other => other.clone(),
    })
}

fn fill(text: &str, scope: &Scope, inputs: &Inputs<'_>, reads: &[Ref]) -> Result<String, Failure> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        let key = &rest[start + 2..start + len];
        let value = match key {
            "partition" => scope.partition.clone(),
            "region" => scope.region.clone(),
            "account" => scope.account.clone(),
            "env" => scope.env_full.clone(),
            "project" => scope.project.clone(),
            other => {
                let (node, attr) = other.rsplit_once('.').unwrap_or((other, "id"));
                let r = reads.iter().find(|r| r.node == node).ok_or_else(|| {
                    Failure::new(
                        "UndeclaredInput",
                        format!("template names `{node}`, which the node does not read (a bug in tap-provision)"),
                    )
                })?;
                match attr {
                    "arn" => inputs.arn(r)?.to_string(),
                    "secret_arn" => inputs
                        .attr(r, "secret ARN", |a| a.secret_arn.as_deref())?
                        .to_string(),
                    "endpoint" => inputs
                        .attr(r, "endpoint", |a| a.endpoint.as_deref())?
                        .to_string(),
                    "port" => inputs.port(r)?,
                    "arn_suffix" => arn_suffix(inputs.arn(r)?).to_string(),
                    _ => inputs.id(r)?.to_string(),
                }
            }
        };
        out.push_str(&value);
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The part of an ELB ARN that CloudWatch's `LoadBalancer` and `TargetGroup` dimensions
/// name: after `:loadbalancer/` for a load balancer, after the last `:` for a target group.
pub fn arn_suffix(arn: &str) -> &str {
    match arn.split_once(":loadbalancer/") {
        Some((_, rest)) => rest,
        None => arn.rsplit(':').next().unwrap_or(arn),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Attrs;
    use serde_json::json;

    #[test]
    fn templates_fill_from_the_scope() {
        let scope = Scope {
            project: "tap".into(),
            env: "prod".into(),
            env_full: "tap-prod".into(),
            region: "eu-west-1".into(),
            account: "123456789012".into(),
            partition: "aws".into(),
        };
        let t = json!({"Resource": ["arn:${partition}:logs:${region}:${account}:log-group:/tap/${env}/x", "${db-cluster.secret_arn}"]});
        let values = vec![(
            "db-cluster".to_string(),
            Some(Attrs {
                secret_arn: Some("arn:secret".into()),
                ..Attrs::id("tap-prod-db")
            }),
        )];
        let reads = [Ref::id("db-cluster")];
        let inputs = Inputs::new("role", &values, true);
        let v = render(&t, &scope, &inputs, &reads).unwrap();
        assert_eq!(
            v["Resource"][0],
            "arn:aws:logs:eu-west-1:123456789012:log-group:/tap/tap-prod/x"
        );
        assert_eq!(v["Resource"][1], "arn:secret");
        assert_eq!(
            arn_suffix("arn:aws:elasticloadbalancing:eu-west-1:1:loadbalancer/app/tap-prod-alb/50dc6c495c0c9188"),
            "app/tap-prod-alb/50dc6c495c0c9188"
        );
        assert_eq!(
            arn_suffix("arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/tap-prod-backend/73e2d6bc24d8a067"),
            "targetgroup/tap-prod-backend/73e2d6bc24d8a067"
        );
        let missing = json!("${sg-db.id}");
        assert_eq!(
            render(&missing, &scope, &inputs, &reads).unwrap_err().code,
            "UndeclaredInput"
        );
    }
}
