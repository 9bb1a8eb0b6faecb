//! Connection slots: every connection is accepted, and when all slots are taken the oldest connection that has
//! not yet sent a request (still in its TLS handshake, or connected but silent) is evicted to make room.
//!
//! Idle connections therefore cannot keep KooGallery out: a good call's connection takes the slot of the oldest
//! idle one. Connections serving a request are never evicted; when every slot serves one, the new connection is
//! closed at once (and counted) rather than left waiting in the kernel's backlog.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// The open connections of one listener.
#[derive(Debug)]
pub struct Slots {
    max: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    /// Connections that have not sent a request yet, oldest (smallest id) first, with their eviction signal.
    idle: BTreeMap<u64, oneshot::Sender<()>>,
    /// Connections that have sent a request: not evictable.
    active: HashSet<u64>,
}

/// What became of a new connection.
#[derive(Debug)]
pub enum Admission {
    /// It has a slot; `evicted` tells whether an idle connection was evicted for it.
    Admitted { slot: Slot, evicted: bool },
    /// Every slot serves a request: the connection is to be closed.
    Full,
}

/// One connection's slot, released on drop. [`Slot::eviction`] completes if the slot is taken for a newer one.
#[derive(Debug)]
pub struct Slot {
    id: u64,
    slots: Arc<Slots>,
    eviction: Option<oneshot::Receiver<()>>,
    active: AtomicBool,
}

impl Slots {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max: max.max(1),
            inner: Mutex::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Gives a just-accepted connection a slot, evicting the oldest idle connection when all are taken.
    pub fn admit(self: &Arc<Self>) -> Admission {
        let mut inner = self.lock();
        let mut evicted = false;
        if inner.idle.len() + inner.active.len() >= self.max {
            match inner.idle.pop_first() {
                // The receiver may be gone already (the connection is ending): its slot is free either way.
                Some((_, signal)) => {
                    let _ = signal.send(());
                    evicted = true;
                }
                None => return Admission::Full,
            }
        }
        let id = inner.next_id;
        inner.next_id += 1;
        let (signal, eviction) = oneshot::channel();
        inner.idle.insert(id, signal);
        Admission::Admitted {
            slot: Slot {
                id,
                slots: self.clone(),
                eviction: Some(eviction),
                active: AtomicBool::new(false),
            },
            evicted,
        }
    }

    /// Connections holding a slot.
    pub fn open(&self) -> usize {
        let inner = self.lock();
        inner.idle.len() + inner.active.len()
    }
}

impl Slot {
    /// Marks the connection as serving requests: it is no longer evictable. Cheap after the first call.
    pub fn activate(&self) {
        if self.active.swap(true, Ordering::Relaxed) {
            return;
        }
        let mut inner = self.slots.lock();
        if inner.idle.remove(&self.id).is_some() {
            inner.active.insert(self.id);
        }
    }

    /// Completes when this connection's slot was given to a newer one; never completes once it is active.
    pub fn eviction(&mut self) -> impl Future<Output = ()> + Send + 'static {
        let eviction = self.eviction.take();
        async move {
            if let Some(eviction) = eviction {
                if eviction.await.is_ok() {
                    return;
                }
            }
            // Active (the signal was dropped) or already taken: never evicted.
            std::future::pending().await
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut inner = self.slots.lock();
        inner.idle.remove(&self.id);
        inner.active.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(admission: Admission) -> (Slot, bool) {
        match admission {
            Admission::Admitted { slot, evicted } => (slot, evicted),
            Admission::Full => panic!("refused"),
        }
    }

    #[tokio::test]
    async fn when_full_the_oldest_idle_connection_is_evicted_and_active_ones_never_are() {
        let slots = Slots::new(3);
        let (a, _) = admitted(slots.admit());
        a.activate();
        let (mut b, _) = admitted(slots.admit());
        let (mut c, evicted) = admitted(slots.admit());
        assert!(!evicted);
        let (mut d, evicted) = admitted(slots.admit());
        assert!(evicted, "all three slots were taken");
        let soon = std::time::Duration::from_secs(1);
        tokio::time::timeout(soon, b.eviction())
            .await
            .expect("the oldest idle connection (b, not the older but active a) is evicted");
        assert_eq!(slots.open(), 3);
        let (e, evicted) = admitted(slots.admit());
        assert!(evicted);
        tokio::time::timeout(soon, c.eviction())
            .await
            .expect("then c");
        e.activate();
        let (f, _) = admitted(slots.admit());
        tokio::time::timeout(soon, d.eviction())
            .await
            .expect("then d");
        f.activate();
        assert!(
            matches!(slots.admit(), Admission::Full),
            "a, e, f serve requests"
        );
        assert_eq!(slots.open(), 3);
        drop((a, b, c, d));
        assert_eq!(slots.open(), 2);
    }

    #[test]
    fn a_full_listener_of_active_connections_refuses_new_ones() {
        let slots = Slots::new(1);
        let (only, _) = admitted(slots.admit());
        only.activate();
        assert!(matches!(slots.admit(), Admission::Full));
        drop(only);
        assert!(matches!(
            slots.admit(),
            Admission::Admitted { evicted: false, .. }
        ));
    }
}
