//! `docs/metrics.md`'s table is exactly what the metrics registry renders:
//! every metric with its type, labels and help.

use super::cell;

/// The markdown table of every metric.
pub fn markdown() -> String {
    let mut out = String::from("| metric | type | labels | meaning |\n|---|---|---|---|\n");
    for m in compute_ctl::testing::metrics::documented() {
        let labels = if m.labels.is_empty() {
            "none".to_string()
        } else {
            m.labels
                .iter()
                .map(|l| format!("`{l}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push_str(&format!(
            "| `{}` | {} | {labels} | {} |\n",
            m.name,
            m.kind,
            cell(&m.help)
        ));
    }
    out
}

/// The metric names `docs/metrics.md` documents (its generated table).
pub fn documented_names() -> Vec<String> {
    compute_ctl::testing::metrics::documented()
        .into_iter()
        .map(|m| m.name)
        .collect()
}

#[test]
fn metrics_reference_matches_the_registry() {
    super::check_generated("docs/metrics.md", "metrics", &markdown());
}
