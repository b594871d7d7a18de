//! The one retry policy for transient faults, used by every Argo CD read in both modes, and
//! the reconnect backoff of both watchers.
//!
//! - Reads (idempotent requests only) retry 429, 500, 502, 503, 504 and connection errors:
//!   [`READ_ATTEMPTS`] attempts in all, exponential backoff from [`READ_MIN_DELAY`] capped at
//!   [`READ_MAX_DELAY`], with jitter; a `Retry-After` (or a Kubernetes Status'
//!   `retryAfterSeconds`) is honoured up to [`RETRY_AFTER_CAP`].
//! - Writes are never retried here: a sync or rollback is sent once, and after an answer that
//!   leaves its fate unknown the caller reads the app to learn whether it went through.
//! - Watchers reconnect without end, backing off from [`RECONNECT_MIN_DELAY`] to at most
//!   [`RECONNECT_MAX_DELAY`] (jitter may add up to as much again), so the board converges
//!   within seconds of a fault clearing.
//!
//! The backoff itself is `backon`'s (the crate kube-runtime uses), not a hand-rolled loop.

use backon::{ExponentialBuilder, Retryable};
use std::future::Future;
use std::time::Duration;

/// Attempts a read gets in all (the first one and four retries).
pub const READ_ATTEMPTS: usize = 5;
pub const READ_MIN_DELAY: Duration = Duration::from_millis(200);
pub const READ_MAX_DELAY: Duration = Duration::from_secs(2);
/// The longest `Retry-After` a read waits for; a server asking for more gets this.
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(5);
pub const RECONNECT_MIN_DELAY: Duration = Duration::from_millis(250);
pub const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(2);

/// What one failed attempt says about trying again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transience {
    /// The answer is final (4xx other than 429, a malformed body, ...).
    Permanent,
    /// It may work if asked again, after at least `retry_after` when the server said so.
    Transient { retry_after: Option<Duration> },
}

impl Transience {
    pub fn is_transient(self) -> bool {
        matches!(self, Transience::Transient { .. })
    }
}

/// Is an HTTP status worth asking again for, for an idempotent read?
pub fn transient_status(code: u16) -> bool {
    matches!(code, 429 | 500 | 502 | 503 | 504)
}

/// `Retry-After` as seconds (the HTTP-date form is rare from API servers and is ignored:
/// the backoff applies then).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The backoff of reads: bounded attempts, exponential, capped, jittered.
pub fn read_backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(READ_MIN_DELAY)
        .with_max_delay(READ_MAX_DELAY)
        .with_factor(2.0)
        .with_max_times(READ_ATTEMPTS - 1)
        .with_jitter()
}

/// The backoff of watch reconnects: unbounded attempts, capped delay, jittered.
pub fn reconnect_backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(RECONNECT_MIN_DELAY)
        .with_max_delay(RECONNECT_MAX_DELAY)
        .with_factor(2.0)
        .without_max_times()
        .with_jitter()
}

/// The wait before the next attempt: the backoff's, or the server's `Retry-After` when that
/// is longer (capped). `None` (no attempts left) stays `None`.
pub fn next_delay(backoff: Option<Duration>, verdict: Transience) -> Option<Duration> {
    let backoff = backoff?;
    match verdict {
        Transience::Transient {
            retry_after: Some(ra),
        } => Some(backoff.max(ra.min(RETRY_AFTER_CAP))),
        _ => Some(backoff),
    }
}

/// Run an idempotent read under the read policy. `classify` says which failures are worth
/// another attempt; the last failure is returned as it was.
pub async fn read<T, E, F, Fut>(
    what: &str,
    op: F,
    classify: impl Fn(&E) -> Transience,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    op.retry(read_backoff())
        .sleep(tokio::time::sleep)
        .when(|e| classify(e).is_transient())
        .adjust(|e, d| next_delay(d, classify(e)))
        .notify(|e, d| {
            tracing::info!(
                "{what}: {}; trying again in {} ms",
                crate::model::text::sanitize(&e.to_string()),
                d.as_millis()
            )
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn retry_after_is_honoured_up_to_the_cap() {
        let t = |s| Transience::Transient {
            retry_after: Some(Duration::from_secs(s)),
        };
        let b = Some(Duration::from_millis(300));
        assert_eq!(next_delay(b, t(1)), Some(Duration::from_secs(1)));
        assert_eq!(next_delay(b, t(600)), Some(RETRY_AFTER_CAP));
        assert_eq!(next_delay(b, t(0)), b);
        assert_eq!(next_delay(None, t(1)), None);
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[test]
    fn backoff_is_bounded_and_capped() {
        let delays: Vec<Duration> = backon::BackoffBuilder::build(read_backoff()).collect();
        assert_eq!(delays.len(), READ_ATTEMPTS - 1);
        // Jitter adds at most the delay itself.
        assert!(
            delays.iter().all(|d| *d <= READ_MAX_DELAY * 2),
            "{delays:?}"
        );
        let mut reconnect = backon::BackoffBuilder::build(reconnect_backoff());
        let late: Vec<Duration> = (0..40).filter_map(|_| reconnect.next()).collect();
        assert_eq!(late.len(), 40, "reconnects never give up");
        assert!(late.iter().all(|d| *d <= RECONNECT_MAX_DELAY * 2));
    }

    #[tokio::test]
    async fn reads_retry_transient_failures_only() {
        let calls = AtomicU32::new(0);
        let r: Result<u32, String> = read(
            "test",
            || async {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                if n < 2 { Err("503".to_string()) } else { Ok(n) }
            },
            |_| Transience::Transient { retry_after: None },
        )
        .await;
        assert_eq!(r, Ok(2));
        let calls = AtomicU32::new(0);
        let r: Result<u32, String> = read(
            "test",
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err("404".to_string())
            },
            |_| Transience::Permanent,
        )
        .await;
        assert_eq!(r, Err("404".into()));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let calls = AtomicU32::new(0);
        let r: Result<u32, String> = read(
            "test",
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err("500".to_string())
            },
            |_| Transience::Transient { retry_after: None },
        )
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), READ_ATTEMPTS as u32);
    }
}
