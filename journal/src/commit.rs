//! Group commit: turns many concurrent "make sequence N durable" requests
//! into few batches and flushes, and owns the journal's poison flag.
//!
//! Protocol (one `Mutex<State>` + one `Condvar`):
//! 1. if `durable >= N`, return;
//! 2. if another thread is leading, wait on the condvar and go to 1;
//! 3. otherwise become the leader: release the lock and run the journal's
//!    `write` step, which drains **everything queued** (not only up to N),
//!    writes it as one sled batch, flushes, `fdatasync`s, and returns the
//!    last sequence it covered; re-take the lock, mark that sequence
//!    durable, wake everyone, go to 1.
//!
//! A record appended before the leader drained is covered by its flush;
//! later ones are found by the next leader. A failed write or flush poisons
//! the journal: after a failed fsync the kernel may have dropped the dirty
//! pages and a retry could falsely report success, so no later commit may
//! succeed.

use crate::error::JournalError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};

#[derive(Debug, Default)]
struct State {
    durable: u64,
    leading: bool,
    flushes: u64,
}

/// The group-commit coordinator.
#[derive(Debug)]
pub(crate) struct GroupCommit {
    state: Mutex<State>,
    cv: Condvar,
    appended: AtomicU64,
    poison: OnceLock<String>,
}

/// Resets the `leading` flag even if the write step panics, so waiters
/// are never stranded.
struct LeaderGuard<'a> {
    gc: &'a GroupCommit,
    done: bool,
}

impl Drop for LeaderGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            let mut st = self.gc.lock();
            st.leading = false;
            drop(st);
            self.gc.poison("a commit panicked".to_string());
            self.gc.cv.notify_all();
        }
    }
}

impl GroupCommit {
    /// A coordinator whose first `durable` sequences are already durable.
    pub(crate) fn new(durable: u64) -> GroupCommit {
        GroupCommit {
            state: Mutex::new(State {
                durable,
                ..State::default()
            }),
            cv: Condvar::new(),
            appended: AtomicU64::new(durable),
            poison: OnceLock::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // No code panics while holding this lock; if it ever did, the state
        // (two integers and a flag) is still meaningful.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that every sequence up to `seq` has been appended (queued).
    pub(crate) fn note_appended(&self, seq: u64) {
        self.appended.fetch_max(seq, Ordering::AcqRel);
    }

    /// Highest sequence appended (not necessarily durable).
    pub(crate) fn appended(&self) -> u64 {
        self.appended.load(Ordering::Acquire)
    }

    /// Highest sequence known durable.
    pub(crate) fn durable(&self) -> u64 {
        self.lock().durable
    }

    /// Number of flushes performed so far.
    pub(crate) fn flushes(&self) -> u64 {
        self.lock().flushes
    }

    /// Poisons the journal (first reason wins).
    pub(crate) fn poison(&self, reason: String) {
        let _ = self.poison.set(reason);
    }

    /// `Err(Poisoned)` if the journal is poisoned.
    pub(crate) fn check_poison(&self) -> Result<(), JournalError> {
        match self.poison.get() {
            Some(reason) => Err(JournalError::Poisoned(reason.clone())),
            None => Ok(()),
        }
    }

    /// Returns once every sequence `<= seq` is durable, running `write`
    /// (which returns the last sequence it made durable) if no other thread
    /// is already leading.
    pub(crate) fn commit<F>(&self, seq: u64, mut write: F) -> Result<(), JournalError>
    where
        F: FnMut() -> Result<u64, JournalError>,
    {
        let appended = self.appended();
        if seq > appended {
            return Err(JournalError::NotAppended { seq, appended });
        }
        let mut st = self.lock();
        loop {
            self.check_poison()?;
            if st.durable >= seq {
                return Ok(());
            }
            if st.leading {
                st = self.cv.wait(st).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            st.leading = true;
            drop(st);

            let mut guard = LeaderGuard {
                gc: self,
                done: false,
            };
            let result = write();
            guard.done = true;
            drop(guard);

            st = self.lock();
            st.leading = false;
            match result {
                Ok(covered) => {
                    st.durable = st.durable.max(covered);
                    st.flushes += 1;
                    self.cv.notify_all();
                }
                Err(e) => {
                    self.poison(format!("commit failed: {e}"));
                    self.cv.notify_all();
                    return Err(e);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn already_durable_does_not_write() -> Result<(), JournalError> {
        let gc = GroupCommit::new(5);
        gc.commit(3, || panic!("must not write"))?;
        gc.commit(0, || panic!("must not write"))?;
        assert_eq!(gc.flushes(), 0);
        Ok(())
    }

    #[test]
    fn refuses_unappended() {
        let gc = GroupCommit::new(0);
        gc.note_appended(2);
        assert!(matches!(
            gc.commit(3, || Ok(3)),
            Err(JournalError::NotAppended {
                seq: 3,
                appended: 2
            })
        ));
    }

    #[test]
    fn durable_is_what_the_write_covered() -> Result<(), JournalError> {
        let gc = GroupCommit::new(0);
        gc.note_appended(3);
        // The leader's write drains everything queued, beyond its own seq.
        gc.commit(1, || Ok(3))?;
        assert_eq!(gc.durable(), 3);
        gc.commit(3, || panic!("already covered"))?;
        gc.note_appended(4);
        gc.commit(4, || Ok(4))?;
        assert_eq!(gc.durable(), 4);
        assert_eq!(gc.flushes(), 2);
        Ok(())
    }

    #[test]
    fn failure_poisons() {
        let gc = GroupCommit::new(0);
        gc.note_appended(1);
        let r = gc.commit(1, || {
            Err(JournalError::Io {
                context: "test",
                source: std::io::Error::other("disk on fire"),
            })
        });
        assert!(matches!(r, Err(JournalError::Io { .. })));
        assert!(matches!(
            gc.commit(1, || Ok(1)),
            Err(JournalError::Poisoned(_))
        ));
    }

    #[test]
    fn panicking_write_poisons_and_releases_waiters() {
        let gc = Arc::new(GroupCommit::new(0));
        gc.note_appended(1);
        let g = Arc::clone(&gc);
        let t = std::thread::spawn(move || g.commit(1, || panic!("boom")));
        assert!(t.join().is_err());
        assert!(matches!(
            gc.commit(1, || Ok(1)),
            Err(JournalError::Poisoned(_))
        ));
    }

    #[test]
    fn concurrent_committers_share_writes() {
        let gc = Arc::new(GroupCommit::new(0));
        let next = Arc::new(AtomicU64::new(0));
        let written = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (gc, next, written) = (gc.clone(), next.clone(), written.clone());
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        let seq = next.fetch_add(1, Ordering::SeqCst) + 1;
                        gc.note_appended(seq);
                        let r = gc.commit(seq, || {
                            written.fetch_add(1, Ordering::SeqCst);
                            // Covers everything appended when it starts.
                            let covered = gc.appended();
                            std::thread::yield_now();
                            std::hint::black_box((0..20_000u64).sum::<u64>());
                            Ok(covered)
                        });
                        assert!(r.is_ok(), "commit failed: {r:?}");
                        assert!(gc.durable() >= seq);
                    }
                })
            })
            .collect();
        for t in threads {
            assert!(t.join().is_ok());
        }
        assert_eq!(gc.durable(), 1600);
        let writes = written.load(Ordering::SeqCst);
        assert_eq!(u64::try_from(writes).ok(), Some(gc.flushes()));
        assert!(writes <= 1600);
    }
}
