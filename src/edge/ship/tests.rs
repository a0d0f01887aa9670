use super::*;

#[test]
fn endpoints_parse_with_ipv6_and_refuse_the_rest() {
    let e = |t| Endpoint::parse("V", t);
    assert_eq!(e("c.example:10514").unwrap().host, "c.example");
    assert_eq!(
        e("[::1]:514").unwrap(),
        Endpoint {
            host: "::1".into(),
            port: 514
        }
    );
    for bad in [
        "c.example",
        "::1:514",
        "c.example:0",
        "c.example:x",
        ":514",
        "a b:1",
        "[::1]514",
    ] {
        assert!(e(bad).is_err(), "{bad}");
    }
}

#[test]
fn records_start_at_their_timestamp() {
    assert!(starts_record(
        "2026-12-02 04:44:06.331 GMT,\"alice\",\"app\",1,AUDIT\n"
    ));
    assert!(!starts_record("  continued line of a statement\n"));
}
