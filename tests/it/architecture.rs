//! Checks the Architecture Invariants of ARCHITECTURE.md that can be read off
//! the source: what a module must not depend on, and who may name what. Each
//! check reads the files as text; a failure names the file and the line.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Test files (`tests.rs`, `tests_*.rs`, `*/tests/*`) may do what the code may not.
fn is_test_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name == "tests.rs"
        || name.starts_with("tests_")
        || path.components().any(|c| c.as_os_str() == "tests")
}

/// The lines of non-test files under `dir` that contain any of `needles`,
/// code only (comments are skipped), as `file:line: text`.
fn offending_lines(dir: &Path, needles: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for file in rust_files(dir).into_iter().filter(|f| !is_test_file(f)) {
        let text = std::fs::read_to_string(&file).unwrap();
        for (i, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            if needles.iter().any(|n| code.contains(n)) {
                found.push(format!("{}:{}: {}", file.display(), i + 1, code));
            }
        }
    }
    found
}

#[test]
fn states_knows_no_tokio_and_does_no_io() {
    let manifest = std::fs::read_to_string(root().join("states/Cargo.toml")).unwrap();
    let deps = manifest
        .split("[dependencies]")
        .nth(1)
        .expect("states/Cargo.toml has a [dependencies] table")
        .split("\n[")
        .next()
        .unwrap_or("");
    let names: Vec<&str> = deps
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split(['=', ' ']).next())
        .collect();
    for name in &names {
        assert!(
            ["serde", "strum"].contains(name),
            "states/ depends on {name}: the pure machine may depend on serde and strum only"
        );
    }
    let io = offending_lines(
        &root().join("states/src"),
        &[
            "tokio",
            "std::fs",
            "std::net",
            "std::process",
            "std::thread",
            "async fn",
        ],
    );
    assert!(io.is_empty(), "I/O or async in states/:\n{}", io.join("\n"));
}

#[test]
fn only_the_driver_holds_a_state() {
    // Outside the driver, the machine is seen through these names only.
    const SEEN_OUTSIDE: &[&str] = &[
        "Status",
        "Lsn",
        "LsnParseError",
        "TerminationMode",
        "mermaid",
        "mermaid_highlighted",
        "mermaid_types",
        "View",
        "EDGES",
    ];
    let mut found = Vec::new();
    for file in rust_files(&root().join("src")) {
        if file.starts_with(root().join("src/driver")) || is_test_file(&file) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        // `compute_states::Name` and `use compute_states::{A, B}`.
        for (at, _) in text.match_indices("compute_states::") {
            let rest = &text[at + "compute_states::".len()..];
            let names: Vec<&str> = if let Some(list) = rest.strip_prefix('{') {
                list.split('}')
                    .next()
                    .unwrap_or("")
                    .split(',')
                    .map(str::trim)
                    .collect()
            } else {
                vec![rest
                    .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .next()
                    .unwrap_or("")]
            };
            for name in names.into_iter().filter(|n| !n.is_empty()) {
                if !SEEN_OUTSIDE.contains(&name) {
                    found.push(format!("{}: compute_states::{name}", file.display()));
                }
            }
        }
        if text.contains("AnyState") {
            found.push(format!("{}: AnyState", file.display()));
        }
    }
    assert!(
        found.is_empty(),
        "only src/driver/ may hold or name a state of the machine:\n{}",
        found.join("\n")
    );
}

#[test]
fn http_never_changes_state() {
    let writes = offending_lines(
        &root().join("src/http"),
        &[
            "snapshot.write",
            "set_last_active",
            "add_pg_downtime",
            "Driver",
            "driver::start",
            "AnyState",
        ],
    );
    assert!(
        writes.is_empty(),
        "src/http reads the snapshot and sends requests; it does not write or drive:\n{}",
        writes.join("\n")
    );
}

#[test]
fn the_planner_does_no_io() {
    let mut files = vec![root().join("src/catalog/plan.rs")];
    files.extend(
        rust_files(&root().join("src/catalog/plan"))
            .into_iter()
            .filter(|f| !is_test_file(f)),
    );
    let needles = [
        "tokio",
        "std::fs",
        "std::net",
        "std::process",
        ".await",
        "Connector",
        "Client",
    ];
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (i, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if !code.starts_with("//") && needles.iter().any(|n| code.contains(n)) {
                found.push(format!("{}:{}: {}", file.display(), i + 1, code));
            }
        }
    }
    assert!(
        found.is_empty(),
        "the planner is pure (the catalog is read elsewhere):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_catalog_knows_nothing_of_the_driver() {
    let found = offending_lines(
        &root().join("src/catalog"),
        &["crate::driver", "super::driver"],
    );
    assert!(
        found.is_empty(),
        "src/catalog takes a Connector, never the driver's Handle or Request (ARCHITECTURE.md):\n{}",
        found.join("\n")
    );
}

#[test]
fn spec_imports_neither_catalog_nor_driver() {
    // The option grammar both spec and catalog use lies below them, in
    // src/options, which imports none of the three.
    let mut found = offending_lines(
        &root().join("src/spec"),
        &["crate::catalog", "crate::driver"],
    );
    found.extend(offending_lines(
        &root().join("src/options"),
        &["crate::spec", "crate::catalog", "crate::driver"],
    ));
    assert!(
        found.is_empty(),
        "src/spec and src/options sit below the catalog and the driver (ARCHITECTURE.md):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_library_exports_only_main_and_the_testing_seams() {
    let lib = std::fs::read_to_string(root().join("src/lib.rs")).unwrap();
    let public: Vec<&str> = lib
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with("pub ") || l.starts_with("pub("))
        .collect();
    assert_eq!(
        public,
        ["pub use launch::main;", "pub mod testing;"],
        "src/lib.rs must keep every module private (ARCHITECTURE.md, Code map)"
    );
    // The seams are re-exports only: no code of its own hides in `testing`.
    let testing = std::fs::read_to_string(root().join("src/testing.rs")).unwrap();
    let code: Vec<&str> = testing
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("//"))
        .filter(|l| !l.starts_with("pub use ") && !l.starts_with("pub mod ") && *l != "}")
        .filter(|l| !l.ends_with(',') && !l.ends_with("};"))
        .collect();
    assert!(
        code.is_empty(),
        "src/testing.rs holds more than re-exports: {code:?}"
    );
}

#[test]
fn auth_and_the_control_plane_pull_import_no_http() {
    // The API and the control-plane pull share the gate; neither side's code
    // may reach into the other's (it made http and control_plane a cycle).
    let mut found = offending_lines(&root().join("src/auth"), &["crate::http", "warp"]);
    let pull = std::fs::read_to_string(root().join("src/control_plane.rs")).unwrap();
    found.extend(
        pull.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim_start().starts_with("//") && l.contains("crate::http"))
            .map(|(i, l)| format!("src/control_plane.rs:{}: {}", i + 1, l.trim())),
    );
    assert!(
        found.is_empty(),
        "src/auth and src/control_plane.rs sit below src/http (ARCHITECTURE.md):\n{}",
        found.join("\n")
    );
}

#[test]
fn connections_are_a_leaf_that_config_and_the_monitor_take_without_the_catalog() {
    let above = [
        "crate::catalog",
        "crate::driver",
        "crate::http",
        "crate::config",
    ];
    let mut found = Vec::new();
    for (file, needles) in [
        ("src/config.rs", &above[..1]),
        ("src/monitor.rs", &above[..1]),
        ("src/connect.rs", &above[..]),
    ] {
        let text = std::fs::read_to_string(root().join(file)).unwrap();
        for (i, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if !code.starts_with("//") && needles.iter().any(|n| code.contains(n)) {
                found.push(format!("{file}:{}: {code}", i + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "maintenance connections are a leaf (src/connect.rs) that config and the monitor \
         take without importing the catalog (ARCHITECTURE.md):\n{}",
        found.join("\n")
    );
}

/// The function each line of `text` is in: the nearest `fn name(` above it.
fn enclosing_fns(text: &str) -> Vec<(usize, String, &str)> {
    let mut current = String::new();
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if let Some(at) = line.find("fn ") {
            let rest = &line[at + 3..];
            if let Some(end) = rest.find(['(', '<']) {
                current = rest[..end].trim().to_string();
            }
        }
        out.push((n + 1, current.clone(), line));
    }
    out
}

#[test]
fn only_publish_writes_the_snapshot_and_the_driver_never_reads_it() {
    // The snapshot's lock is the driver's `snapshot` (and the Handle's,
    // the same Arc): who takes it, where.
    const WRITERS: &[(&str, &str)] = &[
        ("src/driver/mod.rs", "publish"),
        // The monitor's fields: last_active, replication, the downtime.
        ("src/driver/request.rs", "set_last_active"),
        ("src/driver/request.rs", "set_replication"),
        ("src/driver/request.rs", "add_pg_downtime"),
        ("src/driver/request.rs", "pg_answered"),
    ];
    // The Handle's reads, for everyone else.
    const READERS: &[(&str, &str)] = &[
        ("src/driver/request.rs", "snapshot"),
        ("src/driver/request.rs", "status"),
        ("src/driver/request.rs", "compute_status"),
    ];
    let mut found = Vec::new();
    let mut publishes = 0;
    for file in rust_files(&root().join("src")) {
        if is_test_file(&file) {
            continue;
        }
        let rel = file.strip_prefix(root()).unwrap().display().to_string();
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, func, line) in enclosing_fns(&text) {
            let code = line.split("//").next().unwrap_or("");
            let at = (rel.as_str(), func.as_str());
            if code.contains("snapshot.write()") {
                if !WRITERS.contains(&at) {
                    found.push(format!("{rel}:{n}: writes the snapshot in {func}: {line}"));
                }
                publishes += usize::from(at == WRITERS[0]);
            }
            if code.contains("snapshot.read()") && !READERS.contains(&at) {
                found.push(format!("{rel}:{n}: reads the snapshot in {func}: {line}"));
            }
            if rel.starts_with("src/driver/") && code.contains("handle.snapshot()") {
                found.push(format!("{rel}:{n}: the driver reads the snapshot: {line}"));
            }
        }
    }
    assert!(
        found.is_empty(),
        "only Driver::publish (and the monitor's setters) write the snapshot, and the \
         driver never reads it:\n{}",
        found.join("\n")
    );
    assert_eq!(
        publishes, 1,
        "Driver::publish takes the snapshot's lock once"
    );
}
