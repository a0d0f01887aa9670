//! The hostile names every test that needs some takes from: one list, so a
//! name that broke something once is tried everywhere (quotes, dollar quoting,
//! backslashes, semicolons and SQL comments, `%` and libpq punctuation,
//! spaces and a tab, 2-4 byte UTF-8, the 63-byte limit).

/// The reference's `TEST_ROLE_NAMES` (test_compute_catalog.py), in its order:
/// 21 names and one of 63 bytes. NEON_SCENARIOS.md row 10 names exactly these.
pub fn reference_role_names() -> Vec<String> {
    let mut names: Vec<String> = [
        "neondb_owner",
        "role with spaces",
        "role with%20spaces ",
        "role with whitespaces\t",
        "injective role with spaces'; SELECT pg_sleep(1000);",
        "role with #pound-sign and &ampersands=true",
        "role with emoji 🌍",
        "role \";with ';injections $$ $x$ $ %I !/\\&#@",
        "\"role in double quotes\"",
        "'role in single quotes'",
        "role$",
        "role$$",
        "role$x$",
        "x",
        "xx",
        "$x",
        "x$",
        "$x$",
        "xx$",
        "$xx",
        "$xx$",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    names.push("x".repeat(63));
    names
}

/// Every hostile name: the reference's, and those it lacks (a bare statement
/// break, backslashes, SQL comments, upper case, 2-byte UTF-8 up to the
/// 63-byte limit, 4-byte emoji). All are valid postgres identifiers.
pub fn names() -> Vec<String> {
    let mut names = reference_role_names();
    names.extend(
        [
            "'; SELECT pg_sleep(1000);",
            "\";with ';injections $$ $x$ $ %I !/\\&#@",
            "emoji 🐘🚀",
            "semi;colon--comment",
            "/* c */ star",
            "back\\slash",
            "UPPER Case",
            "ünïcödé-ñame",
            "trailing tab\t",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    names.push(format!("{}x", "é".repeat(31)));
    names
}

/// Pieces the fuzzers make names of: quotes, dollar quoting, backslashes, SQL
/// and libpq punctuation, spaces and a tab, multi-byte UTF-8 (2, 3 and 4
/// bytes).
pub const PIECES: &[&str] = &[
    "a", "Z", "_", "0", "x", " ", "'", "\"", "$", "$$", "$x$", "\\", ";", "--", "/*", "%", "%I",
    "=", "@", ".", ",", "(", ")", "é", "ß", "日本", "🐘", "\t", "-", "&",
];

#[test]
fn the_names_are_distinct_valid_identifiers() {
    let names = names();
    let unique: std::collections::BTreeSet<_> = names.iter().collect();
    assert_eq!(unique.len(), names.len(), "a name is listed twice");
    for n in &names {
        assert!(!n.is_empty() && n.len() <= 63, "{n:?}: {} bytes", n.len());
    }
}
