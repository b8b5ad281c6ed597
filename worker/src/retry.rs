//! Exponential backoff with jitter, for everything that retries: queue attempts,
//! worker restarts, and calls to external services.

use std::time::Duration;

use rand::RngExt;

/// `base * 2^(attempt - 1)`, at most `max`, spread by a random factor in
/// `[1 - jitter, 1 + jitter]` so that many clients do not retry in step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
    /// Relative spread: 0.2 means ±20 %.
    pub jitter: f64,
}

impl Backoff {
    pub const fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            jitter: 0.2,
        }
    }

    /// The delay after the `attempt`-th failure (counting from 1), without jitter.
    pub fn nominal(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(32);
        self.base
            .saturating_mul(1u32 << doublings.min(31))
            .min(self.max)
    }

    /// The delay after the `attempt`-th failure, with jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        let jitter = self.jitter.clamp(0.0, 1.0);
        let factor = if jitter > 0.0 {
            rand::rng().random_range(1.0 - jitter..=1.0 + jitter)
        } else {
            1.0
        };
        self.nominal(attempt).mul_f64(factor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap() {
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(10));
        let nominal: Vec<u64> = (1..=6).map(|a| backoff.nominal(a).as_secs()).collect();
        assert_eq!(nominal, [1, 2, 4, 8, 10, 10]);
        assert_eq!(backoff.nominal(1000), Duration::from_secs(10));
    }

    #[test]
    fn jitter_stays_within_its_spread() {
        let backoff = Backoff::new(Duration::from_millis(1000), Duration::from_secs(60));
        for _ in 0..1000 {
            let delay = backoff.delay(3).as_millis();
            assert!(
                (3200..=4800).contains(&delay),
                "{delay} ms is outside 4 s ± 20 %"
            );
        }
    }
}
