//! DOT and Mermaid renderings of the step graph. Solid edges need identifiers, dashed edges
//! need readiness.

use std::fmt::Write;

use super::{Graph, Needs};

pub fn to_dot<T>(graph: &Graph<T>, name: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph \"{name}\" {{");
    let _ = writeln!(out, "  rankdir=LR;");
    let _ = writeln!(out, "  node [shape=box, fontname=\"monospace\"];");
    for n in graph.nodes() {
        let _ = writeln!(out, "  \"{}\" [label=\"{}\\n{}\"];", n.id, n.id, n.kind);
    }
    for (node, dep, needs) in graph.edges() {
        let style = match needs {
            Needs::Id => "solid",
            Needs::Ready => "dashed",
        };
        let _ = writeln!(
            out,
            "  \"{}\" -> \"{}\" [label=\"{needs}\", style={style}];",
            graph.node(dep).id,
            graph.node(node).id
        );
    }
    out.push_str("}\n");
    out
}

pub fn to_mermaid<T>(graph: &Graph<T>) -> String {
    let key = |id: &str| id.replace(|c: char| !c.is_ascii_alphanumeric(), "_");
    let mut out = String::from("flowchart LR\n");
    for n in graph.nodes() {
        let _ = writeln!(
            out,
            "  {}[\"{}<br/><small>{}</small>\"]",
            key(&n.id),
            n.id,
            n.kind
        );
    }
    for (node, dep, needs) in graph.edges() {
        let arrow = match needs {
            Needs::Id => "-->|id|",
            Needs::Ready => "-.->|ready|",
        };
        let _ = writeln!(
            out,
            "  {} {arrow} {}",
            key(&graph.node(dep).id),
            key(&graph.node(node).id)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::Builder;
    use super::*;

    #[test]
    fn renders_both_edge_kinds() {
        let mut b = Builder::default();
        b.add("vpc", "vpc", vec![], ());
        b.add("nat-a", "nat_gateway", vec![("vpc".into(), Needs::Id)], ());
        b.add("app", "x", vec![("nat-a".into(), Needs::Ready)], ());
        let g = b.build().unwrap();
        let dot = to_dot(&g, "tap-test");
        assert!(dot.contains("\"vpc\" -> \"nat-a\" [label=\"id\", style=solid]"));
        assert!(dot.contains("\"nat-a\" -> \"app\" [label=\"ready\", style=dashed]"));
        let m = to_mermaid(&g);
        assert!(m.contains("vpc -->|id| nat_a"));
        assert!(m.contains("nat_a -.->|ready| app"));
    }
}
