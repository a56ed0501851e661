//! [`RateLimit`]: a cap on the bytes per second of every transfer that shares it.
//!
//! The cap is a generic cell rate: each transfer reserves its bytes on one shared timeline that
//! advances at the cap, and waits until the timeline reaches them, less a short allowance for
//! bursts. Transfers that share the cap share the bandwidth; a transfer alone gets all of it,
//! and time no transfer uses is not saved up beyond the allowance. Bytes are counted as they are
//! read from a response or handed to a request body, so the socket's own buffers are the only
//! burst above it.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How far ahead of the cap the bytes may run: a short burst, so that the pieces of several
/// connections do not wait on each other's every read.
const BURST: Duration = Duration::from_millis(50);

/// A cap on the bytes per second of the transfers that share it (clones share it).
#[derive(Clone)]
pub struct RateLimit(Arc<Inner>);

struct Inner {
    bytes_per_second: u64,
    /// When the bytes reserved so far are due, at the cap.
    due: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RateLimit")
            .field(&self.0.bytes_per_second)
            .finish()
    }
}

/// A rate that is no rate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is no rate: {reason}")]
pub struct ParseRateError {
    text: String,
    reason: &'static str,
}

impl RateLimit {
    /// A cap of `bytes_per_second` (at least 1).
    pub fn new(bytes_per_second: u64) -> Self {
        RateLimit(Arc::new(Inner {
            bytes_per_second: bytes_per_second.max(1),
            due: Mutex::new(None),
        }))
    }

    /// A cap written as bytes per second: a number with an optional unit, `K`, `M`, `G` (powers
    /// of 1000) or `Ki`, `Mi`, `Gi` (powers of 1024), with or without `B` and `/s`: `50M`,
    /// `1.5G`, `200MB/s`, `512KiB`.
    ///
    /// # Errors
    ///
    /// When `text` is not such a rate, or is zero.
    pub fn parse(text: &str) -> Result<Self, ParseRateError> {
        let fail = |reason| ParseRateError {
            text: text.to_owned(),
            reason,
        };
        let trimmed = text.trim();
        let size = trimmed.strip_suffix("/s").unwrap_or(trimmed);
        let bytes = parse_size::parse_size(size)
            .map_err(|_| fail("write bytes per second, as `50M`, `1.5G` or `512KiB`"))?;
        if bytes == 0 {
            return Err(fail("a cap of zero would move nothing"));
        }
        Ok(RateLimit::new(bytes))
    }

    /// The cap, in bytes per second.
    pub fn bytes_per_second(&self) -> u64 {
        self.0.bytes_per_second
    }

    /// Reserves `bytes` on the shared timeline at `now`; returns how long to wait before they
    /// go.
    fn reserve(&self, bytes: usize, now: Instant) -> Duration {
        #[expect(
            clippy::cast_precision_loss,
            reason = "a rate and a read's length are far below 2^52"
        )]
        let span = Duration::from_secs_f64(bytes as f64 / self.0.bytes_per_second as f64);
        let mut due = self.0.due.lock().unwrap_or_else(PoisonError::into_inner);
        // Time no transfer used is not saved up beyond the burst allowance.
        let start = due.map_or(now, |d| d.max(now.checked_sub(BURST).unwrap_or(now)));
        let until = start + span;
        *due = Some(until);
        until.saturating_duration_since(now + BURST)
    }

    /// Waits until `bytes` more may move (an async transfer's read or write).
    pub async fn take(&self, bytes: usize) {
        let wait = self.reserve(bytes, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Waits, blocking the thread, until `bytes` more may move: a piece a reader thread began
    /// to read at `since`. Its turn on the timeline is counted from then, so the time spent
    /// reading and hashing it is part of its wait instead of added to it (a reader that waited
    /// first and read after would fall behind the cap by its reading time, whenever that is
    /// longer than the burst allowance).
    pub fn take_blocking_since(&self, bytes: usize, since: Instant) {
        let wait = self.wait_since(bytes, since, Instant::now());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }

    /// How long bytes claimed at `since` still wait at `now`.
    fn wait_since(&self, bytes: usize, since: Instant, now: Instant) -> Duration {
        self.reserve(bytes, since)
            .saturating_sub(now.saturating_duration_since(since))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_as_people_write_them() {
        let rate = |t: &str| RateLimit::parse(t).map(|r| r.bytes_per_second());
        assert_eq!(rate("50M"), Ok(50_000_000));
        assert_eq!(rate("1.5G"), Ok(1_500_000_000));
        assert_eq!(rate("200MB/s"), Ok(200_000_000));
        assert_eq!(rate(" 512KiB "), Ok(512 << 10));
        assert_eq!(rate("1000"), Ok(1000));
        for bad in ["", "fast", "-5M", "0", "0M", "5 parsecs"] {
            assert!(rate(bad).is_err(), "`{bad}` is no rate");
        }
        assert!(
            RateLimit::parse("0")
                .unwrap_err()
                .to_string()
                .contains("zero")
        );
    }

    #[test]
    fn reservations_follow_the_cap_after_a_short_burst() {
        let cap = RateLimit::new(1_000_000);
        let t0 = Instant::now();
        let ms = |n| Duration::from_millis(n);
        // The first 50 ms worth goes at once; after that, every byte waits its turn.
        assert_eq!(cap.reserve(50_000, t0), Duration::ZERO);
        assert_eq!(cap.reserve(100_000, t0), ms(100));
        assert_eq!(cap.reserve(100_000, t0), ms(200));
        // Later, after an idle while, time unused is not saved up beyond the burst allowance:
        // 50 ms saved and 50 ms ahead go at once, and the next bytes wait.
        let later = t0 + Duration::from_secs(2);
        assert_eq!(cap.reserve(50_000, later), Duration::ZERO);
        assert_eq!(cap.reserve(50_000, later), Duration::ZERO);
        assert_eq!(cap.reserve(50_000, later), ms(50));
    }

    #[test]
    fn a_piece_waits_from_when_its_reading_began() {
        // 200 kB pieces at 1 MB/s: a turn of 200 ms each, and a reader that takes 150 ms to
        // read and hash each one, more than twice the burst allowance.
        let ms = |n| Duration::from_millis(n);
        let t0 = Instant::now();
        let release = |claim_when_read: bool| {
            let cap = RateLimit::new(1_000_000);
            let mut start = t0;
            let mut released = Vec::new();
            for _ in 0..5 {
                let read = start + ms(150);
                let since = if claim_when_read { read } else { start };
                let go = read + cap.wait_since(200_000, since, read);
                released.push(go.duration_since(t0));
                start = go;
            }
            released
        };
        // Claimed when its reading begins, each piece waits only for what is left of its
        // turn: one every 200 ms, the cap, each 50 ms (the allowance) before its turn ends.
        assert_eq!(
            release(false),
            [ms(150), ms(350), ms(550), ms(750), ms(950)]
        );
        // Claimed once read, every turn starts late: one every 250 ms, 80% of the cap.
        assert_eq!(
            release(true),
            [ms(300), ms(550), ms(800), ms(1050), ms(1300)]
        );
    }

    #[test]
    fn clones_share_one_cap() {
        let cap = RateLimit::new(1_000_000);
        let other = cap.clone();
        let t0 = Instant::now();
        assert_eq!(cap.reserve(50_000, t0), Duration::ZERO);
        assert_eq!(other.reserve(100_000, t0), Duration::from_millis(100));
    }
}
