//! The policy every action shares: how many attempts, how long to back off between them
//! (exponential with full jitter), and how fast to send (a token bucket). Actions ask; they never
//! decide these on their own.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Retry settings from `--max-attempts`.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per event, the first included.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(20),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `next_attempt` (2 or more): a uniform random duration between
    /// zero and `base × 2^(next_attempt − 2)`, capped at `max_delay` ("full jitter", which
    /// spreads retries of many callers best).
    pub fn backoff(&self, next_attempt: u32) -> Duration {
        let exp = next_attempt.saturating_sub(2).min(20);
        let ceiling = self.base_delay.saturating_mul(1 << exp).min(self.max_delay);
        ceiling.mul_f64(random_unit())
    }

    /// Whether another attempt is allowed after `attempts` have been made.
    pub fn may_retry(&self, attempts: u32) -> bool {
        attempts < self.max_attempts
    }
}

/// A number in [0, 1) from a small per-thread xorshift generator, seeded from the OS hasher's
/// random keys: jitter needs spread, not cryptographic quality.
fn random_unit() -> f64 {
    use std::cell::Cell;
    use std::hash::{BuildHasher, Hasher};
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(0x9e37_79b9_7f4a_7c15);
            h.finish() | 1
        });
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        (x >> 11) as f64 / (1u64 << 53) as f64
    })
}

/// `--rate N`: at most N events a second, with bursts of up to one second's worth.
#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    pub fn new(per_second: f64) -> Self {
        Self {
            per_second,
            state: Mutex::new((per_second, Instant::now())),
        }
    }

    /// Waits until `n` events may be sent.
    pub async fn acquire(&self, n: usize) {
        let n = n as f64;
        loop {
            let wait = {
                let mut state = self.state.lock().unwrap();
                let (tokens, last) = *state;
                let now = Instant::now();
                let tokens =
                    (tokens + now.duration_since(last).as_secs_f64() * self.per_second).min(self.per_second.max(n));
                if tokens >= n {
                    *state = (tokens - n, now);
                    return;
                }
                *state = (tokens, now);
                Duration::from_secs_f64((n - tokens) / self.per_second)
            };
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_under_the_cap() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        for attempt in 2..12 {
            let ceiling = Duration::from_millis(100 * (1 << (attempt - 2))).min(Duration::from_secs(1));
            for _ in 0..50 {
                assert!(p.backoff(attempt) <= ceiling);
            }
        }
        // Full jitter spreads: not every draw is the same.
        let draws: Vec<Duration> = (0..20).map(|_| p.backoff(5)).collect();
        assert!(draws.iter().any(|d| *d != draws[0]));
        assert!(p.may_retry(9) && !p.may_retry(10));
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limiter_spaces_events() {
        let limiter = RateLimiter::new(10.0);
        let start = Instant::now();
        for _ in 0..30 {
            limiter.acquire(1).await;
        }
        // 10 from the initial burst, 20 more at 10 a second.
        let elapsed = start.elapsed().as_secs_f64();
        assert!((1.9..2.2).contains(&elapsed), "{elapsed}");
    }
}
