//! The checked-in diagrams are exactly what the machine generates.
//!
//! Regenerate after changing a transition:
//! `UPDATE_DIAGRAMS=1 cargo test --test it diagram::`

use std::path::Path;

const MMD: &str = "diagrams/compute_states.mmd";
/// Files that embed the diagram in a ```mermaid block.
const EMBEDDED: &[&str] = &["diagrams/README.md", "README.md"];
const FENCE: &str = "```mermaid\n";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Replaces the first mermaid block of `text` with `diagram`.
fn embed(text: &str, diagram: &str) -> Option<String> {
    let start = text.find(FENCE)? + FENCE.len();
    let end = start + text[start..].find("```")?;
    Some(format!("{}{}{}", &text[..start], diagram, &text[end..]))
}

#[test]
fn checked_in_diagrams_match_the_code() {
    let diagram = compute_states::mermaid();
    let update = std::env::var_os("UPDATE_DIAGRAMS").is_some();
    let hint = "regenerate with: UPDATE_DIAGRAMS=1 cargo test --test it diagram::";

    let mmd = root().join(MMD);
    if update {
        std::fs::write(&mmd, &diagram).unwrap();
    }
    let on_disk = std::fs::read_to_string(&mmd).unwrap_or_default();
    assert_eq!(on_disk, diagram, "{MMD} differs from the machine; {hint}");

    for file in EMBEDDED {
        let path = root().join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        let expected =
            embed(&text, &diagram).unwrap_or_else(|| panic!("{file} has no ```mermaid block"));
        if update {
            std::fs::write(&path, &expected).unwrap();
        } else {
            assert_eq!(
                text, expected,
                "the diagram in {file} differs from the machine; {hint}"
            );
        }
    }
}

#[test]
fn the_binary_prints_the_same_diagram() {
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
