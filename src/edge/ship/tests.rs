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

#[test]
fn a_record_split_across_reads_is_shipped_whole_once_and_in_order() {
    let r1 = "2026-12-02 04:44:06.331 GMT,\"alice\",\"app\",1,AUDIT: SESSION,1,1,DDL,CREATE TABLE,,,\"CREATE TABLE t (\n";
    let r1_more = "  a int,\n  b text)\",<none>\n";
    let r2 = "2026-12-02 04:44:07.001 GMT,\"alice\",\"app\",2,AUDIT: SESSION,2,1,DDL,DROP TABLE,,,\"DROP TABLE t\",<none>\n";
    let mut out = Vec::new();
    // The first read ends inside the first record (its lines so far are
    // ended): nothing is shipped, the record waits.
    let pending = split_records(r1.to_string(), false, &mut out);
    assert!(out.is_empty(), "{out:?}");
    // The rest of it arrives, then half a line of the next record.
    let pending = split_records(pending + r1_more + &r2[..40], false, &mut out);
    assert_eq!(out, vec![format!("{r1}{r1_more}").trim_end().to_string()]);
    // The next record ends; it waits until the file is idle.
    let pending = split_records(pending + &r2[40..], false, &mut out);
    assert_eq!(out.len(), 1);
    let pending = split_records(pending, true, &mut out);
    assert_eq!(pending, "");
    assert_eq!(out.len(), 2);
    assert_eq!(out[1], r2.trim_end());
    // An idle file with a line not ended yet ships nothing of it.
    let pending = split_records(r2[..30].to_string(), true, &mut out);
    assert_eq!((out.len(), pending.as_str()), (2, &r2[..30]));
}
