//! The catalog: roles and databases, reconciled with the spec.

mod options;

pub use options::{check_database_option, check_role_option, database_option_sql, role_option_sql};
