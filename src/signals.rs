//! Termination signals, turned into driver events.
//!
//! SIGTERM and SIGINT ask for a fast shutdown, SIGQUIT for an immediate one.
//! SIGHUP (a closed terminal, a supervisor's hang-up) is a fast shutdown too:
//! its default action would kill compute_ctl outright and leave postgres
//! running without it. The handlers are explicit, so they work when
//! compute_ctl is PID 1 (the kernel ignores signals PID 1 has no handler for).

use crate::driver::{Event, Handle};
use anyhow::{Context, Result};
use compute_states::TerminationMode;
use tokio::signal::unix::{signal, SignalKind};

/// Installs the handlers and forwards every signal to the driver.
pub fn forward_to(handle: Handle) -> Result<()> {
    let kinds = [
        (SignalKind::terminate(), "SIGTERM", TerminationMode::Fast),
        (SignalKind::interrupt(), "SIGINT", TerminationMode::Fast),
        (SignalKind::quit(), "SIGQUIT", TerminationMode::Immediate),
        (SignalKind::hangup(), "SIGHUP", TerminationMode::Fast),
    ];
    for (kind, name, mode) in kinds {
        let mut stream = signal(kind).with_context(|| format!("installing the {name} handler"))?;
        let handle = handle.clone();
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                tracing::info!(signal = name, %mode, "received termination signal");
                if !handle.send(Event::Signal(mode)).await {
                    break;
                }
            }
        });
    }
    Ok(())
}
