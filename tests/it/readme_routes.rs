//! The README's route table is exactly what the route table generates.
//!
//! Regenerate after changing a route:
//! `UPDATE_README=1 cargo test --test it readme_routes::`

use std::path::Path;

const BEGIN: &str = "<!-- routes:begin -->\n";
const END: &str = "<!-- routes:end -->";

/// `text` with what lies between the markers replaced by `table`.
fn embed(text: &str, table: &str) -> Option<String> {
    let start = text.find(BEGIN)? + BEGIN.len();
    let end = start + text[start..].find(END)?;
    Some(format!("{}{}{}", &text[..start], table, &text[end..]))
}

#[test]
fn readme_route_table_matches_the_code() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let text = std::fs::read_to_string(&path).expect("README.md");
    let table = compute_ctl::testing::http::table::markdown();
    let expected = embed(&text, &table).expect("README.md has the routes:begin/end markers");
    if std::env::var_os("UPDATE_README").is_some() {
        std::fs::write(&path, &expected).expect("writing README.md");
    } else {
        assert_eq!(
            text, expected,
            "README's route table differs from src/http/table.rs; regenerate with: UPDATE_README=1 cargo test --test it readme_routes::"
        );
    }
}
