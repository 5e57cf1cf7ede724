//! The environment's CloudWatch dashboard, named `<project>-<env>`: its body is a template
//! whose metric dimensions are filled from the live resources. Found by name (CloudWatch
//! dashboards carry no tags); the body is compared as a JSON document.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::template::{render, Attr, Template};
use super::{output, NodeCx, Resource};
use crate::aws::errors::OrAbsent;
use crate::diff::{fields, Change, Changes};
use crate::error::Failure;
use crate::model::{Attrs, Inputs, Output};
use crate::policy::{grant, Grants, On};

fields! {
    /// The fields a dashboard is compared on, as `plan`, `drift` and `history` name them.
    enum Field {
        Body = "body",
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Dashboard {
    /// The body (CloudWatch's dashboard JSON) with `${node.attr}` placeholders.
    pub body: Template,
}

pub struct Observed {
    arn: Option<String>,
    body: Value,
}

impl Dashboard {
    fn name(&self, cx: &NodeCx<'_>) -> String {
        cx.env_full().to_string()
    }

    fn attrs_of(&self, cx: &NodeCx<'_>, arn: Option<String>) -> Attrs {
        let region = &cx.scope().region;
        let name = self.name(cx);
        let mut a = Attrs::id(&name);
        // Dashboards are global: their ARN has no region, and follows from the name.
        let scope = cx.scope();
        a.arn = Some(arn.unwrap_or_else(|| {
            format!(
                "arn:{}:cloudwatch::{}:dashboard/{name}",
                scope.partition, scope.account
            )
        }));
        a.url = Some(format!(
            "https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#dashboards/dashboard/{name}"
        ));
        a
    }

    fn rendered(&self, cx: &NodeCx<'_>, inputs: &Inputs<'_>) -> Result<Value, Failure> {
        render(&self.body, cx.scope(), inputs)
    }

    async fn put(&self, cx: &NodeCx<'_>, inputs: &Inputs<'_>) -> Result<(), Failure> {
        let out = cx
            .aws()
            .cloudwatch
            .put_dashboard()
            .dashboard_name(self.name(cx))
            .dashboard_body(self.rendered(cx, inputs)?.to_string())
            .send()
            .await?;
        if let Some(m) = out.dashboard_validation_messages().first() {
            return Err(Failure::new(
                "InvalidDashboard",
                format!(
                    "dashboard {}: {} (at {})",
                    self.name(cx),
                    m.message().unwrap_or_default(),
                    m.data_path().unwrap_or("the body")
                ),
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl Resource for Dashboard {
    type Observed = Observed;
    const KIND: &'static str = "dashboard";
    const GRANTS: &'static Grants = &Grants {
        read: &[grant(
            &["cloudwatch:GetDashboard"],
            On::Arns(&["arn:${partition}:cloudwatch::${account}:dashboard/${env}"]),
        )],
        write: &[grant(
            &["cloudwatch:PutDashboard"],
            On::Arns(&["arn:${partition}:cloudwatch::${account}:dashboard/${env}"]),
        )],
        delete: &[grant(
            &["cloudwatch:DeleteDashboards"],
            On::Arns(&["arn:${partition}:cloudwatch::${account}:dashboard/${env}"]),
        )],
    };
    const FIELDS: &'static [&'static str] = Field::NAMES;
    const PUBLISHES: &'static [Attr] = &[Attr::Id, Attr::Arn];

    async fn observe(&self, cx: &NodeCx<'_>) -> Result<Option<Observed>, Failure> {
        let Some(out) = cx
            .aws()
            .cloudwatch
            .get_dashboard()
            .dashboard_name(self.name(cx))
            .send()
            .await
            .or_absent()?
        else {
            return Ok(None);
        };
        let body = out
            .dashboard_body()
            .and_then(|b| serde_json::from_str(b).ok())
            .unwrap_or(Value::Null);
        Ok(Some(Observed {
            arn: out.dashboard_arn().map(String::from),
            body,
        }))
    }

    fn planned_attrs(&self, cx: &NodeCx<'_>) -> Option<Attrs> {
        Some(self.attrs_of(cx, None))
    }

    fn attrs(&self, cx: &NodeCx<'_>, have: &Observed) -> Result<Attrs, Failure> {
        Ok(self.attrs_of(cx, have.arn.clone()))
    }

    fn diff(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &Observed,
        c: &mut Changes,
    ) -> Result<(), Failure> {
        c.document(Field::Body, &self.rendered(cx, inputs)?, &have.body);
        Ok(())
    }

    async fn create(&self, cx: &NodeCx<'_>, inputs: &Inputs<'_>) -> Result<Attrs, Failure> {
        // PutDashboard creates or replaces by name.
        self.put(cx, inputs).await?;
        Ok(self.attrs_of(cx, None))
    }

    async fn update(
        &self,
        cx: &NodeCx<'_>,
        inputs: &Inputs<'_>,
        have: &Observed,
        _changes: &[Change],
    ) -> Result<Attrs, Failure> {
        self.put(cx, inputs).await?;
        Ok(self.attrs_of(cx, have.arn.clone()))
    }

    async fn delete(&self, cx: &NodeCx<'_>, _have: &Observed) -> Result<(), Failure> {
        cx.aws()
            .cloudwatch
            .delete_dashboards()
            .dashboard_names(self.name(cx))
            .send()
            .await
            .or_absent()?;
        Ok(())
    }

    fn outputs(&self, attrs: &Attrs) -> Vec<Output> {
        vec![output("dashboard_url", &attrs.url)]
    }
}
