//! compute_ctl: the supervisor of a PostgreSQL compute node.

fn main() {}
