//! Property-based fuzzing (proptest) against a real compute: random catalogs
//! and random specs over a hostile alphabet are reconciled by `/configure`,
//! after which the plan of the same spec is empty and the catalog is the
//! spec; and the spec parser and the HTTP body paths never panic and answer
//! a 4xx to whatever they are sent.
//!
//! Case counts are bounded so the suite fits CI; set
//! `COMPUTE_CTL_FUZZ_CASES=N` for N cases in each property (e.g. 500 for a
//! long run). A failure prints the shrunk input.

use super::cases::*;
use crate::common::*;
use compute_ctl::testing::catalog::{dry_run, stored_password};
use compute_ctl::testing::connect::Connector;
use compute_ctl::testing::spec::ValidSpec;
use postgres_protocol::escape::{escape_identifier, escape_literal};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Cases of a property: `COMPUTE_CTL_FUZZ_CASES`, else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("COMPUTE_CTL_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn runner(default_cases: u32, max_shrink_iters: u32) -> TestRunner {
    TestRunner::new(Config {
        cases: cases(default_cases),
        max_shrink_iters,
        failure_persistence: None,
        ..Config::default()
    })
}

// ---------------------------------------------------------------------------
// The catalog property

/// Roles and databases present before any case: left alone.
struct Baseline {
    roles: BTreeSet<String>,
    dbs: BTreeSet<String>,
}

async fn names(client: &tokio_postgres::Client, sql: &str) -> BTreeSet<String> {
    client
        .query(sql, &[])
        .await
        .expect("catalog query")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

const ROLE_NAMES: &str = "SELECT rolname::text FROM pg_catalog.pg_roles WHERE rolname !~ '^pg_'";
const DB_NAMES: &str = "SELECT datname::text FROM pg_catalog.pg_database";

/// Drops what earlier cases made, then makes the case's initial catalog.
async fn prepare(c: &Compute, base: &Baseline, d: &Derived) -> Result<(), TestCaseError> {
    let client = c.client("postgres").await;
    for db in names(&client, DB_NAMES).await.difference(&base.dbs) {
        let db = escape_identifier(db);
        for sql in [
            format!("ALTER DATABASE {db} IS_TEMPLATE false"),
            format!("DROP DATABASE {db} WITH (FORCE)"),
        ] {
            client.batch_execute(&sql).await.map_err(fail("cleanup"))?;
        }
    }
    for role in names(&client, ROLE_NAMES).await.difference(&base.roles) {
        let r = escape_identifier(role);
        let sql = format!(
            "REASSIGN OWNED BY {r} TO {}; DROP OWNED BY {r}; DROP ROLE {r}",
            escape_identifier(SUPERUSER)
        );
        client.batch_execute(&sql).await.map_err(fail("cleanup"))?;
    }
    for (n, r) in &d.initial_roles {
        let sql = format!(
            "CREATE ROLE {} WITH {} {} CONNECTION LIMIT {} PASSWORD {}",
            escape_identifier(n),
            if r.login { "LOGIN" } else { "NOLOGIN" },
            if r.createdb { "CREATEDB" } else { "NOCREATEDB" },
            r.connlimit,
            escape_literal(&postgres_protocol::password::md5(b"old", n)),
        );
        client
            .batch_execute(&sql)
            .await
            .map_err(fail("initial role"))?;
    }
    for (n, owner) in &d.initial_dbs {
        let sql = format!(
            "CREATE DATABASE {} OWNER {}",
            escape_identifier(n),
            escape_identifier(owner)
        );
        client
            .batch_execute(&sql)
            .await
            .map_err(fail("initial database"))?;
    }
    Ok(())
}

fn fail<E: std::fmt::Debug>(what: &'static str) -> impl Fn(E) -> TestCaseError {
    move |e| TestCaseError::fail(format!("{what}: {e:?}"))
}

fn flag_of(options: &[(String, Option<String>)], keyword: &str) -> Option<bool> {
    let mut value = None;
    for (name, v) in options {
        if name.to_ascii_lowercase() == keyword {
            value = Some(match v.as_deref() {
                None | Some("true") => true,
                Some(_) => false,
            });
        }
    }
    value
}

async fn check_catalog(c: &Compute, base: &Baseline, d: &Derived) -> Result<(), TestCaseError> {
    let client = c.client("postgres").await;
    let roles: BTreeSet<String> = names(&client, ROLE_NAMES)
        .await
        .difference(&base.roles)
        .cloned()
        .collect();
    let want: BTreeSet<String> = d.want_roles.keys().cloned().collect();
    prop_assert_eq!(&roles, &want, "roles");
    let dbs: BTreeSet<String> = names(&client, DB_NAMES)
        .await
        .difference(&base.dbs)
        .cloned()
        .collect();
    let want: BTreeSet<String> = d.want_dbs.keys().cloned().collect();
    prop_assert_eq!(&dbs, &want, "databases");

    for (n, (role, initial)) in &d.want_roles {
        let row = client
            .query_one(
                "SELECT rolpassword, rolcanlogin, rolcreatedb, rolcreaterole, rolinherit, \
                 rolbypassrls, rolreplication, rolconnlimit, rolvaliduntil::text, \
                 pg_catalog.pg_has_role(rolname, $2, 'MEMBER') \
                 FROM pg_catalog.pg_authid WHERE rolname = $1",
                &[n, &PRIVILEGED],
            )
            .await
            .map_err(fail("reading a role"))?;
        let password: Option<String> = row.get(0);
        let want_password = match role.password {
            Password::None => None,
            Password::Md5 => Some(stored_password(&postgres_protocol::password::md5(b"pw", n))),
            // A SCRAM verifier has a random salt: only its kind is checked.
            Password::Scram => password.clone().filter(|p| p.starts_with("SCRAM-SHA-256$")),
        };
        prop_assert_eq!(&password, &want_password, "password of {:?}", n);
        // (attribute, column, value when neither the spec nor the initial role says)
        let created = initial.is_none();
        for (kw, col, initial_value) in [
            ("login", 1, initial.as_ref().map(|i| i.login)),
            ("createdb", 2, initial.as_ref().map(|i| i.createdb)),
            ("createrole", 3, Some(false)),
            ("inherit", 4, Some(true)),
            ("bypassrls", 5, Some(false)),
            ("replication", 6, Some(false)),
        ] {
            let got: bool = row.get(col);
            let want = match flag_of(&role.options, kw) {
                Some(v) => v,
                // LOGIN unless the options say otherwise, for every spec role.
                None if kw == "login" => true,
                // A created role is a member with the reference's attributes.
                None if created => true,
                None => initial_value.unwrap_or(false),
            };
            prop_assert_eq!(got, want, "{} of role {:?}", kw, n);
        }
        let limit = role
            .options
            .iter()
            .rev()
            .find(|(name, _)| name == "connection limit")
            .and_then(|(_, v)| v.as_deref()?.parse::<i32>().ok())
            .or(initial.as_ref().map(|i| i.connlimit))
            .unwrap_or(-1);
        prop_assert_eq!(row.get::<_, i32>(7), limit, "connection limit of {:?}", n);
        if let Some((_, Some(v))) = role.options.iter().rev().find(|(o, _)| o == "valid_until") {
            let got: Option<String> = row.get(8);
            let want = client
                .query_one("SELECT $1::text::timestamptz::text", &[v])
                .await
                .map_err(fail("valid_until"))?
                .get::<_, String>(0);
            prop_assert_eq!(got, Some(want), "valid_until of {:?}", n);
        }
        if created {
            prop_assert!(
                row.get::<_, bool>(9),
                "{:?} is not a member of {}",
                n,
                PRIVILEGED
            );
        }
    }
    for (n, (owner, created)) in &d.want_dbs {
        let row = client
            .query_one(
                "SELECT pg_catalog.pg_get_userbyid(datdba)::text, datconnlimit, datallowconn, \
                 datistemplate FROM pg_catalog.pg_database WHERE datname = $1",
                &[n],
            )
            .await
            .map_err(fail("reading a database"))?;
        prop_assert_eq!(&row.get::<_, String>(0), owner, "owner of {:?}", n);
        if let Some(o) = created {
            let got = (
                row.get::<_, i32>(1),
                row.get::<_, bool>(2),
                row.get::<_, bool>(3),
            );
            let want = (
                o.connection_limit.unwrap_or(-1),
                o.allow_connections.unwrap_or(true),
                o.is_template.unwrap_or(false),
            );
            prop_assert_eq!(got, want, "options of {:?}", n);
        }
    }
    Ok(())
}

/// Initial roles, initial databases, spec roles, spec databases, delta
/// operations, 63-byte role names: summed over the cases, printed.
static STATS: [AtomicUsize; 6] = [const { AtomicUsize::new(0) }; 6];

async fn run_case(c: &Compute, base: &Baseline, case: &Case) -> Result<(), TestCaseError> {
    let d = derive(case);
    let count = |i: usize, n: usize| STATS[i].fetch_add(n, Ordering::Relaxed);
    count(0, d.initial_roles.len());
    count(1, d.initial_dbs.len());
    count(2, d.want_roles.len());
    count(3, d.want_dbs.len());
    count(4, d.spec["delta_operations"].as_array().map_or(0, Vec::len));
    count(5, d.want_roles.keys().filter(|n| n.len() == 63).count());
    prepare(c, base, &d).await?;
    let (status, body) = c.configure(&d.spec).await;
    prop_assert_eq!(status, 200, "configure answered {}", body);
    check_catalog(c, base, &d).await?;
    // The same spec again plans nothing.
    let spec = ValidSpec::from_json(&d.spec.to_string()).map_err(fail("spec"))?;
    let config: tokio_postgres::Config = format!(
        "host={} port={} user={SUPERUSER} dbname=postgres",
        c.socket_dir().display(),
        c.port
    )
    .parse()
    .map_err(fail("connstr"))?;
    let connector = Connector::new(config).with_privileged_role(PRIVILEGED);
    let plan = dry_run(&connector, &spec).await.map_err(fail("dry run"))?;
    prop_assert!(plan.is_empty(), "a second plan is not empty: {:?}", plan);
    Ok(())
}

#[test]
fn random_catalogs_and_specs_reconcile_exactly_and_replan_empty() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut c = Compute::start(Some(spec(json!([]), json!([]))));
    c.wait_running();
    let base = rt.block_on(async {
        let client = c.client("postgres").await;
        Baseline {
            roles: names(&client, ROLE_NAMES).await,
            dbs: names(&client, DB_NAMES).await,
        }
    });
    let started = std::time::Instant::now();
    let n = std::cell::Cell::new(0);
    let result = runner(24, 40).run(&case(), |case| {
        n.set(n.get() + 1);
        rt.block_on(run_case(&c, &base, &case))
    });
    let n = n.get();
    let s: Vec<usize> = STATS.iter().map(|a| a.load(Ordering::Relaxed)).collect();
    println!(
        "catalog property: {n} runs (shrinking included) in {:.1} s; in all: {} initial roles, \
         {} initial databases, {} spec roles ({} of 63 bytes), {} spec databases, {} delta operations",
        started.elapsed().as_secs_f64(),
        s[0],
        s[1],
        s[2],
        s[5],
        s[3],
        s[4]
    );
    if let Err(e) = result {
        panic!("{e}\ncompute_ctl's log:\n{}", c.log());
    }
}
