//! Logging: compute_ctl's own events and the lines postgres writes, either
//! as text for people or as one JSON object per line for log pipelines
//! (`--log-format json`).
//!
//! In JSON mode postgres is told how to prefix its lines
//! ([`PG_LINE_PREFIX`]), so each forwarded line can be taken apart into an
//! object of its own: `source: "postgres"`, the backend's `pid`, its
//! `severity`, and the message, at the matching level.

use anyhow::Result;
use std::sync::OnceLock;

/// How log lines are written on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line: timestamp, level, target, message, fields,
    /// and the current span.
    Json,
}

static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// The format chosen by [`init`] (text when logging was set up otherwise,
/// e.g. in tests).
pub fn format() -> LogFormat {
    FORMAT.get().copied().unwrap_or_default()
}

/// The `log_line_prefix` postgres is started with in JSON mode: the
/// timestamp and the pid, which [`parse_pg_line`] takes apart.
pub const PG_LINE_PREFIX: &str = "%m [%p] ";

/// Keeps the log writer's thread: dropped at the end of `main`, it writes
/// out the lines still queued before the process exits.
#[must_use = "log lines still queued are lost when the guard is dropped early"]
pub struct LogGuard(#[allow(dead_code)] tracing_appender::non_blocking::WorkerGuard);

/// Lines queued for stderr before a logging task waits for the writer (the
/// queue is a bounded channel; nothing is dropped when it is full).
const QUEUED_LINES: usize = 128 * 1024;

/// Installs the global subscriber: `RUST_LOG` filters (default `info`).
///
/// Lines are written to stderr by a thread of their own, through a queue
/// of [`QUEUED_LINES`]: a task that logs (the driver, an HTTP request)
/// never waits for whoever reads stderr unless that reader is a queue's
/// worth behind, where a direct write waited as soon as the pipe's 64 KiB
/// were full. The queue does not drop lines; order is kept.
pub fn init(format: LogFormat) -> Result<LogGuard> {
    let _ = FORMAT.set(format);
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(QUEUED_LINES)
        .thread_name("compute_ctl-log")
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_writer(writer)
        .with_env_filter(filter);
    match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    }
    .map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))?;
    Ok(LogGuard(guard))
}

/// A line postgres wrote with [`PG_LINE_PREFIX`], taken apart.
#[derive(Debug, PartialEq, Eq)]
pub struct PgLine<'a> {
    /// Postgres' own timestamp (`%m`).
    pub time: Option<&'a str>,
    /// The pid of the process that wrote it.
    pub pid: Option<i32>,
    /// `LOG`, `ERROR`, `DETAIL`, ... when the line has one.
    pub severity: Option<&'a str>,
    /// The rest of the line.
    pub message: &'a str,
}

/// Severities postgres writes (message levels and the detail lines).
const SEVERITIES: &[&str] = &[
    "DEBUG1",
    "DEBUG2",
    "DEBUG3",
    "DEBUG4",
    "DEBUG5",
    "INFO",
    "NOTICE",
    "WARNING",
    "ERROR",
    "LOG",
    "FATAL",
    "PANIC",
    "DETAIL",
    "HINT",
    "QUERY",
    "CONTEXT",
    "LOCATION",
    "STATEMENT",
];

/// Takes apart `2024-01-01 10:00:00.123 UTC [42] LOG:  message`. A line
/// without the prefix (a continuation line, or something postgres wrote
/// before reading its settings) is all message.
pub fn parse_pg_line(line: &str) -> PgLine<'_> {
    let whole = PgLine {
        time: None,
        pid: None,
        severity: None,
        message: line,
    };
    let Some(open) = line.find(" [") else {
        return whole;
    };
    let after = &line[open + 2..];
    let Some(close) = after.find("] ") else {
        return whole;
    };
    let Ok(pid) = after[..close].parse::<i32>() else {
        return whole;
    };
    let time = &line[..open];
    // %m starts with the date: 2024-01-01.
    if !time.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        return whole;
    }
    let rest = &after[close + 2..];
    let (severity, message) = match rest.split_once(":  ") {
        Some((sev, msg)) if SEVERITIES.contains(&sev) => (Some(sev), msg),
        _ => (None, rest),
    };
    PgLine {
        time: Some(time),
        pid: Some(pid),
        severity,
        message,
    }
}

/// Logs one (already redacted) line of postgres' output under target
/// `postgres`: as is in text mode, taken apart in JSON mode.
pub fn forward_pg_line(line: &str) {
    if format() == LogFormat::Text {
        tracing::info!(target: "postgres", "{line}");
        return;
    }
    let l = parse_pg_line(line);
    let (msg, sev, pid, time) = (l.message, l.severity.unwrap_or(""), l.pid, l.time);
    macro_rules! emit {
        ($level:ident) => {
            tracing::$level!(target: "postgres", source = "postgres", pid, severity = sev, pg_time = time, "{msg}")
        };
    }
    match l.severity {
        Some("ERROR" | "FATAL" | "PANIC") => emit!(error),
        Some("WARNING") => emit!(warn),
        Some(s) if s.starts_with("DEBUG") => emit!(debug),
        _ => emit!(info),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_lines_are_taken_apart() {
        let l = parse_pg_line("2026-01-02 03:04:05.678 UTC [4242] LOG:  database system is ready");
        assert_eq!(
            l,
            PgLine {
                time: Some("2026-01-02 03:04:05.678 UTC"),
                pid: Some(4242),
                severity: Some("LOG"),
                message: "database system is ready",
            }
        );
        let l = parse_pg_line(
            "2026-01-02 03:04:05.678 +03 [7] ERROR:  relation \"x\" [1] does not exist",
        );
        assert_eq!((l.pid, l.severity), (Some(7), Some("ERROR")));
        assert_eq!(l.message, "relation \"x\" [1] does not exist");
        // A continuation line, and a line with an unknown word before the colon.
        assert_eq!(parse_pg_line("\tcontinued [3] here").pid, None);
        let l = parse_pg_line("2026-01-02 03:04:05.678 UTC [9] whatever:  text");
        assert_eq!((l.severity, l.message), (None, "whatever:  text"));
    }
}
