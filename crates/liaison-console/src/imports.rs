//! Bulk imports in the background. A file of records is sent to the node's
//! import handler in chunks (the handler takes at most 1,000 records per
//! call), as the user who uploaded it, while the page shows how far it got
//! and refreshes itself until the end; no script is needed.
//!
//! Jobs are kept in memory, bounded: a few running at once, the last
//! finished ones kept for their owner to read, the oldest dropped first.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

/// Records per call to the import handler.
pub const CHUNK: usize = 500;
/// Imports running at once, over all users.
const MAX_RUNNING: usize = 4;
/// Jobs kept (running and finished).
const MAX_KEPT: usize = 64;

/// One import as its page shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Job {
    pub id: String,
    pub owner: String,
    pub total: usize,
    /// Records sent so far (stored, already held or refused).
    pub sent: usize,
    pub stored: u32,
    pub held: u32,
    /// (record number from 1, field, reason) of each record not stored.
    pub problems: Vec<(usize, String, String)>,
    /// Why the import stopped before the end (the node refused a call).
    pub error: Option<String>,
    pub finished: bool,
}

impl Job {
    /// Adds one chunk's outcome; `first` is the chunk's first record's index.
    pub fn chunk_done(
        &mut self,
        first: usize,
        len: usize,
        stored: u32,
        held: u32,
        problems: Vec<(usize, String, String)>,
    ) {
        self.sent = self.sent.saturating_add(len).min(self.total);
        self.stored = self.stored.saturating_add(stored);
        self.held = self.held.saturating_add(held);
        self.problems.extend(problems.into_iter().map(|(i, f, r)| (first.saturating_add(i).saturating_add(1), f, r)));
    }
}

#[derive(Debug, Default)]
pub struct Imports {
    jobs: Mutex<VecDeque<Job>>,
}

impl Imports {
    /// A new job for `owner`, or None while too many are running.
    pub fn start(&self, owner: &str, total: usize) -> Option<String> {
        let mut jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        if jobs.iter().filter(|j| !j.finished).count() >= MAX_RUNNING {
            return None;
        }
        while jobs.len() >= MAX_KEPT {
            let oldest_finished = jobs.iter().position(|j| j.finished)?;
            jobs.remove(oldest_finished);
        }
        let id = crate::session::random_token();
        jobs.push_back(Job { id: id.clone(), owner: owner.to_string(), total, ..Job::default() });
        Some(id)
    }

    pub fn update(&self, id: &str, f: impl FnOnce(&mut Job)) {
        let mut jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(j) = jobs.iter_mut().find(|j| j.id == id) {
            f(j);
        }
    }

    /// The job, if `owner` started it (another user's import is not found).
    pub fn get(&self, id: &str, owner: &str) -> Option<Job> {
        let jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        jobs.iter().find(|j| crate::session::same(&j.id, id) && j.owner == owner).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_adds_up_and_problems_keep_their_record_number() {
        let imports = Imports::default();
        let id = imports.start("ana", 1200).unwrap();
        imports.update(&id, |j| j.chunk_done(0, 500, 500, 0, vec![]));
        imports.update(&id, |j| j.chunk_done(500, 500, 498, 1, vec![(3, "record.id".into(), "required".into())]));
        let j = imports.get(&id, "ana").unwrap();
        assert_eq!((j.sent, j.stored, j.held, j.finished), (1000, 998, 1, false));
        assert_eq!(j.problems, vec![(504, "record.id".to_string(), "required".to_string())]);
        assert_eq!(imports.get(&id, "ben"), None, "another user's import is not theirs to read");
        assert_eq!(imports.get("guess", "ana"), None);
    }

    #[test]
    fn running_jobs_and_kept_jobs_are_bounded() {
        let imports = Imports::default();
        let ids: Vec<String> = (0..MAX_RUNNING).map(|_| imports.start("ana", 1).unwrap()).collect();
        assert_eq!(imports.start("ana", 1), None, "too many running");
        for id in &ids {
            imports.update(id, |j| j.finished = true);
        }
        for _ in 0..MAX_KEPT {
            let id = imports.start("ana", 1).unwrap();
            imports.update(&id, |j| j.finished = true);
        }
        assert_eq!(imports.jobs.lock().unwrap().len(), MAX_KEPT);
        assert_eq!(imports.get(&ids[0], "ana"), None, "the oldest finished job made room");
    }
}
