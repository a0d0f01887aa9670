//! Free ports for the computes and stand-ins the tests start. A module of its
//! own so that the benchmarks and the catalog's unit tests include the same
//! one (`#[path]` from benches/common, benches/container.rs and
//! src/catalog/tests.rs).

/// A port nobody listens on right now, below the kernel's ephemeral range
/// (32768-60999 here).
///
/// A port the kernel hands out for `bind(:0)` is in that range, where every
/// outgoing connection of the tests (HTTP clients, postgres sessions) also
/// takes its local port: between our pick and postgres' bind, one of them
/// could take it ("Address already in use"). Below the range only listeners
/// compete; each process walks its own stretch (from its pid) with a counter,
/// so the tests of one binary never pick the same port, and a port found
/// bound is skipped.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 10_000;
    const SPAN: u32 = 22_000; // up to 31 999
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        (std::process::id() * 211) % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let port = (LOW + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN) as u16;
        let free = ["0.0.0.0", "127.0.0.1"]
            .iter()
            .all(|host| std::net::TcpListener::bind((*host, port)).is_ok());
        if free {
            return port;
        }
    }
    panic!("no free port between {LOW} and {}", LOW + SPAN - 1)
}
