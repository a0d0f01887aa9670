use super::*;

fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn comments_and_order_stay_and_keys_change_in_place() {
    let ini = "; top comment\n[databases]\n* = host=localhost\n\n[pgbouncer]\n\
               ; the port\nlisten_port = 6432\n# pools\ndefault_pool_size=64\n\n[users]\n";
    let out = set(
        ini,
        "pgbouncer",
        &kv(&[("default_pool_size", "42"), ("pool_mode", "session")]),
    )
    .unwrap();
    assert_eq!(
        out,
        "; top comment\n[databases]\n* = host=localhost\n\n[pgbouncer]\n\
         ; the port\nlisten_port = 6432\n# pools\ndefault_pool_size = 42\n\
         pool_mode = session\n\n[users]\n"
    );
    assert_eq!(
        get(&out, "pgbouncer", "DEFAULT_POOL_SIZE").as_deref(),
        Some("42")
    );
    assert_eq!(get(&out, "databases", "listen_port"), None);
}

#[test]
fn a_duplicate_goes_a_missing_section_is_made_and_newlines_are_refused() {
    let out = set(
        "a=1\n[pgbouncer]\nx=1\nx=2\n",
        "pgbouncer",
        &kv(&[("x", "3")]),
    )
    .unwrap();
    assert_eq!(out, "a=1\n[pgbouncer]\nx = 3\n");
    let out = set("[databases]\n", "pgbouncer", &kv(&[("x", "1")])).unwrap();
    assert_eq!(out, "[databases]\n\n[pgbouncer]\nx = 1\n");
    assert!(set("", "pgbouncer", &kv(&[("x", "1\nadmin_users=me")])).is_err());
    assert!(set("", "pgbouncer", &kv(&[("x y", "1")])).is_err());
}
