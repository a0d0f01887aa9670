//! The basebackup's writer threads: the unpacking thread reads the archive
//! (one stream, in order) and hands each small file, content and all, to a
//! few threads that create and write it, so that the ~1000 files of a
//! PGDATA are not created one after another (each costs system calls, not
//! bandwidth). The unpacking thread drains the queue before anything that
//! could change where a queued file's path leads (see `unpack_entries`).

use super::write_data;
use anyhow::Result;
use std::path::PathBuf;

/// Files of at most this size are written by the writer threads (their
/// data read first); bigger ones by the unpacking thread itself.
pub(super) const PARALLEL_MAX: u64 = 256 * 1024;
/// Writer threads: writing a PGDATA's ~1000 small files is bound by
/// per-file system calls, which run in parallel well even on two cores.
pub(super) const WRITER_THREADS: usize = 3;
/// Files queued for the writers at most (with [`PARALLEL_MAX`]: at most
/// 4 MiB waiting, plus one file per writer).
const WRITER_QUEUE: usize = 16;

/// A small file for a writer thread: its destination and its content.
pub(super) struct Job {
    pub(super) dest: PathBuf,
    pub(super) data: Vec<u8>,
}

/// The writer threads' queue and what they report.
#[derive(Default)]
pub(super) struct Writers {
    state: std::sync::Mutex<WritersState>,
    changed: std::sync::Condvar,
}

#[derive(Default)]
struct WritersState {
    jobs: std::collections::VecDeque<Job>,
    writing: usize,
    closed: bool,
    error: Option<anyhow::Error>,
}

impl Writers {
    fn lock(&self) -> std::sync::MutexGuard<'_, WritersState> {
        // A writer that panicked left the state consistent (counts are
        // updated under the lock only).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(
        &self,
        guard: std::sync::MutexGuard<'a, WritersState>,
    ) -> std::sync::MutexGuard<'a, WritersState> {
        self.changed.wait(guard).unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `job`, waiting while the queue is full; a writer's failure
    /// is returned instead.
    pub(super) fn submit(&self, job: Job) -> Result<()> {
        let mut st = self.lock();
        while st.jobs.len() >= WRITER_QUEUE && st.error.is_none() {
            st = self.wait(st);
        }
        if let Some(e) = st.error.take() {
            return Err(e);
        }
        st.jobs.push_back(job);
        self.changed.notify_all();
        Ok(())
    }

    /// Waits until every file queued is written; returns the first
    /// writer's failure, if any.
    pub(super) fn drain(&self) -> Result<()> {
        let mut st = self.lock();
        while (!st.jobs.is_empty() || st.writing > 0) && st.error.is_none() {
            st = self.wait(st);
        }
        match st.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Lets the writers stop once the queue is empty.
    pub(super) fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }

    /// A writer thread: writes queued files until closed. After a failure,
    /// the rest of the queue is dropped (the unpacking fails anyway).
    pub(super) fn work(&self, owner: Option<(u32, u32)>) {
        let mut st = self.lock();
        loop {
            if st.error.is_some() {
                st.jobs.clear();
            }
            if let Some(job) = st.jobs.pop_front() {
                st.writing += 1;
                drop(st);
                self.changed.notify_all();
                let written = write_data(&job.dest, &job.data, owner);
                st = self.lock();
                st.writing -= 1;
                if let Err(e) = written {
                    st.error.get_or_insert(e);
                }
                self.changed.notify_all();
                continue;
            }
            if st.closed {
                return;
            }
            st = self.wait(st);
        }
    }
}
