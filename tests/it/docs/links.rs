//! The links between the pages resolve: every relative link of README.md,
//! CONTRACT.md, ARCHITECTURE.md and `docs/` names a file or directory of the
//! repository, and every `#anchor` a heading of the page it points into
//! (GitHub's slugs). Links to other sites are not followed (the check runs
//! offline). And the README stays a front page: under 200 lines.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The pages checked, relative to the repository.
fn pages() -> Vec<PathBuf> {
    let root = super::repo_path("");
    let mut pages: Vec<PathBuf> = ["README.md", "CONTRACT.md", "ARCHITECTURE.md"]
        .iter()
        .map(|p| root.join(p))
        .collect();
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .map(|e| e.expect("an entry of docs/").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

/// `text` without fenced code blocks and inline code spans, line by line.
fn prose(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            out.push(String::new());
            continue;
        }
        if fenced {
            out.push(String::new());
            continue;
        }
        // Drop `code` spans (their brackets are not links).
        let mut kept = String::new();
        let mut in_code = false;
        for c in line.chars() {
            if c == '`' {
                in_code = !in_code;
            } else if !in_code {
                kept.push(c);
            }
        }
        out.push(kept);
    }
    out
}

/// The targets of the inline links `[text](target)` of `text`, with their line.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in prose(text).iter().enumerate() {
        let mut rest = line.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            out.push((n + 1, after[..end].trim().to_string()));
            rest = &after[end..];
        }
    }
    out
}

/// GitHub's anchor of a heading: lowercased, punctuation dropped (but `-`
/// and `_`), spaces as `-`; a repeated one gets `-1`, `-2`, ...
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        }
        if fenced || !line.starts_with('#') {
            continue;
        }
        let title = line.trim_start_matches('#').trim();
        let slug: String = title
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let mut unique = slug.clone();
        let mut n = 0;
        while seen.contains(&unique) {
            n += 1;
            unique = format!("{slug}-{n}");
        }
        seen.insert(unique);
    }
    seen
}

/// What is wrong with the link `target` of the page `page`, if anything.
fn broken(page: &Path, target: &str) -> Option<String> {
    if target.contains("://") || target.starts_with("mailto:") {
        return None;
    }
    let (path, anchor) = match target.split_once('#') {
        Some((p, a)) => (p, Some(a)),
        None => (target, None),
    };
    let file = if path.is_empty() {
        page.to_path_buf()
    } else {
        page.parent().expect("a page's directory").join(path)
    };
    if !file.exists() {
        return Some(format!("{} does not exist", file.display()));
    }
    let anchor = anchor?;
    if file.extension().is_none_or(|e| e != "md") {
        return Some(format!(
            "#{anchor} points into {}, not a page",
            file.display()
        ));
    }
    let text = std::fs::read_to_string(&file).expect("the page linked to");
    (!anchors(&text).contains(anchor))
        .then(|| format!("{} has no heading #{anchor}", file.display()))
}

#[test]
fn every_relative_link_and_anchor_resolves() {
    let root = super::repo_path("");
    let mut bad = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).expect("a page");
        for (line, target) in links(&text) {
            checked += 1;
            if let Some(why) = broken(&page, &target) {
                let name = page
                    .strip_prefix(&root)
                    .unwrap_or(&page)
                    .display()
                    .to_string();
                bad.push(format!("{name}:{line}: ({target}): {why}"));
            }
        }
    }
    assert!(checked > 30, "the pages have their links ({checked} found)");
    assert!(bad.is_empty(), "broken links:\n{}", bad.join("\n"));
}

#[test]
fn anchors_are_githubs() {
    let a = anchors("# Run it\n## `tests/`, `benches/`\n## Run it\n```\n# not a heading\n```\n");
    let want: BTreeSet<String> = ["run-it", "tests-benches", "run-it-1"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(a, want);
}

#[test]
fn the_readme_is_a_front_page() {
    let text = std::fs::read_to_string(super::repo_path("README.md")).expect("README.md");
    let lines = text.lines().count();
    assert!(
        lines < 200,
        "README.md has {lines} lines: keep it under 200, move the detail into docs/"
    );
}
