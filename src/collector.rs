//! The periodic count of installed extensions (the
//! `compute_installed_extensions` metric), every
//! `--installed-extensions-collection-interval`.
//!
//! It asks the driver for a connector (none while postgres is not up) and
//! the catalog for the counts, so it sits above both: the catalog does not
//! know the driver.

use crate::driver::{Handle, Request, RequestError};
use crate::extensions::refresh;
use std::time::Duration;

/// Refreshes the figures every `interval` while postgres is up; the task
/// ends when the driver shuts down. (The start collects on its own.)
pub fn spawn(handle: Handle, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await; // the first tick is immediate
        loop {
            ticks.tick().await;
            match handle.request(|reply| Request::Connect { reply }).await {
                Ok(connector) => refresh(&connector).await,
                Err(RequestError::ShuttingDown) => return,
                Err(_) => {} // postgres is not up: nothing to count
            }
        }
    })
}
