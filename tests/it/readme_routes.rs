//! The README's route table is exactly what the route table generates.
//!
//! Regenerate after changing a route (with the other generated sections):
//! `UPDATE_DOCS=1 cargo test --test it docs::`

#[test]
fn readme_route_table_matches_the_code() {
    let table = compute_ctl::testing::http::table::markdown();
    super::check_generated("README.md", "routes", &table);
}
