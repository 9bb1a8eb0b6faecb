//! A call runs inline in its connection's task; only when that future is dropped before the answer (the client
//! went away) does the rest of the call move into a tracked task of its own, so it still records and journals its
//! answer (KooGallery gives up after 5 s and retries; the retry must find the record, not reach the app again).

use prometheus::IntCounter;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio_util::task::TaskTracker;

type Call<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A call's future that, if dropped unfinished, spawns what is left of it into `tasks` (which shutdown waits for).
/// Boxing is the only cost on the usual path: no task, no cross-thread wake-up. A panic (a bug) is caught and
/// returned as `Err`, as a task's would be, so the caller can still answer.
pub(super) struct Detachable<T: Send + 'static> {
    call: Option<Call<T>>,
    tasks: TaskTracker,
    detached: IntCounter,
}

impl<T: Send + 'static> Detachable<T> {
    pub fn new(
        call: impl Future<Output = T> + Send + 'static,
        tasks: TaskTracker,
        detached: IntCounter,
    ) -> Self {
        Self {
            call: Some(Box::pin(call)),
            tasks,
            detached,
        }
    }
}

impl<T: Send + 'static> Future for Detachable<T> {
    type Output = std::thread::Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(call) = self.call.as_mut() else {
            // Polled after completion: a caller bug; never finishes rather than panicking.
            return Poll::Pending;
        };
        let output = match catch_unwind(AssertUnwindSafe(|| call.as_mut().poll(cx))) {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(value)) => Ok(value),
            Err(panic) => Err(panic),
        };
        // Finished or panicked: nothing is left to detach.
        self.call = None;
        Poll::Ready(output)
    }
}

impl<T: Send + 'static> Drop for Detachable<T> {
    fn drop(&mut self) {
        let Some(call) = self.call.take() else {
            return;
        };
        // Without a runtime (the process is exiting) there is nothing left to finish the call on.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            self.detached.inc();
            self.tasks.spawn_on(
                async move {
                    call.await;
                },
                &runtime,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn a_finished_call_is_not_detached() {
        let (tasks, detached) = (TaskTracker::new(), IntCounter::new("d", "d").unwrap());
        let output = Detachable::new(async { 7 }, tasks.clone(), detached.clone()).await;
        assert_eq!(output.ok(), Some(7));
        assert_eq!(detached.get(), 0);
        assert!(tasks.is_empty());
    }

    #[tokio::test]
    async fn a_panicking_call_is_an_error_not_a_dead_connection() {
        let (tasks, detached) = (TaskTracker::new(), IntCounter::new("d", "d").unwrap());
        let call = async {
            if detached_in_test() {
                panic!("a bug");
            }
        };
        let output = Detachable::new(call, tasks, detached.clone()).await;
        assert!(output.is_err());
        assert_eq!(detached.get(), 0);
    }

    fn detached_in_test() -> bool {
        true
    }

    #[tokio::test]
    async fn a_dropped_call_finishes_in_a_tracked_task() {
        let (tasks, detached) = (TaskTracker::new(), IntCounter::new("d", "d").unwrap());
        let done = Arc::new(AtomicBool::new(false));
        let call = {
            let done = done.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                done.store(true, Ordering::SeqCst);
            }
        };
        let abandoned = tokio::time::timeout(
            Duration::from_millis(10),
            Detachable::new(call, tasks.clone(), detached.clone()),
        )
        .await;
        assert!(abandoned.is_err(), "the caller gave up first");
        assert_eq!(detached.get(), 1);
        assert!(!done.load(Ordering::SeqCst));
        tasks.close();
        tasks.wait().await;
        assert!(
            done.load(Ordering::SeqCst),
            "the rest of the call ran to the end"
        );
    }
}
