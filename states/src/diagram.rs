//! Mermaid rendering of the declared transitions, in two views of the one
//! table.
//!
//! The **status view** ([`mermaid`]) draws each state type as the status it
//! reports, the way the API and the reference see the machine: the twins
//! (`Reconfiguration` and `Configuration`, `Terminating` and
//! `TerminationPending`, ...) are one node, the edges between two statuses
//! are one edge, and an edge inside one status (a handover) is not drawn.
//! A merged edge takes the label of the first edge declared for it; the
//! table declares the seed's edges first, so where the seed has an edge it
//! keeps the seed's label.
//!
//! The **type view** ([`mermaid_types`]) draws every declared edge between
//! the state types, as the table declares it.

use crate::{Kind, Node, Status, EDGES};
use std::fmt::Write;

/// Which view of the machine to draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum View {
    /// Each state type drawn as the status it reports, edges merged.
    #[default]
    Status,
    /// Every state type and every declared edge.
    Types,
}

/// The status view of the machine (`stateDiagram-v2`), generated from [`EDGES`].
pub fn mermaid() -> String {
    render(View::Status, None)
}

/// The type view of the machine (`stateDiagram-v2`), generated from [`EDGES`].
pub fn mermaid_types() -> String {
    render(View::Types, None)
}

/// The diagram in `view` with `current` highlighted (for the live
/// `/diagram` route): its node in the status view, every type reporting it
/// in the type view.
pub fn mermaid_highlighted(view: View, current: Status) -> String {
    render(view, Some(current))
}

/// One line of the status view: an edge between two statuses, or `[*]`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum StatusNode {
    Start,
    Status(Status),
    End,
}

impl StatusNode {
    fn of(node: Node) -> Self {
        match node {
            Node::Start => StatusNode::Start,
            Node::State(kind) => StatusNode::Status(kind.status()),
            Node::End => StatusNode::End,
        }
    }

    fn name(self) -> &'static str {
        match self {
            StatusNode::Start | StatusNode::End => "[*]",
            StatusNode::Status(status) => status.name(),
        }
    }
}

/// The status view's edges, in the order their first type edge is declared,
/// each with that edge's label.
fn status_edges() -> Vec<(StatusNode, StatusNode, &'static str)> {
    let mut out: Vec<(StatusNode, StatusNode, &'static str)> = Vec::new();
    for edge in EDGES {
        let (from, to) = (StatusNode::of(edge.from), StatusNode::of(edge.to));
        if from == to || out.iter().any(|(f, t, _)| (*f, *t) == (from, to)) {
            continue;
        }
        out.push((from, to, edge.label));
    }
    out
}

fn render(view: View, current: Option<Status>) -> String {
    let mut out = String::from("stateDiagram-v2\n");
    // Writing to a String cannot fail.
    match view {
        View::Status => {
            for (from, to, label) in status_edges() {
                let _ = writeln!(out, "    {} --> {} : {label}", from.name(), to.name());
            }
        }
        View::Types => {
            for edge in EDGES {
                let _ = writeln!(out, "    {} --> {} : {}", edge.from, edge.to, edge.label);
            }
        }
    }
    if let Some(status) = current {
        out.push_str("    classDef current fill:#f96,stroke:#333,stroke-width:3px\n");
        match view {
            View::Status => {
                let _ = writeln!(out, "    class {} current", status.name());
            }
            View::Types => {
                for kind in Kind::ALL.iter().filter(|k| k.status() == status) {
                    let _ = writeln!(out, "    class {} current", Node::State(*kind));
                }
            }
        }
    }
    out
}
