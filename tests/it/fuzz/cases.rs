//! The catalog property's cases: hostile names, random initial catalogs
//! and specs, and what the spec and the expected catalog are for each case.

use crate::common::SUPERUSER;
use crate::hostile::PIECES;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The privileged role of the compute (the default).
pub const PRIVILEGED: &str = "neon_superuser";

// ---------------------------------------------------------------------------
// Names

/// Names postgres or compute_ctl keep for themselves.
pub fn reserved(name: &str) -> bool {
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
pub fn name() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(PIECES);
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
pub struct InitialRole {
    pub login: bool,
    pub createdb: bool,
    pub connlimit: i32,
}

/// The spec's password of a role.
#[derive(Debug, Clone, Copy)]
pub enum Password {
    None,
    Md5,
    Scram,
}

/// A role of the spec.
#[derive(Debug, Clone)]
pub struct TargetRole {
    pub password: Password,
    /// (option name as written, value)
    pub options: Vec<(String, Option<String>)>,
}

#[derive(Debug, Clone)]
pub struct RoleCase {
    pub initial: Option<InitialRole>,
    pub target: Option<TargetRole>,
}

#[derive(Debug, Clone)]
pub struct DbCase {
    /// Owner among [superuser, initial roles...].
    pub initial: Option<Index>,
    /// Owner among [superuser, target roles...], and options.
    pub target: Option<(Index, DbOpts)>,
}

/// Options of a database the spec creates.
#[derive(Debug, Clone, Copy, Default)]
pub struct DbOpts {
    pub connection_limit: Option<i32>,
    pub allow_connections: Option<bool>,
    pub is_template: Option<bool>,
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

/// A case of the property.
#[derive(Debug, Clone)]
pub struct Case {
    pub roles: BTreeMap<String, RoleCase>,
    pub dbs: BTreeMap<String, DbCase>,
    /// Renames an initial role (the index) to a new name.
    pub rename_role: Option<(Index, String)>,
    /// Renames an initial database to a new name.
    pub rename_db: Option<(Index, String)>,
}

/// A role option of the spec, its name written in any accepted spelling.
pub fn role_option() -> impl Strategy<Value = (String, Option<String>)> {
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

/// A role name's fate: made before the spec, in the spec, both or neither.
pub fn role_case() -> impl Strategy<Value = RoleCase> {
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

/// A database name's fate, with its owners and options.
pub fn db_case() -> impl Strategy<Value = DbCase> {
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

/// A whole case: roles, databases, and maybe a role and a database renamed.
pub fn case() -> impl Strategy<Value = Case> {
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
pub struct Derived {
    /// Initial roles, in order.
    pub initial_roles: Vec<(String, InitialRole)>,
    /// Initial databases and their owners.
    pub initial_dbs: Vec<(String, String)>,
    pub spec: Value,
    /// Role name -> (spec role, existed before under this or an old name).
    pub want_roles: BTreeMap<String, (TargetRole, Option<InitialRole>)>,
    /// Database name -> (owner, options when created by the spec).
    pub want_dbs: BTreeMap<String, (String, Option<DbOpts>)>,
}

pub fn derive(case: &Case) -> Derived {
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
