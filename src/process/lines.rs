//! A child's output read line by line: each line capped in length (memory
//! stays bounded whatever a child writes), passed on as it comes (logged),
//! and the last few kept in a [`Tail`] for error messages.

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, BufReader};

/// What becomes of each line a child writes.
pub trait Lines: Send + 'static {
    /// Takes one line (lossy UTF-8, without its newline) of which `cut`
    /// bytes beyond the cap were dropped; returns what the tail keeps, if
    /// anything (after logging it, say).
    fn line(&mut self, text: &str, cut: usize) -> Option<String>;
}

/// Helpers' lines: empty ones skipped, the others logged by a function
/// (which names the log target) and kept.
pub struct LogAs(pub fn(&str));

impl Lines for LogAs {
    fn line(&mut self, text: &str, cut: usize) -> Option<String> {
        let text = text.trim_end();
        if text.is_empty() && cut == 0 {
            return None;
        }
        let line = marked(text.to_string(), cut);
        (self.0)(&line);
        Some(line)
    }
}

/// `line` with a note that `cut` bytes of it were dropped (if any).
pub fn marked(mut line: String, cut: usize) -> String {
    if cut > 0 {
        line.push_str(&format!(" [line cut: {cut} more bytes not shown]"));
    }
    line
}

/// The last lines a child wrote (at most a given number), shared between
/// the readers that fill it and whoever reports an error.
#[derive(Clone)]
pub struct Tail {
    lines: Arc<Mutex<VecDeque<String>>>,
    keep: usize,
}

impl Tail {
    /// An empty tail that keeps the last `keep` lines.
    pub fn new(keep: usize) -> Tail {
        Tail {
            lines: Arc::new(Mutex::new(VecDeque::with_capacity(keep))),
            keep,
        }
    }

    fn push(&self, line: String) {
        if self.keep == 0 {
            return;
        }
        let mut q = self.lines.lock();
        if q.len() == self.keep {
            q.pop_front();
        }
        q.push_back(line);
    }

    /// The kept lines, oldest first.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().iter().cloned().collect()
    }

    /// The kept lines, oldest first, joined by newlines.
    pub fn text(&self) -> String {
        self.lines().join("\n")
    }
}

/// Reads `reader` to its end, line by line (each cut at `cap` bytes), passing
/// each to `lines` and keeping what it returns in `tail`. A read error ends
/// it like the end of the output (the exit status tells what happened).
pub async fn follow<R: AsyncRead + Unpin>(
    reader: R,
    cap: usize,
    mut lines: impl Lines,
    tail: Tail,
) {
    let mut reader = BufReader::new(reader);
    while let Ok(Some((line, cut))) = read_capped_line(&mut reader, cap).await {
        if let Some(kept) = lines.line(&String::from_utf8_lossy(&line), cut) {
            tail.push(kept);
        }
    }
}

/// The next line (without its newline) of at most `cap` bytes, and how many
/// bytes of it were dropped beyond the cap; None at the end. Memory stays
/// bounded whatever the line's length.
pub async fn read_capped_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    cap: usize,
) -> std::io::Result<Option<(Vec<u8>, usize)>> {
    let mut line = Vec::new();
    let mut dropped = 0;
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            let at_end = line.is_empty() && dropped == 0;
            return Ok((!at_end).then_some((line, dropped)));
        }
        let (chunk, found) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        let room = cap.saturating_sub(line.len());
        let kept = chunk.len().min(room);
        line.extend_from_slice(&chunk[..kept]);
        dropped += chunk.len() - kept;
        let consumed = found.unwrap_or(chunk.len());
        reader.consume(consumed);
        if found.is_some() {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(Some((line, dropped)));
        }
    }
}
