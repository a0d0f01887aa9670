//! The periodic count of installed extensions (the
//! `compute_installed_extensions` metric).
//!
//! How often: `--installed-extensions-collection-interval` until a spec is
//! taken, then, as the reference does, the spec's `suspend_timeout_seconds`
//! (a compute that may be suspended after N idle seconds is counted about as
//! often); `-1` and `0` ("never suspend") keep the flag's interval (the
//! reference puts its default, 3600 s, there). The interval is read again
//! every second, so a spec taken or changed meanwhile takes effect at once.
//! (The reference waits twice the interval, and never less than it once
//! waited; here the wait is the interval.)
//!
//! It asks the driver for a connector (none while postgres is not up) and
//! the catalog for the counts, so it sits above both: the catalog does not
//! know the driver.

use crate::driver::{Handle, Request, RequestError};
use crate::installed_extensions::refresh;
use std::time::Duration;

/// The wait before the next count: the spec's `suspend_timeout_seconds`
/// when it names a positive number of seconds, else `flag`.
pub fn interval(suspend_timeout_seconds: Option<i64>, flag: Duration) -> Duration {
    match suspend_timeout_seconds.and_then(|s| u64::try_from(s).ok()) {
        Some(secs) if secs > 0 => Duration::from_secs(secs),
        _ => flag,
    }
}

/// How often the interval is looked at again: a spec taken or changed
/// meanwhile shortens (or lengthens) the current wait within this.
const LOOK_AGAIN: Duration = Duration::from_secs(1);

/// Refreshes the figures every [`interval`] while postgres is up; the task
/// ends when the driver shuts down. (The start collects on its own.)
pub fn spawn(handle: Handle, flag: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last = tokio::time::Instant::now();
        loop {
            let spec = handle.snapshot().spec;
            let due = last + interval(spec.as_ref().and_then(|s| s.suspend_timeout_seconds), flag);
            let now = tokio::time::Instant::now();
            if now < due {
                tokio::time::sleep((due - now).min(LOOK_AGAIN)).await;
                continue;
            }
            last = now;
            match handle.request(|reply| Request::Connect { reply }).await {
                Ok(connector) => refresh(&connector).await,
                Err(RequestError::ShuttingDown) => return,
                Err(_) => {} // postgres is not up: nothing to count
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_specs_suspend_timeout_sets_the_interval_and_never_suspending_keeps_the_flag() {
        let flag = Duration::from_secs(3600);
        assert_eq!(interval(None, flag), flag);
        assert_eq!(interval(Some(-1), flag), flag);
        assert_eq!(interval(Some(0), flag), flag);
        assert_eq!(interval(Some(-7), flag), flag);
        assert_eq!(interval(Some(300), flag), Duration::from_secs(300));
        assert_eq!(
            interval(Some(1), Duration::from_secs(5)),
            Duration::from_secs(1)
        );
    }
}
