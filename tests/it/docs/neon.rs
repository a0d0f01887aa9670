//! `docs/neon.md` gives a status to every field of our spec types and every
//! route of our route table: a field or a route added without its line there
//! fails here.

/// The field names of `pub struct NAME` in `source` (`pub name: Type,` lines).
fn fields(source: &str, name: &str) -> Vec<String> {
    let start = source
        .find(&format!("pub struct {name} {{"))
        .unwrap_or_else(|| panic!("src/spec/wire.rs has pub struct {name}"));
    let body = &source[start..];
    let body = &body[..body.find("\n}").expect("the struct's end")];
    body.lines()
        .filter_map(|l| l.trim().strip_prefix("pub "))
        .filter_map(|l| l.split_once(':'))
        .map(|(name, _)| name.trim().to_string())
        .filter(|n| !n.contains(' '))
        .collect()
}

#[test]
fn the_neon_page_names_every_spec_field_and_route() {
    let page = std::fs::read_to_string(super::repo_path("docs/neon.md")).expect("docs/neon.md");
    let wire =
        std::fs::read_to_string(super::repo_path("src/spec/wire.rs")).expect("src/spec/wire.rs");
    let mut missing = Vec::new();
    for (ty, prefix) in [
        ("ComputeSpec", ""),
        ("Cluster", "cluster."),
        ("Role", "cluster.roles"),
        ("Database", "cluster.databases"),
        ("DeltaOp", "delta_operations"),
    ] {
        let names = fields(&wire, ty);
        assert!(!names.is_empty(), "{ty} has fields");
        for field in names {
            // Top-level and cluster fields are `name`; nested ones are listed
            // in their parent's row, `(`name`, ...)`.
            let named = if prefix.is_empty() || prefix.ends_with('.') {
                page.contains(&format!("`{prefix}{field}`"))
            } else {
                page.lines().any(|l| {
                    l.contains(&format!("`{prefix}`")) && l.contains(&format!("`{field}`"))
                })
            };
            if !named {
                missing.push(format!("spec field {prefix}{field} ({ty})"));
            }
        }
    }
    for route in compute_ctl::testing::http::table::ROUTES {
        let path = format!("/{}", route.path);
        let named = page.lines().any(|l| {
            l.contains(&format!("{} {path}`", route.method))
                || l.contains(&format!("{} {path},", route.method))
        });
        if !named {
            missing.push(format!("route {} {path}", route.method));
        }
    }
    assert!(
        missing.is_empty(),
        "docs/neon.md gives no status to: {missing:?}"
    );
}
