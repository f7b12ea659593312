//! Bounded retries of one call: capped exponential backoff with jitter, transient errors only.
//!
//! The n-th retry waits a random duration in `[d/2, d]` where `d = min(max, initial · 2ⁿ⁻¹)`. A
//! `Retry-After` from the portal is a floor: the retry never comes sooner; when it is longer than
//! the cap, the call gives up and returns the error (whose [`retry_after`] tells the caller when
//! to come back). Permanent errors are returned at once.
//!
//! [`retry_after`]: super::PortalError::retry_after

use super::config::RetryConfig;
use super::error::PortalError;
use std::future::Future;
use std::time::Duration;

/// The retry schedule of one call.
#[derive(Debug, Clone)]
pub struct Backoff {
    max_attempts: u32,
    initial: Duration,
    max: Duration,
}

impl Backoff {
    /// The schedule of `config` (at least one attempt).
    pub fn new(config: &RetryConfig) -> Self {
        Self {
            max_attempts: config.max_attempts.max(1),
            initial: Duration::from_millis(config.initial_backoff_ms),
            max: Duration::from_millis(config.max_backoff_ms.max(config.initial_backoff_ms)),
        }
    }

    /// Attempts in total.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The wait before retry number `retry` (1 for the first retry) after `error`, or `None`
    /// when the call should give up.
    pub fn delay(&self, retry: u32, error: &PortalError) -> Option<Duration> {
        if !error.is_retryable() || retry >= self.max_attempts {
            return None;
        }
        let exponent = retry.saturating_sub(1).min(20);
        let ceiling = self.initial.saturating_mul(1u32 << exponent).min(self.max);
        let jittered = jitter(ceiling / 2, ceiling);
        match error.retry_after() {
            Some(floor) if floor > self.max => None,
            Some(floor) => Some(jittered.max(floor)),
            None => Some(jittered),
        }
    }
}

/// A uniformly random duration in `[low, high]`.
pub fn jitter(low: Duration, high: Duration) -> Duration {
    if high <= low {
        return low;
    }
    let span = (high - low).as_millis().min(u128::from(u64::MAX)) as u64;
    low + Duration::from_millis(fastrand::u64(0..=span))
}

/// Runs `op` until it succeeds, fails permanently or the schedule is exhausted.
pub async fn retrying<T, F, Fut>(backoff: &Backoff, what: &str, mut op: F) -> Result<T, PortalError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, PortalError>>,
{
    let mut retry = 0;
    loop {
        match op().await {
            Ok(value) => return Ok(value),
            Err(error) => {
                retry += 1;
                match backoff.delay(retry, &error) {
                    Some(wait) => {
                        tracing::warn!(
                            "portal: {what} failed ({error}); retry {retry} in {} ms",
                            wait.as_millis()
                        );
                        tokio::time::sleep(wait).await;
                    }
                    None => return Err(error),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff() -> Backoff {
        Backoff::new(&RetryConfig {
            max_attempts: 5,
            initial_backoff_ms: 100,
            max_backoff_ms: 1000,
        })
    }

    fn server_error(retry_after: Option<Duration>) -> PortalError {
        PortalError::Server {
            status: 503,
            body: String::new(),
            retry_after,
        }
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let b = backoff();
        for _ in 0..100 {
            let d1 = b.delay(1, &server_error(None)).expect("retry 1");
            assert!((50..=100).contains(&d1.as_millis()), "{d1:?}");
            let d4 = b.delay(4, &server_error(None)).expect("retry 4");
            assert!((400..=800).contains(&d4.as_millis()), "{d4:?}");
        }
        assert_eq!(
            b.delay(5, &server_error(None)),
            None,
            "attempts are bounded"
        );
    }

    #[test]
    fn retry_after_is_a_floor_and_permanent_errors_stop() {
        let b = backoff();
        let d = b
            .delay(1, &server_error(Some(Duration::from_millis(700))))
            .expect("a retry");
        assert!(d >= Duration::from_millis(700));
        assert_eq!(
            b.delay(1, &server_error(Some(Duration::from_secs(5)))),
            None
        );
        let permanent = PortalError::Rejected {
            status: 400,
            body: String::new(),
        };
        assert_eq!(b.delay(1, &permanent), None);
    }
}
