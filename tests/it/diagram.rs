//! The checked-in diagrams are exactly what the machine generates, and the
//! status view still shows the seed's machine.
//!
//! Regenerate after changing a transition:
//! `UPDATE_DIAGRAMS=1 cargo test --test it diagram::`

use std::path::Path;

/// A view of the machine: renders its diagram.
type View = fn() -> String;

/// The status view, and the type view.
const MMD: &[(&str, View)] = &[
    ("diagrams/compute.mmd", compute_states::mermaid),
    ("diagrams/types.mmd", compute_states::mermaid_types),
];
/// Files that embed diagrams in ```mermaid blocks: the views, in the order
/// of the blocks.
const EMBEDDED: &[(&str, &[View])] = &[
    (
        "diagrams/README.md",
        &[compute_states::mermaid, compute_states::mermaid_types],
    ),
    ("README.md", &[compute_states::mermaid]),
];
const FENCE: &str = "```mermaid\n";

/// Every edge of the seed's diagram (the reference README's
/// `stateDiagram-v2`), with its label.
const SEED: &[&str] = &[
    "[*] --> Empty : Compute spawned",
    "Empty --> ConfigurationPending : Waiting for compute spec",
    "ConfigurationPending --> Configuration : Received compute spec",
    "Configuration --> Failed : Failed to configure the compute",
    "Configuration --> Running : Compute has been configured",
    "Empty --> Init : Compute spec is immediately available",
    "Empty --> TerminationPending : Requested termination",
    "Init --> Failed : Failed to start Postgres",
    "Init --> Running : Started Postgres",
    "Running --> TerminationPending : Requested termination",
    "TerminationPending --> Terminated : Terminated compute",
    "Failed --> [*] : Compute exited",
    "Terminated --> [*] : Compute exited",
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Replaces the mermaid blocks of `text`, in order, with `diagrams`.
fn embed(text: &str, diagrams: &[String]) -> Option<String> {
    let mut out = String::new();
    let mut rest = text;
    for diagram in diagrams {
        let start = rest.find(FENCE)? + FENCE.len();
        let end = start + rest[start..].find("```")?;
        out.push_str(&rest[..start]);
        out.push_str(diagram);
        rest = &rest[end..];
    }
    out.push_str(rest);
    Some(out)
}

#[test]
fn checked_in_diagrams_match_the_code() {
    let update = std::env::var_os("UPDATE_DIAGRAMS").is_some();
    let hint = "regenerate with: UPDATE_DIAGRAMS=1 cargo test --test it diagram::";

    for (file, view) in MMD {
        let diagram = view();
        let path = root().join(file);
        if update {
            std::fs::write(&path, &diagram).unwrap();
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(on_disk, diagram, "{file} differs from the machine; {hint}");
    }

    for (file, views) in EMBEDDED {
        let diagrams: Vec<String> = views.iter().map(|view| view()).collect();
        let path = root().join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        let expected = embed(&text, &diagrams)
            .unwrap_or_else(|| panic!("{file} has fewer than {} ```mermaid blocks", views.len()));
        if update {
            std::fs::write(&path, &expected).unwrap();
        } else {
            assert_eq!(
                text, expected,
                "a diagram in {file} differs from the machine; {hint}"
            );
        }
    }
}

#[test]
fn the_status_view_has_every_edge_of_the_seed_with_its_label() {
    let diagram = compute_states::mermaid();
    let lines: Vec<&str> = diagram.lines().map(str::trim).collect();
    let missing: Vec<&&str> = SEED.iter().filter(|e| !lines.contains(e)).collect();
    assert!(
        missing.is_empty(),
        "the status view lacks the seed's {missing:#?}\n{diagram}"
    );
}

#[test]
fn the_binary_prints_the_status_view() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_compute_ctl"))
        .arg("diagram")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        compute_states::mermaid()
    );
}
