//! Job slots shared by the lanes of one worker process. A worker runs one
//! apalis worker per lane (kind), but at most `concurrency` jobs in all.
//!
//! apalis fetches only while its service is ready, so the slots gate readiness:
//! a lane is ready while a slot is free, and takes its slot when a job starts.
//! Readiness reserves nothing, on purpose: a lane that is ready but finds no
//! task must not sit on a slot that another lane's job could use. Two lanes
//! that see the last free slot at once may both fetch; the later job then waits
//! for a slot, which is the same as a claimed batch waiting behind its first job.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use futures::future::BoxFuture;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, futures::OwnedNotified};
use tower::{Layer, Service};

/// A process's job slots.
#[derive(Clone)]
pub struct Slots {
    semaphore: Arc<Semaphore>,
    /// Signalled whenever a slot is given back.
    freed: Arc<Notify>,
}

impl Slots {
    pub fn new(count: usize) -> Self {
        Self {
            semaphore: Arc::new(Semaphore::new(count.max(1))),
            freed: Arc::new(Notify::new()),
        }
    }

    /// Slots free now.
    pub fn free(&self) -> usize {
        self.semaphore.available_permits()
    }
}

/// A slot in use; given back, with a signal to waiting lanes, when dropped.
struct Taken {
    permit: Option<OwnedSemaphorePermit>,
    freed: Arc<Notify>,
}

impl Drop for Taken {
    fn drop(&mut self) {
        // The slot first, then the signal: a lane woken by it must find it free.
        drop(self.permit.take());
        self.freed.notify_waiters();
    }
}

impl<S> Layer<S> for Slots {
    type Service = SlotService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SlotService {
            inner,
            slots: self.clone(),
            waiting: None,
        }
    }
}

/// A lane's handler, ready while the process has a free slot.
pub struct SlotService<S> {
    inner: S,
    slots: Slots,
    waiting: Option<Pin<Box<OwnedNotified>>>,
}

impl<S, Request> Service<Request> for SlotService<S>
where
    S: Service<Request>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        loop {
            if self.slots.free() > 0 {
                self.waiting = None;
                return self.inner.poll_ready(cx);
            }
            let waiting = self.waiting.get_or_insert_with(|| {
                let mut notified = Box::pin(self.slots.freed.clone().notified_owned());
                // Registered before the check above is repeated, so a slot given
                // back in between still wakes this lane.
                notified.as_mut().enable();
                notified
            });
            if self.slots.free() > 0 {
                continue;
            }
            match waiting.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                // A slot came back: look again (another lane may have taken it).
                Poll::Ready(()) => self.waiting = None,
            }
        }
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let semaphore = self.slots.semaphore.clone();
        let freed = self.slots.freed.clone();
        let job = self.inner.call(request);
        Box::pin(async move {
            let permit = semaphore
                .acquire_owned()
                .await
                .expect("the slots' semaphore is never closed");
            let _taken = Taken {
                permit: Some(permit),
                freed,
            };
            job.await
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A service that is always ready and answers after `millis`.
    #[derive(Clone)]
    struct Nap;

    impl Service<u64> for Nap {
        type Response = u64;
        type Error = std::convert::Infallible;
        type Future = BoxFuture<'static, Result<u64, Self::Error>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, millis: u64) -> Self::Future {
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(millis)).await;
                Ok(millis)
            })
        }
    }

    #[tokio::test]
    async fn an_idle_lane_holds_no_slot_and_a_busy_process_is_ready_again_when_one_frees() {
        use tower::ServiceExt;
        let slots = Slots::new(1);
        let mut idle = slots.layer(Nap);
        let mut busy = slots.layer(Nap);
        // Ready without taking anything: the other lane is ready too.
        idle.ready().await.unwrap();
        busy.ready().await.unwrap();
        assert_eq!(slots.free(), 1);

        let running = tokio::spawn(busy.call(100));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(slots.free(), 0);
        let waited = tokio::time::timeout(Duration::from_millis(30), idle.ready()).await;
        assert!(waited.is_err(), "no slot is free while the job runs");
        let ready = tokio::time::timeout(Duration::from_secs(2), idle.ready()).await;
        assert!(ready.is_ok(), "the lane is woken when the slot comes back");
        assert_eq!(running.await.unwrap().unwrap(), 100);
        assert_eq!(slots.free(), 1);
    }
}
