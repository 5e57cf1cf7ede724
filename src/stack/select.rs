//! `--only`: part of an environment, by area (PLATFORM.md's inventory names them) or by node.
//! `up` acts on the selection and what it depends on; `down` on the selection and what
//! depends on it; `plan`, `drift` and `repair` read what the selection needs and report and
//! act on the selection alone. The state bucket always comes along (it holds the lock); `down`
//! removes it only when `state` is named.

use std::collections::BTreeSet;

use super::{StepGraph, STATE_BUCKET};

/// The areas, in PLATFORM.md's order, with `state` last.
pub const AREAS: &[&str] = &[
    "encryption",
    "network",
    "certificates",
    "database",
    "backups",
    "compute",
    "load-balancing",
    "static-assets",
    "dns",
    "alerting",
    "scheduled-repair",
    "state",
];

/// The area node `id` belongs to (PLATFORM.md's inventory row), by its stable id. `None`
/// for a node no area names: the unit tests keep every node of the graph in one.
pub fn area_of(id: &str) -> Option<&'static str> {
    let starts = |p: &str| id.starts_with(p);
    Some(match id {
        "kms-key" => "encryption",
        STATE_BUCKET => "state",
        "hosted-zone" | "dns-app" | "dns-cdn" => "dns",
        "alb" => "load-balancing",
        "static-bucket"
        | "cdn-log-bucket"
        | "cdn-origin-access"
        | "cdn"
        | "static-bucket-policy" => "static-assets",
        "alerts-topic" | "dashboard" => "alerting",
        "vpc" | "internet-gateway" | "flow-logs" | "flow-logs-group" | "flow-logs-role" => {
            "network"
        }
        _ if starts("certificate") => "certificates",
        _ if starts(super::SCHEDULED_REPAIR) => "scheduled-repair",
        _ if starts("db-") => "database",
        _ if starts("backup-") => "backups",
        _ if starts("tg-") || starts("listener-") || starts("rule-") => "load-balancing",
        _ if starts("alarm-") => "alerting",
        _ if ["logs-", "ecs-", "task-", "service-", "scaling-"]
            .iter()
            .any(|p| starts(p)) =>
        {
            "compute"
        }
        _ if ["subnet-", "route-table-", "eip-", "nat-", "sg-"]
            .iter()
            .any(|p| starts(p)) =>
        {
            "network"
        }
        _ => return None,
    })
}

/// Which way a selection grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// With everything it depends on (`up`, and what `plan`, `drift`, `repair` read).
    Dependencies,
    /// With everything that depends on it (`down`).
    Dependents,
}

/// A part of the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// What `--only` named (with the state bucket, but for `down`): what is reported.
    pub chosen: BTreeSet<String>,
    /// With what it reaches: what the run's graph holds.
    pub reach: BTreeSet<String>,
}

impl Selection {
    pub fn contains(&self, node: &str) -> bool {
        self.chosen.contains(node)
    }
}

/// The selection `names` (areas or node ids, as `--only` gives them) make in `graph`. An
/// unknown name is an error naming the areas and where the nodes are listed.
pub fn select(graph: &StepGraph, names: &[String], reach: Reach) -> Result<Selection, String> {
    let mut chosen = BTreeSet::new();
    if reach == Reach::Dependencies {
        chosen.insert(STATE_BUCKET.to_string());
    }
    let mut unknown = Vec::new();
    let names: Vec<&str> = names
        .iter()
        .map(|n| n.trim())
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() {
        return Err("--only needs an area or a node id".into());
    }
    for name in names {
        if AREAS.contains(&name) {
            let before = chosen.len();
            chosen.extend(
                graph
                    .nodes()
                    .iter()
                    .filter(|n| area_of(&n.id) == Some(name))
                    .map(|n| n.id.clone()),
            );
            if chosen.len() == before && name != "state" {
                return Err(format!(
                    "--only {name}: this environment has nothing in that area{}",
                    if name == "scheduled-repair" {
                        " (its [repair] schedule is off)"
                    } else {
                        ""
                    }
                ));
            }
        } else if graph.index_of(name).is_some() {
            chosen.insert(name.to_string());
        } else {
            unknown.push(name.to_string());
        }
    }
    if !unknown.is_empty() {
        return Err(format!(
            "--only {}: neither an area ({}) nor a node of this environment (`tap-provision graph --areas` lists each area's nodes)",
            unknown.join(","),
            AREAS.join(", ")
        ));
    }
    let mut on: Vec<bool> = graph
        .nodes()
        .iter()
        .map(|n| chosen.contains(&n.id))
        .collect();
    // Topological order, forwards for dependents and backwards for dependencies: one pass.
    let order = graph.topo_order();
    match reach {
        Reach::Dependents => {
            for &ix in &order {
                if graph.node(ix).deps.iter().any(|&(d, _)| on[d]) {
                    on[ix] = true;
                }
            }
        }
        Reach::Dependencies => {
            for &ix in order.iter().rev() {
                if on[ix] {
                    for &(d, _) in &graph.node(ix).deps {
                        on[d] = true;
                    }
                }
            }
        }
    }
    let reach = graph
        .nodes()
        .iter()
        .zip(&on)
        .filter(|(_, on)| **on)
        .map(|(n, _)| n.id.clone())
        .collect();
    Ok(Selection { chosen, reach })
}

/// Each area with its nodes, in graph order: what `graph --areas` prints.
pub fn areas(graph: &StepGraph) -> Vec<(&'static str, Vec<String>)> {
    AREAS
        .iter()
        .map(|&area| {
            let nodes = graph
                .nodes()
                .iter()
                .filter(|n| area_of(&n.id) == Some(area))
                .map(|n| n.id.clone())
                .collect();
            (area, nodes)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::{build, build_for_down, tests::env};

    fn names(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn every_node_of_prod_and_its_schedule_has_an_area() {
        let g = build_for_down(&env(3)).unwrap();
        let lost: Vec<&str> = g
            .nodes()
            .iter()
            .filter(|n| area_of(&n.id).is_none())
            .map(|n| n.id.as_str())
            .collect();
        assert!(lost.is_empty(), "nodes in no area: {lost:?}");
        for (area, nodes) in areas(&g) {
            assert!(!nodes.is_empty(), "{area} has no node");
        }
    }

    #[test]
    fn up_reaches_what_the_selection_stands_on_and_down_what_stands_on_it() {
        let g = build(&env(3)).unwrap();
        let up = select(&g, &names(&["certificates"]), Reach::Dependencies).unwrap();
        assert_eq!(
            up.chosen,
            [
                "certificate",
                "certificate-cdn",
                "certificate-dns",
                STATE_BUCKET
            ]
            .iter()
            .map(|s| s.to_string())
            .collect()
        );
        assert!(up.reach.contains("hosted-zone"), "{:?}", up.reach);
        assert!(!up.reach.contains("vpc"), "{:?}", up.reach);
        let down = select(&g, &names(&["certificates"]), Reach::Dependents).unwrap();
        for n in ["listener-https", "cdn", "certificate-dns"] {
            assert!(down.reach.contains(n), "{n}: {:?}", down.reach);
        }
        assert!(!down.reach.contains("hosted-zone"), "{:?}", down.reach);
        // A node id works as an area does; the state bucket comes along.
        let one = select(&g, &names(&["sg-db"]), Reach::Dependencies).unwrap();
        assert_eq!(
            one.reach,
            ["sg-db", "sg-ecs", "sg-alb", "vpc", STATE_BUCKET]
                .iter()
                .map(|s| s.to_string())
                .collect()
        );
    }

    #[test]
    fn an_unknown_name_is_refused_naming_the_areas() {
        let g = build(&env(3)).unwrap();
        let e = select(&g, &names(&["network", "netwrk"]), Reach::Dependencies).unwrap_err();
        assert!(
            e.contains("--only netwrk") && e.contains("load-balancing"),
            "{e}"
        );
        let e = select(&g, &names(&[" ", ""]), Reach::Dependencies).unwrap_err();
        assert!(e.contains("needs an area"), "{e}");
        let mut off = env(3);
        off.repair.schedule = None;
        let g = build(&off).unwrap();
        let e = select(&g, &names(&["scheduled-repair"]), Reach::Dependents).unwrap_err();
        assert!(e.contains("schedule is off"), "{e}");
    }
}
