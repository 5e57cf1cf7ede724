//! What a spec reads, derived from the spec itself: every [`Ref`] field it holds (at any
//! depth: a `Vec<Ref>`, a `Ref` inside a container) and every `${<node>.<attr>}` its
//! [`Template`]s name. So a dependency is declared once, where it is used, and the graph's
//! edges follow from it; a template that names an unknown attribute or never closes its
//! `${` is an error when the graph is built.
//!
//! It walks the spec's serde serialization (the same one the applied record stores) with a
//! serializer that keeps only these two types, told apart by their serde names.

use std::fmt;

use serde::ser::{self, Serialize};
use serde_json::Value;

#[cfg(test)]
use super::template::Template;
use super::template::{placeholders, Attr, Placeholder, TEMPLATE};
use crate::graph::Needs;
use crate::model::Ref;

/// The reads of one spec, and what is wrong with its templates.
#[derive(Debug, Default, PartialEq)]
pub struct Declared {
    /// One per node read, with the strongest need (readiness over identifiers).
    pub refs: Vec<Ref>,
    /// Every `${<node>.<attr>}` of its templates: checked against what `<node>` publishes
    /// once every node is known.
    pub placeholders: Vec<(String, Attr)>,
    pub errors: Vec<String>,
}

/// Derives what `spec` reads (see the module's doc). Pure.
pub fn declared<T: Serialize + ?Sized>(spec: &T) -> Declared {
    let mut c = Collector::default();
    if let Err(e) = spec.serialize(&mut c) {
        c.errors.push(e.0);
    }
    let mut refs: Vec<Ref> = Vec::new();
    for r in c.refs {
        match refs.iter_mut().find(|k| k.node == r.node) {
            Some(k) if r.needs == Needs::Ready => k.needs = Needs::Ready,
            Some(_) => {}
            None => refs.push(r),
        }
    }
    Declared {
        refs,
        placeholders: c.placeholders,
        errors: c.errors,
    }
}

/// The nodes a template value names (every string in it), or what is wrong with it.
fn template_reads(value: &Value, c: &mut Collector) {
    match value {
        Value::String(text) => match placeholders(text) {
            Ok(found) => {
                for p in found {
                    if let Placeholder::Node { node, attr } = p {
                        c.refs.push(Ref::id(node));
                        c.placeholders.push((node.to_string(), attr));
                    }
                }
            }
            Err(e) => c.errors.push(e),
        },
        Value::Array(items) => items.iter().for_each(|v| template_reads(v, c)),
        Value::Object(map) => {
            for (k, v) in map {
                // Keys are not filled, so a placeholder there is a mistake.
                if k.contains("${") {
                    c.errors.push(format!(
                        "`{k}`: placeholders are filled in values, not in keys"
                    ));
                }
                template_reads(v, c);
            }
        }
        _ => {}
    }
}

#[derive(Default)]
struct Collector {
    refs: Vec<Ref>,
    placeholders: Vec<(String, Attr)>,
    errors: Vec<String>,
}

#[derive(Debug)]
struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl ser::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

/// Every primitive is nothing to collect.
macro_rules! nothing {
    ($($name:ident: $ty:ty),* $(,)?) => {
        $(fn $name(self, _v: $ty) -> Result<(), Error> { Ok(()) })*
    };
}

impl<'a> ser::Serializer for &'a mut Collector {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Fields<'a>;
    type SerializeStructVariant = Self;

    nothing!(
        serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32,
        serialize_i64: i64, serialize_u8: u8, serialize_u16: u16, serialize_u32: u32,
        serialize_u64: u64, serialize_f32: f32, serialize_f64: f64, serialize_char: char,
        serialize_str: &str, serialize_bytes: &[u8],
    );

    fn serialize_none(self) -> Result<(), Error> {
        Ok(())
    }
    fn serialize_some<T: ?Sized + Serialize>(self, v: &T) -> Result<(), Error> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Error> {
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<(), Error> {
        Ok(())
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        name: &'static str,
        v: &T,
    ) -> Result<(), Error> {
        if name == TEMPLATE {
            let value = serde_json::to_value(v).map_err(|e| Error(e.to_string()))?;
            template_reads(&value, self);
            return Ok(());
        }
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        v: &T,
    ) -> Result<(), Error> {
        v.serialize(self)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self, Error> {
        Ok(self)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self, Error> {
        Ok(self)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, Error> {
        Ok(self)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, Error> {
        Ok(self)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self, Error> {
        Ok(self)
    }
    fn serialize_struct(self, name: &'static str, _: usize) -> Result<Fields<'a>, Error> {
        Ok(Fields {
            ref_fields: (name == "Ref").then_some((None, None)),
            c: self,
        })
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, Error> {
        Ok(self)
    }
}

impl ser::SerializeSeq for &mut Collector {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, v: &T) -> Result<(), Error> {
        v.serialize(&mut **self)
    }
    fn end(self) -> Result<(), Error> {
        Ok(())
    }
}

impl ser::SerializeTuple for &mut Collector {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, v: &T) -> Result<(), Error> {
        v.serialize(&mut **self)
    }
    fn end(self) -> Result<(), Error> {
        Ok(())
    }
}

impl ser::SerializeTupleStruct for &mut Collector {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, v: &T) -> Result<(), Error> {
        v.serialize(&mut **self)
    }
    fn end(self) -> Result<(), Error> {
        Ok(())
    }
}

impl ser::SerializeTupleVariant for &mut Collector {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, v: &T) -> Result<(), Error> {
        v.serialize(&mut **self)
    }
    fn end(self) -> Result<(), Error> {
        Ok(())
    }
}

impl ser::SerializeMap for &mut Collector {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, k: &T) -> Result<(), Error> {
        k.serialize(&mut **self)
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, v: &T) -> Result<(), Error> {
        v.serialize(&mut **self)
    }
    fn end(self) -> Result<(), Error> {
        Ok(())
    }
}

impl ser::SerializeStructVariant for &mut Collector {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        _: &'static str,
        v: &T,
    ) -> Result<(), Error> {
        v.serialize(&mut **self)
    }
    fn end(self) -> Result<(), Error> {
        Ok(())
    }
}

/// A struct's fields: a [`Ref`]'s are kept (its node and need), any other's walked.
struct Fields<'a> {
    c: &'a mut Collector,
    ref_fields: Option<(Option<String>, Option<Needs>)>,
}

impl ser::SerializeStruct for Fields<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), Error> {
        let Some((node, needs)) = &mut self.ref_fields else {
            return v.serialize(&mut *self.c);
        };
        let value = serde_json::to_value(v).map_err(|e| Error(e.to_string()))?;
        match key {
            "node" => *node = value.as_str().map(String::from),
            "needs" => {
                *needs = Some(
                    serde_json::from_value(value)
                        .map_err(|e| Error(format!("a Ref's need: {e}")))?,
                )
            }
            _ => {}
        }
        Ok(())
    }
    fn end(self) -> Result<(), Error> {
        if let Some((node, needs)) = self.ref_fields {
            match (node, needs) {
                (Some(node), Some(needs)) => self.c.refs.push(Ref { node, needs }),
                _ => return Err(Error("a Ref without its node or need".into())),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;
    use serde_json::json;

    #[derive(Serialize)]
    struct Spec {
        name: String,
        vpc: Ref,
        subnets: Vec<Ref>,
        certificate: Option<Ref>,
        policy: Template,
        nested: Vec<(String, Ref)>,
    }

    fn spec(policy: Value) -> Spec {
        Spec {
            name: "${not-a-template}".into(),
            vpc: Ref::id("vpc"),
            subnets: vec![Ref::id("subnet-a"), Ref::id("subnet-b")],
            certificate: Some(Ref::ready("certificate")),
            policy: Template(policy),
            nested: vec![("x".into(), Ref::id("vpc"))],
        }
    }

    #[test]
    fn refs_and_template_reads_come_from_the_spec() {
        let d = declared(&spec(json!({
            "Resource": ["${logs.arn}:*", "arn:${partition}:s3:::${bucket.id}/*"],
            "Key": "${kms-key.arn}"
        })));
        assert_eq!(d.errors, Vec::<String>::new());
        let mut got: Vec<(String, Needs)> = d.refs.into_iter().map(|r| (r.node, r.needs)).collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("bucket".into(), Needs::Id),
                ("certificate".into(), Needs::Ready),
                ("kms-key".into(), Needs::Id),
                ("logs".into(), Needs::Id),
                ("subnet-a".into(), Needs::Id),
                ("subnet-b".into(), Needs::Id),
                ("vpc".into(), Needs::Id),
            ]
        );
    }

    #[test]
    fn a_wrong_template_is_an_error() {
        for (template, why) in [
            (
                json!("${db-cluster.endpiont}"),
                "unknown attribute `endpiont`",
            ),
            (json!({"a": ["x ${db-cluster.arn"]}), "unclosed"),
            (json!("${regoin}"), "`${regoin}`"),
            (json!("${.arn}"), "no node"),
            (json!({"${x.id}": 1}), "not in keys"),
        ] {
            let d = declared(&spec(template.clone()));
            assert_eq!(d.errors.len(), 1, "{template}: {:?}", d.errors);
            assert!(d.errors[0].contains(why), "{template}: {}", d.errors[0]);
        }
    }

    #[test]
    fn the_strongest_need_of_a_node_wins() {
        #[derive(Serialize)]
        struct Two {
            a: Ref,
            b: Ref,
            t: Template,
        }
        let d = declared(&Two {
            a: Ref::id("cert"),
            b: Ref::ready("cert"),
            t: Template(json!("${cert.arn}")),
        });
        assert_eq!(d.refs, [Ref::ready("cert")]);
    }
}
