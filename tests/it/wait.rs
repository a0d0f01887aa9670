//! Waiting for what a test awaits instead of sleeping and hoping: a sleep
//! long enough on a quiet machine is too short on a loaded CI one, and too
//! long everywhere else. The deadlines are generous (a miss is a failure,
//! never a timing assertion); a timeout says what was awaited.

use std::time::{Duration, Instant};

/// How often a condition is polled.
const POLL: Duration = Duration::from_millis(20);

/// Waits until `holds` answers true, polling it without blocking the
/// runtime (a stand-in served in-process must go on meanwhile); panics after
/// `timeout` naming `what` (what it waited for).
pub async fn until(what: &str, timeout: Duration, mut holds: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !holds().await {
        assert!(
            Instant::now() < deadline,
            "waited {timeout:?} for {what}, in vain"
        );
        tokio::time::sleep(POLL).await;
    }
}
