//! Retrying: exponential backoff with jitter, for everything that retries
//! (queue attempts, worker restarts, calls to external services), and the one
//! loop that every HTTP client of the worker crate retries its calls with.

use std::{future::Future, time::Duration};

use rand::RngExt;

/// How one try of an operation ended.
#[derive(Debug)]
pub enum Try<T, E> {
    Done(T),
    /// Worth another try: why this one failed, and how long the other side
    /// asked us to wait (a `Retry-After`, a `RetryInfo`), if it did.
    Again {
        reason: String,
        wait: Option<Duration>,
    },
    /// Another try would fail the same way.
    Fail(E),
}

/// Why a retried operation did not succeed.
#[derive(Debug)]
pub enum Retried<E> {
    /// A try failed for good (or the wait asked for was refused).
    Failed(E),
    /// Every try was worth another, and there were no more.
    GaveUp { attempts: u32, last: String },
}

/// Tries `operation` up to `attempts` times. After a try worth another, `pause`
/// turns the attempt number and the wait the other side asked for into the
/// wait before the next try, or into a failure (a wait longer than the caller
/// will accept). `what` names the operation in the log.
pub async fn run<T, E, Op, Fut>(
    attempts: u32,
    what: &str,
    mut pause: impl FnMut(u32, Option<Duration>) -> Result<Duration, E>,
    mut operation: Op,
) -> Result<T, Retried<E>>
where
    Op: FnMut() -> Fut,
    Fut: Future<Output = Try<T, E>>,
{
    let attempts = attempts.max(1);
    let mut last = String::new();
    for attempt in 1..=attempts {
        match operation().await {
            Try::Done(value) => return Ok(value),
            Try::Fail(error) => return Err(Retried::Failed(error)),
            Try::Again { reason, wait } => {
                if attempt < attempts {
                    let wait = pause(attempt, wait).map_err(Retried::Failed)?;
                    tracing::warn!(attempt, %reason, ?wait, "{what} failed; trying again");
                    tokio::time::sleep(wait).await;
                }
                last = reason;
            }
        }
    }
    Err(Retried::GaveUp { attempts, last })
}

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

    #[tokio::test]
    async fn tries_until_done_a_refusal_or_the_last_attempt() {
        let pause = |_: u32, _: Option<Duration>| Ok::<_, String>(Duration::ZERO);
        let mut tries = 0;
        let done = run(5, "test", pause, || {
            tries += 1;
            let n = tries;
            async move {
                if n < 3 {
                    Try::Again {
                        reason: format!("try {n}"),
                        wait: None,
                    }
                } else {
                    Try::Done(n)
                }
            }
        })
        .await;
        assert!(matches!(done, Ok(3)));

        let refused = run(5, "test", pause, || async {
            Try::<(), _>::Fail("no".to_owned())
        })
        .await;
        assert!(matches!(refused, Err(Retried::Failed(e)) if e == "no"));

        let mut tries = 0;
        let gave_up = run(3, "test", pause, || {
            tries += 1;
            let n = tries;
            async move {
                Try::<(), String>::Again {
                    reason: format!("try {n}"),
                    wait: None,
                }
            }
        })
        .await;
        assert!(
            matches!(&gave_up, Err(Retried::GaveUp { attempts: 3, last }) if last == "try 3"),
            "{gave_up:?}"
        );
    }

    #[tokio::test]
    async fn a_wait_the_caller_refuses_ends_the_retries() {
        let pause = |_: u32, asked: Option<Duration>| match asked {
            Some(wait) if wait > Duration::from_secs(60) => Err(format!("asked to wait {wait:?}")),
            _ => Ok(Duration::ZERO),
        };
        let ended = run(5, "test", pause, || async {
            Try::<(), String>::Again {
                reason: "429".into(),
                wait: Some(Duration::from_secs(3600)),
            }
        })
        .await;
        assert!(matches!(ended, Err(Retried::Failed(e)) if e.contains("3600")));
    }

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
