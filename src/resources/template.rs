//! Templates in specs: strings with `${...}` placeholders filled when used, so a recorded
//! spec says what was asked for in any account. The nodes a template names are what its
//! spec reads ([`super::declared`]): written once, in the template. `${partition}`, `${region}`, `${account}`,
//! `${project}`, `${env}` (the environment's full name) and `${env_name}` (its own name,
//! `prod`) come from the scope;
//! `${<node>.<attr>}` from a node the spec reads (attr: `id`, `arn`, `secret_arn`,
//! `endpoint`, `port`, `arn_suffix`: what CloudWatch's ELB dimensions name, `app/<name>/<id>`
//! of a load balancer's ARN, `targetgroup/<name>/<id>` of a target group's).

use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use super::Scope;
use crate::error::Failure;
use crate::model::{Inputs, Ref};

/// The serde name a [`Template`] serializes under, so the graph builder can find every
/// template in a spec ([`super::declared`]).
pub const TEMPLATE: &str = "Template";

/// A JSON value whose strings may hold placeholders (see the module's doc). Stored in the
/// applied record as the plain value; the nodes it names are its reads.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct Template(pub Value);

impl Serialize for Template {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_newtype_struct(TEMPLATE, &self.0)
    }
}

impl Template {
    /// The value as text: a string as it is, anything else as JSON.
    pub fn to_text(&self) -> String {
        match &self.0 {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
}

impl From<Value> for Template {
    fn from(v: Value) -> Self {
        Template(v)
    }
}

impl From<&str> for Template {
    fn from(v: &str) -> Self {
        Template(Value::String(v.to_string()))
    }
}

impl From<String> for Template {
    fn from(v: String) -> Self {
        Template(Value::String(v))
    }
}

/// A value of the environment a placeholder may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeValue {
    Partition,
    Region,
    Account,
    /// The environment's full name (`tap-prod`).
    Env,
    /// The environment's own name (`prod`), as IAM paths hold it (`/tap/prod/`).
    EnvName,
    Project,
}

/// An attribute of another node a placeholder may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attr {
    Id,
    Arn,
    SecretArn,
    Endpoint,
    Port,
    ArnSuffix,
}

impl Attr {
    /// Its name in a placeholder (`secret_arn`).
    pub fn name(self) -> &'static str {
        ATTRS
            .iter()
            .find(|(_, a)| *a == self)
            .map_or("?", |(n, _)| *n)
    }
}

const ATTRS: [(&str, Attr); 6] = [
    ("id", Attr::Id),
    ("arn", Attr::Arn),
    ("secret_arn", Attr::SecretArn),
    ("endpoint", Attr::Endpoint),
    ("port", Attr::Port),
    ("arn_suffix", Attr::ArnSuffix),
];

const SCOPE: [(&str, ScopeValue); 6] = [
    ("partition", ScopeValue::Partition),
    ("region", ScopeValue::Region),
    ("account", ScopeValue::Account),
    ("project", ScopeValue::Project),
    ("env", ScopeValue::Env),
    ("env_name", ScopeValue::EnvName),
];

/// One `${...}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder<'a> {
    Scope(ScopeValue),
    Node { node: &'a str, attr: Attr },
}

/// A template string cut into its text and its placeholders.
enum Piece<'a> {
    Text(&'a str),
    Hole(Placeholder<'a>),
}

fn pieces(text: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push(Piece::Text(&rest[..start]));
        let Some(len) = rest[start..].find('}') else {
            return Err(format!("`{text}`: unclosed `${{`"));
        };
        let key = &rest[start + 2..start + len];
        out.push(Piece::Hole(placeholder(key)?));
        rest = &rest[start + len + 1..];
    }
    out.push(Piece::Text(rest));
    Ok(out)
}

fn placeholder(key: &str) -> Result<Placeholder<'_>, String> {
    if let Some((_, v)) = SCOPE.iter().find(|(name, _)| *name == key) {
        return Ok(Placeholder::Scope(*v));
    }
    let Some((node, attr)) = key.rsplit_once('.') else {
        let names: Vec<&str> = SCOPE.iter().map(|(n, _)| *n).collect();
        return Err(format!(
            "`${{{key}}}` is neither a value of the environment ({}) nor `<node>.<attribute>`",
            names.join(", ")
        ));
    };
    if node.is_empty() {
        return Err(format!("`${{{key}}}` names no node"));
    }
    match ATTRS.iter().find(|(name, _)| *name == attr) {
        Some((_, a)) => Ok(Placeholder::Node { node, attr: *a }),
        None => {
            let names: Vec<&str> = ATTRS.iter().map(|(n, _)| *n).collect();
            Err(format!(
                "`${{{key}}}`: unknown attribute `{attr}` (one of {})",
                names.join(", ")
            ))
        }
    }
}

/// The placeholders of one template string, or what is wrong with it (pure).
pub fn placeholders(text: &str) -> Result<Vec<Placeholder<'_>>, String> {
    Ok(pieces(text)?
        .into_iter()
        .filter_map(|p| match p {
            Piece::Hole(h) => Some(h),
            Piece::Text(_) => None,
        })
        .collect())
}

/// Fills a template's placeholders (pure): the environment's values from the scope, the
/// other nodes' attributes from the inputs (unknown in `plan` until that node exists).
pub fn render(template: &Template, scope: &Scope, inputs: &Inputs<'_>) -> Result<Value, Failure> {
    render_value(&template.0, scope, inputs)
}

/// Fills one template string (see [`render`]).
pub fn render_str(text: &str, scope: &Scope, inputs: &Inputs<'_>) -> Result<String, Failure> {
    fill(text, scope, inputs)
}

fn render_value(template: &Value, scope: &Scope, inputs: &Inputs<'_>) -> Result<Value, Failure> {
    Ok(match template {
        Value::String(s) => Value::String(fill(s, scope, inputs)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| render_value(v, scope, inputs))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render_value(v, scope, inputs)?)))
                .collect::<Result<_, Failure>>()?,
        ),
        other => other.clone(),
    })
}

fn fill(text: &str, scope: &Scope, inputs: &Inputs<'_>) -> Result<String, Failure> {
    let mut out = String::new();
    for piece in pieces(text).map_err(|e| Failure::new("BadTemplate", e))? {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Hole(Placeholder::Scope(v)) => out.push_str(match v {
                ScopeValue::Partition => &scope.partition,
                ScopeValue::Region => &scope.region,
                ScopeValue::Account => &scope.account,
                ScopeValue::Env => &scope.env_full,
                ScopeValue::EnvName => &scope.env,
                ScopeValue::Project => &scope.project,
            }),
            Piece::Hole(Placeholder::Node { node, attr }) => {
                let r = Ref::id(node);
                let value = match attr {
                    Attr::Id => inputs.id(&r)?.to_string(),
                    Attr::Arn => inputs.arn(&r)?.to_string(),
                    Attr::SecretArn => inputs
                        .attr(&r, "secret ARN", |a| a.secret_arn.as_deref())?
                        .to_string(),
                    Attr::Endpoint => inputs
                        .attr(&r, "endpoint", |a| a.endpoint.as_deref())?
                        .to_string(),
                    Attr::Port => inputs.port(&r)?,
                    Attr::ArnSuffix => arn_suffix(inputs.arn(&r)?).to_string(),
                };
                out.push_str(&value);
            }
        }
    }
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
        let t = Template(
            json!({"Resource": ["arn:${partition}:logs:${region}:${account}:log-group:/tap/${env}/x", "${db-cluster.secret_arn}"]}),
        );
        let values = vec![(
            "db-cluster".to_string(),
            Some(Attrs {
                secret_arn: Some("arn:secret".into()),
                ..Attrs::id("tap-prod-db")
            }),
        )];
        let inputs = Inputs::new("role", &values, true);
        let v = render(&t, &scope, &inputs).unwrap();
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
        // A node the spec does not read (not among its inputs) is never filled.
        let missing = Template(json!("${sg-db.id}"));
        assert_eq!(
            render(&missing, &scope, &inputs).unwrap_err().code,
            "UndeclaredInput"
        );
    }

    #[test]
    fn a_template_is_stored_as_its_plain_value() {
        let t = Template(json!({"a": "${x.id}"}));
        assert_eq!(serde_json::to_value(&t).unwrap(), json!({"a": "${x.id}"}));
        let back: Template = serde_json::from_value(json!({"a": "${x.id}"})).unwrap();
        assert_eq!(back, t);
    }
}
