//! Group commit: turns many concurrent "make sequence N durable" requests
//! into few flushes, and owns the journal's poison flag.
//!
//! Protocol (one `Mutex<State>` + one `Condvar`):
//! 1. if `durable >= N`, return;
//! 2. if another thread is flushing, wait on the condvar and go to 1;
//! 3. otherwise become the leader: capture the highest *appended* sequence
//!    **before** flushing, release the lock, flush, re-take the lock, mark the
//!    captured sequence durable, wake everyone, go to 1.
//!
//! A record whose append returned before the capture is covered by the
//! flush; later ones wait for the next leader. A failed flush poisons the
//! journal: after a failed fsync the kernel may have dropped the dirty pages
//! and a retry could falsely report success, so no later commit may succeed.

use crate::error::JournalError;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Upper bound on the yields a flush leader spends waiting for in-progress
/// appends.
const SETTLE_ROUNDS: u32 = 200;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};

#[derive(Debug, Default)]
struct State {
    durable: u64,
    flushing: bool,
    flushes: u64,
}

/// The group-commit coordinator.
#[derive(Debug)]
pub(crate) struct GroupCommit {
    state: Mutex<State>,
    cv: Condvar,
    appended: AtomicU64,
    in_flight: AtomicUsize,
    poison: OnceLock<String>,
}

/// Marks an append in progress for as long as it lives.
#[derive(Debug)]
pub(crate) struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Resets the `flushing` flag even if the flush closure panics, so waiters
/// are never stranded.
struct LeaderGuard<'a> {
    gc: &'a GroupCommit,
    done: bool,
}

impl Drop for LeaderGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            let mut st = self.gc.lock();
            st.flushing = false;
            drop(st);
            self.gc.poison("a flush panicked".to_string());
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
            in_flight: AtomicUsize::new(0),
            poison: OnceLock::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // No code panics while holding this lock; if it ever did, the state
        // (two integers and a flag) is still meaningful.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers an append in progress; a flush leader lets it finish
    /// before capturing what its flush covers.
    pub(crate) fn begin_append(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(&self.in_flight)
    }

    /// Lets appends already in progress finish (bounded), so that the
    /// flush about to start covers them instead of leaving them for the
    /// next one. Appends take tens of microseconds; a flush takes hundreds.
    fn settle(&self) {
        let mut rounds = 0;
        while self.in_flight.load(Ordering::Acquire) > 0 && rounds < SETTLE_ROUNDS {
            std::thread::yield_now();
            rounds += 1;
        }
    }

    /// Records that every sequence up to `seq` has been applied.
    pub(crate) fn note_appended(&self, seq: u64) {
        self.appended.fetch_max(seq, Ordering::AcqRel);
    }

    /// Highest sequence applied (not necessarily durable).
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

    /// Returns once every sequence `<= seq` is durable, flushing with `flush`
    /// if no other thread is already doing so.
    pub(crate) fn commit<F>(&self, seq: u64, mut flush: F) -> Result<(), JournalError>
    where
        F: FnMut() -> Result<(), JournalError>,
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
            if st.flushing {
                st = self.cv.wait(st).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            st.flushing = true;
            drop(st);
            self.settle();
            let target = self.appended();

            let mut guard = LeaderGuard {
                gc: self,
                done: false,
            };
            let result = flush();
            guard.done = true;
            drop(guard);

            st = self.lock();
            st.flushing = false;
            match result {
                Ok(()) => {
                    st.durable = st.durable.max(target);
                    st.flushes += 1;
                    self.cv.notify_all();
                }
                Err(e) => {
                    self.poison(format!("flush failed: {e}"));
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

    #[test]
    fn already_durable_does_not_flush() -> Result<(), JournalError> {
        let gc = GroupCommit::new(5);
        gc.commit(3, || panic!("must not flush"))?;
        gc.commit(0, || panic!("must not flush"))?;
        assert_eq!(gc.flushes(), 0);
        Ok(())
    }

    #[test]
    fn refuses_unappended() {
        let gc = GroupCommit::new(0);
        gc.note_appended(2);
        assert!(matches!(
            gc.commit(3, || Ok(())),
            Err(JournalError::NotAppended {
                seq: 3,
                appended: 2
            })
        ));
    }

    #[test]
    fn captures_appended_before_flush() -> Result<(), JournalError> {
        let gc = GroupCommit::new(0);
        gc.note_appended(1);
        // An append landing during the flush is not covered by it.
        gc.commit(1, || {
            gc.note_appended(2);
            Ok(())
        })?;
        assert_eq!(gc.durable(), 1);
        gc.commit(2, || Ok(()))?;
        assert_eq!(gc.durable(), 2);
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
            gc.commit(1, || Ok(())),
            Err(JournalError::Poisoned(_))
        ));
    }

    #[test]
    fn concurrent_committers_share_flushes() {
        let gc = Arc::new(GroupCommit::new(0));
        let next = Arc::new(AtomicU64::new(0));
        let flushed = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (gc, next, flushed) = (gc.clone(), next.clone(), flushed.clone());
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        let seq = next.fetch_add(1, Ordering::SeqCst) + 1;
                        gc.note_appended(seq);
                        let r = gc.commit(seq, || {
                            flushed.fetch_add(1, Ordering::SeqCst);
                            // a flush takes a while, giving others time to queue up
                            std::thread::yield_now();
                            std::hint::black_box((0..20_000u64).sum::<u64>());
                            Ok(())
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
        let flushes = flushed.load(Ordering::SeqCst);
        assert_eq!(u64::try_from(flushes).ok(), Some(gc.flushes()));
        assert!(flushes <= 1600);
    }
}
