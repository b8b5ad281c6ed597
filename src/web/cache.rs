//! Figures computed from the database that many viewers share (the
//! dashboard's counts), kept until the database announces a change: with
//! nothing changing, a hundred open dashboards cost one computation; with
//! changes streaming in, at most one computation runs at a time and everyone
//! waiting gets its result.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::Mutex;

pub struct Cached<T> {
    slot: Mutex<Option<Entry<T>>>,
    /// Recomputed after this long even without a change announced.
    max_age: Duration,
}

struct Entry<T> {
    generation: u64,
    at: Instant,
    value: Arc<T>,
}

impl<T> Cached<T> {
    pub fn new(max_age: Duration) -> Self {
        Self {
            slot: Mutex::new(None),
            max_age,
        }
    }

    /// The value computed at the current `generation` (see
    /// `Hub::generation`), computing it when there is none; without a
    /// generation it is computed every time.
    pub async fn get<E, Fut>(
        &self,
        generation: impl Fn() -> Option<u64>,
        compute: impl FnOnce() -> Fut,
    ) -> Result<Arc<T>, E>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        // Held while computing: those who come meanwhile wait for this result.
        let mut slot = self.slot.lock().await;
        // Read after the lock, before computing: the value reflects at least
        // every change up to this generation.
        let now = generation();
        if let (Some(now), Some(entry)) = (now, slot.as_ref())
            && entry.generation == now
            && entry.at.elapsed() < self.max_age
        {
            return Ok(entry.value.clone());
        }
        let value = Arc::new(compute().await?);
        *slot = now.map(|generation| Entry {
            generation,
            at: Instant::now(),
            value: value.clone(),
        });
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_value_is_kept_until_the_generation_moves() {
        let cache = Cached::new(Duration::from_secs(60));
        let generation = AtomicU64::new(1);
        let computed = AtomicUsize::new(0);
        let get = || {
            cache.get(
                || Some(generation.load(Ordering::SeqCst)),
                || async { Ok::<_, ()>(computed.fetch_add(1, Ordering::SeqCst)) },
            )
        };
        assert_eq!(*get().await.unwrap(), 0);
        assert_eq!(*get().await.unwrap(), 0, "nothing changed");
        generation.store(2, Ordering::SeqCst);
        assert_eq!(*get().await.unwrap(), 1, "a change was announced");
        assert_eq!(*get().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn without_a_generation_or_when_old_it_is_computed_again() {
        let computed = AtomicUsize::new(0);
        let compute = || async { Ok::<_, ()>(computed.fetch_add(1, Ordering::SeqCst)) };
        let cache = Cached::new(Duration::from_secs(60));
        assert_eq!(*cache.get(|| None, compute).await.unwrap(), 0);
        assert_eq!(*cache.get(|| None, compute).await.unwrap(), 1);
        let old = Cached::new(Duration::ZERO);
        assert_eq!(*old.get(|| Some(1), compute).await.unwrap(), 2);
        assert_eq!(*old.get(|| Some(1), compute).await.unwrap(), 3);
        // A failure is not kept.
        let failing = Cached::<usize>::new(Duration::from_secs(60));
        assert!(
            failing
                .get(|| Some(1), || async { Err("down") })
                .await
                .is_err()
        );
        assert_eq!(
            *failing
                .get(|| Some(1), || async { Ok::<_, &str>(7) })
                .await
                .unwrap(),
            7
        );
    }

    #[tokio::test]
    async fn viewers_arriving_together_share_one_computation() {
        let cache = Arc::new(Cached::new(Duration::from_secs(60)));
        let computed = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (cache, computed) = (cache.clone(), computed.clone());
                tokio::spawn(async move {
                    *cache
                        .get(
                            || Some(1),
                            || async {
                                tokio::time::sleep(Duration::from_millis(50)).await;
                                Ok::<_, ()>(computed.fetch_add(1, Ordering::SeqCst))
                            },
                        )
                        .await
                        .unwrap()
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap(), 0);
        }
        assert_eq!(computed.load(Ordering::SeqCst), 1);
    }
}
