//! Property-based fuzzing (proptest) against a real compute: random catalogs
//! and random specs over a hostile alphabet are reconciled by `/configure`,
//! after which the plan of the same spec is empty and the catalog is the
//! spec; and the spec parser and the HTTP body paths never panic and answer
//! a 4xx to whatever they are sent.
//!
//! Case counts are bounded so the suite fits CI; set
//! `COMPUTE_CTL_FUZZ_CASES=N` for N cases in each property (e.g. 500 for a
//! long run). A failure prints the shrunk input.

mod common;

use common::*;
use compute_ctl::catalog::{dry_run, stored_password, Connector};
use compute_ctl::spec::ComputeSpec;
use postgres_protocol::escape::{escape_identifier, escape_literal};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
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

const PRIVILEGED: &str = "neon_superuser";

// ---------------------------------------------------------------------------
// Names

/// Pieces of names: quotes, dollar quoting, backslashes, SQL and libpq
/// punctuation, spaces and a tab, multi-byte UTF-8 (2, 3 and 4 bytes).
const ALPHABET: &[&str] = &[
    "a", "Z", "_", "0", "x", " ", "'", "\"", "$", "$$", "$x$", "\\", ";", "--", "/*", "%", "%I",
    "=", "@", ".", ",", "(", ")", "é", "ß", "日本", "🐘", "\t", "-", "&",
];

/// Names postgres or compute_ctl keep for themselves.
fn reserved(name: &str) -> bool {
    name.starts_with("pg_")
        || [
            SUPERUSER,
            PRIVILEGED,
            "postgres",
            "template0",
            "template1",
            "public",
            "none",
            "current_user",
            "session_user",
            "current_role",
        ]
        .contains(&name)
}

/// A hostile name: a few pieces, or exactly 63 bytes (postgres' limit)
/// ending in whatever multi-byte piece fits.
fn name() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(ALPHABET);
    let short = prop::collection::vec(piece.clone(), 1..8).prop_map(|p| p.concat());
    let long = prop::collection::vec(piece, 16..64).prop_map(|pieces| {
        let mut s = String::new();
        for p in pieces {
            if s.len() + p.len() > 63 {
                break;
            }
            s.push_str(p);
        }
        while s.len() < 63 {
            s.push('y');
        }
        s
    });
    prop_oneof![4 => short, 1 => long].prop_filter("reserved name", |n| !reserved(n))
}

// ---------------------------------------------------------------------------
// Cases

/// A role that exists before the spec is applied (made by plain SQL).
#[derive(Debug, Clone)]
struct InitialRole {
    login: bool,
    createdb: bool,
    connlimit: i32,
}

#[derive(Debug, Clone, Copy)]
enum Password {
    None,
    Md5,
    Scram,
}

/// A role of the spec.
#[derive(Debug, Clone)]
struct TargetRole {
    password: Password,
    /// (option name as written, value)
    options: Vec<(String, Option<String>)>,
}

#[derive(Debug, Clone)]
struct RoleCase {
    initial: Option<InitialRole>,
    target: Option<TargetRole>,
}

#[derive(Debug, Clone)]
struct DbCase {
    /// Owner among [superuser, initial roles...].
    initial: Option<Index>,
    /// Owner among [superuser, target roles...], and options.
    target: Option<(Index, DbOpts)>,
}

/// Options of a database the spec creates.
#[derive(Debug, Clone, Copy, Default)]
struct DbOpts {
    connection_limit: Option<i32>,
    allow_connections: Option<bool>,
    is_template: Option<bool>,
}

impl DbOpts {
    fn json(&self) -> Vec<Value> {
        let mut v = vec![];
        if let Some(n) = self.connection_limit {
            v.push(
                json!({"name": "connection_limit", "value": n.to_string(), "vartype": "integer"}),
            );
        }
        if let Some(b) = self.allow_connections {
            v.push(json!({"name": "allow_connections", "value": b.to_string(), "vartype": "bool"}));
        }
        if let Some(b) = self.is_template {
            v.push(json!({"name": "is_template", "value": b.to_string(), "vartype": "bool"}));
        }
        v
    }
}

#[derive(Debug, Clone)]
struct Case {
    roles: BTreeMap<String, RoleCase>,
    dbs: BTreeMap<String, DbCase>,
    /// Renames an initial role (the index) to a new name.
    rename_role: Option<(Index, String)>,
    /// Renames an initial database to a new name.
    rename_db: Option<(Index, String)>,
}

fn role_option() -> impl Strategy<Value = (String, Option<String>)> {
    let flag = prop::sample::select(vec![
        "login",
        "LOGIN",
        "createdb",
        "CreateRole",
        "inherit",
        "bypassrls",
        "replication",
    ]);
    let bool_value = prop::sample::select(vec![None, Some("true"), Some("false"), Some("off")]);
    prop_oneof![
        4 => (flag, bool_value).prop_map(|(n, v)| (n.to_string(), v.map(str::to_string))),
        1 => (-1i32..10).prop_map(|n| ("connection limit".to_string(), Some(n.to_string()))),
        1 => prop::sample::select(vec!["infinity", "2031-02-03 04:05:06+00"])
            .prop_map(|v| ("valid_until".to_string(), Some(v.to_string()))),
    ]
}

fn role_case() -> impl Strategy<Value = RoleCase> {
    let initial =
        (any::<bool>(), any::<bool>(), -1i32..4).prop_map(|(login, createdb, connlimit)| {
            InitialRole {
                login,
                createdb,
                connlimit,
            }
        });
    let password = prop::sample::select(vec![Password::None, Password::Md5, Password::Scram]);
    let target = (password, prop::collection::vec(role_option(), 0..4))
        .prop_map(|(password, options)| TargetRole { password, options });
    (prop::option::of(initial), prop::option::of(target))
        .prop_map(|(initial, target)| RoleCase { initial, target })
}

fn db_case() -> impl Strategy<Value = DbCase> {
    (
        prop::option::of(any::<Index>()),
        prop::option::of((
            any::<Index>(),
            (
                prop::option::of(-1i32..5),
                prop::option::weighted(0.2, any::<bool>()),
                prop::option::weighted(0.2, any::<bool>()),
            )
                .prop_map(|(connection_limit, allow_connections, is_template)| {
                    DbOpts {
                        connection_limit,
                        allow_connections,
                        is_template,
                    }
                }),
        )),
    )
        .prop_map(|(initial, target)| DbCase { initial, target })
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::btree_map(name(), role_case(), 0..5),
        prop::collection::btree_map(name(), db_case(), 0..3),
        prop::option::weighted(0.3, (any::<Index>(), name())),
        prop::option::weighted(0.3, (any::<Index>(), name())),
    )
        .prop_map(|(roles, dbs, rename_role, rename_db)| Case {
            roles,
            dbs,
            rename_role,
            rename_db,
        })
}

/// What the spec and the expected catalog are, derived from a case.
struct Derived {
    /// Initial roles, in order.
    initial_roles: Vec<(String, InitialRole)>,
    /// Initial databases and their owners.
    initial_dbs: Vec<(String, String)>,
    spec: Value,
    /// Role name -> (spec role, existed before under this or an old name).
    want_roles: BTreeMap<String, (TargetRole, Option<InitialRole>)>,
    /// Database name -> (owner, options when created by the spec).
    want_dbs: BTreeMap<String, (String, Option<DbOpts>)>,
}

fn derive(case: &Case) -> Derived {
    let initial_roles: Vec<(String, InitialRole)> = case
        .roles
        .iter()
        .filter_map(|(n, r)| r.initial.clone().map(|i| (n.clone(), i)))
        .collect();
    let initial_dbs: Vec<(String, String)> = case
        .dbs
        .iter()
        .filter_map(|(n, d)| {
            let idx = d.initial?;
            let owner = idx
                .index(initial_roles.len() + 1)
                .checked_sub(1)
                .map(|i| initial_roles[i].0.clone())
                .unwrap_or_else(|| SUPERUSER.to_string());
            Some((n.clone(), owner))
        })
        .collect();
    let taken: BTreeSet<&String> = case.roles.keys().chain(case.dbs.keys()).collect();

    let mut delta = vec![];
    // Role renames: the old name's spec entry (or a default one) moves to the new name.
    let mut target_roles: BTreeMap<String, (TargetRole, Option<InitialRole>)> = case
        .roles
        .iter()
        .filter_map(|(n, r)| Some((n.clone(), (r.target.clone()?, r.initial.clone()))))
        .collect();
    let mut renamed_role = None;
    if let Some((idx, to)) = &case.rename_role {
        if !initial_roles.is_empty() && !taken.contains(to) {
            let (from, init) = &initial_roles[idx.index(initial_roles.len())];
            let entry = target_roles
                .remove(from)
                .map(|e| e.0)
                .unwrap_or(TargetRole {
                    password: Password::None,
                    options: vec![],
                });
            target_roles.insert(to.clone(), (entry, Some(init.clone())));
            delta.push(json!({"action": "rename_role", "name": from, "new_name": to}));
            renamed_role = Some((from.clone(), to.clone()));
        }
    }
    let mut renamed_db = None;
    if let Some((idx, to)) = &case.rename_db {
        if !initial_dbs.is_empty()
            && !taken.contains(to)
            && Some(to) != renamed_role.as_ref().map(|r| &r.1)
        {
            let from = &initial_dbs[idx.index(initial_dbs.len())].0;
            delta.push(json!({"action": "rename_db", "name": from, "new_name": to}));
            renamed_db = Some((from.clone(), to.clone()));
        }
    }
    // Everything else of the initial catalog that the spec does not name is dropped.
    for (n, _) in &initial_dbs {
        let kept = case.dbs[n].target.is_some();
        if !kept && renamed_db.as_ref().map(|r| &r.0) != Some(n) {
            delta.push(json!({"action": "delete_db", "name": n}));
        }
    }
    for (n, _) in &initial_roles {
        let kept = case.roles[n].target.is_some();
        if !kept && renamed_role.as_ref().map(|r| &r.0) != Some(n) {
            delta.push(json!({"action": "delete_role", "name": n}));
        }
    }
    let role_names: Vec<String> = target_roles.keys().cloned().collect();
    let mut want_dbs = BTreeMap::new();
    let mut dbs_json = vec![];
    // (name, owner among [superuser, roles...] or the superuser, limit, renamed away)
    let mut db_targets: Vec<(String, Option<Index>, DbOpts, bool)> = case
        .dbs
        .iter()
        .filter_map(|(n, d)| {
            let (owner, limit) = d.target?;
            let renamed_away = renamed_db.as_ref().map(|r| &r.0) == Some(n);
            Some((n.clone(), Some(owner), limit, renamed_away))
        })
        .collect();
    if let Some((from, to)) = &renamed_db {
        // The renamed database stays in the spec under its new name.
        let owner = case.dbs[from].target.map(|t| t.0);
        db_targets.push((to.clone(), owner, DbOpts::default(), false));
    }
    for (n, owner, opts, renamed_away) in db_targets {
        if renamed_away {
            continue;
        }
        let owner = owner
            .map_or(0, |o| o.index(role_names.len() + 1))
            .checked_sub(1)
            .map(|i| role_names[i].clone())
            .unwrap_or_else(|| SUPERUSER.to_string());
        let existed = case.dbs.get(&n).is_some_and(|d| d.initial.is_some())
            || renamed_db.as_ref().map(|r| &r.1) == Some(&n);
        let db = json!({"name": n, "owner": owner, "options": opts.json()});
        dbs_json.push(db);
        want_dbs.insert(n, (owner, (!existed).then_some(opts)));
    }
    let roles_json: Vec<Value> = target_roles
        .iter()
        .map(|(n, (r, _))| {
            let password = match r.password {
                Password::None => Value::Null,
                Password::Md5 => json!(postgres_protocol::password::md5(b"pw", n)),
                Password::Scram => json!(postgres_protocol::password::scram_sha_256(b"pw")),
            };
            let options: Vec<Value> = r
                .options
                .iter()
                .map(|(name, value)| json!({"name": name, "value": value, "vartype": "string"}))
                .collect();
            json!({"name": n, "encrypted_password": password, "options": options})
        })
        .collect();
    let spec = json!({
        "format_version": 1.0,
        "cluster": {"roles": roles_json, "databases": dbs_json, "settings": []},
        "delta_operations": delta,
    });
    Derived {
        initial_roles,
        initial_dbs,
        spec,
        want_roles: target_roles,
        want_dbs,
    }
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
    let spec = ComputeSpec::from_json(&d.spec.to_string()).map_err(fail("spec"))?;
    let config: tokio_postgres::Config = format!(
        "host=127.0.0.1 port={} user={SUPERUSER} dbname=postgres",
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
