//! Mermaid rendering of the declared transitions.

use crate::{Kind, Node, Status, EDGES};
use std::fmt::Write;

/// The `stateDiagram-v2` of the machine, generated from [`EDGES`].
pub fn mermaid() -> String {
    render(None)
}

/// The diagram with the state types reporting `current` highlighted (for
/// the live `/diagram` route).
pub fn mermaid_highlighted(current: Status) -> String {
    render(Some(current))
}

fn render(current: Option<Status>) -> String {
    let mut out = String::from("stateDiagram-v2\n");
    for edge in EDGES {
        // Writing to a String cannot fail.
        let _ = writeln!(out, "    {} --> {} : {}", edge.from, edge.to, edge.label);
    }
    if let Some(status) = current {
        out.push_str("    classDef current fill:#f96,stroke:#333,stroke-width:3px\n");
        for kind in Kind::ALL.iter().filter(|k| k.status() == status) {
            let _ = writeln!(out, "    class {} current", Node::State(*kind));
        }
    }
    out
}
