//! compute_ctl: the entrypoint of a PostgreSQL compute node. All of it lives
//! in the library (`src/launch.rs` is the launch sequence).

fn main() -> std::process::ExitCode {
    compute_ctl::main()
}
