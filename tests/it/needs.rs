//! What a test needs of the machine (root, tools) and what happens without
//! it: skipped with a loud message by hand, a failure when `CI` is set, so
//! that CI cannot pass by running nothing. Shared with benches/container.rs
//! (`#[path]`), so it names nothing of the test binary.

/// Whether `CI` is set (to anything but empty, `false` or `0`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// `true` when `have` holds. Otherwise the test cannot run for want of `why`:
/// it panics when `CI` is set, else says SKIPPED loudly and answers `false`
/// (the test then returns).
pub fn needs(have: bool, why: &str) -> bool {
    if have {
        return true;
    }
    assert!(!in_ci(), "CI is set and {why}");
    // Straight to the stderr handle: libtest hides what eprintln! prints.
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!("\n{0}\n!!! SKIPPED: {why}\n{0}\n", "!".repeat(78)).as_bytes(),
    );
    false
}

/// Whether this process runs as root (sessions and CI do).
pub fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// [`needs`] root, for `what`.
pub fn root(what: &str) -> bool {
    needs(is_root(), &format!("{what} needs root"))
}
