//! One call per idempotency key at a time in this process: a concurrent duplicate waits for the first, then finds
//! its recorded answer (or, if the first failed, goes ahead itself). Never two upstream calls for one key at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// One key's lock and how many calls hold it or wait for it; the entry goes with the last of them.
type Entry = (Arc<AsyncMutex<()>>, usize);

#[derive(Default)]
pub struct KeyLocks {
    map: Mutex<HashMap<String, Entry>>,
}

/// Holds a key until dropped.
pub struct KeyGuard {
    _guard: OwnedMutexGuard<()>,
    _user: User,
}

/// One holder or waiter of a key; dropping it (also when a waiting call is cancelled) counts it out.
struct User {
    locks: Arc<KeyLocks>,
    key: String,
}

impl KeyLocks {
    pub async fn lock(self: &Arc<Self>, key: &str) -> KeyGuard {
        let mutex = {
            let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            let entry = map
                .entry(key.to_owned())
                .or_insert_with(|| (Arc::default(), 0));
            entry.1 += 1;
            entry.0.clone()
        };
        let user = User {
            locks: self.clone(),
            key: key.to_owned(),
        };
        let guard = mutex.lock_owned().await;
        KeyGuard {
            _guard: guard,
            _user: user,
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }
}

impl Drop for User {
    fn drop(&mut self) {
        let mut map = self.locks.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = map.get_mut(&self.key) {
            entry.1 -= 1;
            if entry.1 == 0 {
                map.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_second_holder_waits_and_entries_are_removed() {
        let locks = Arc::new(KeyLocks::default());
        let first = locks.lock("k").await;
        let waiter = {
            let locks = locks.clone();
            tokio::spawn(async move { drop(locks.lock("k").await) })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        let _other = locks.lock("other").await;
        drop(first);
        waiter.await.unwrap();
        assert_eq!(locks.len(), 1, "only `other` is still held");
    }

    #[tokio::test]
    async fn a_cancelled_waiter_leaves_no_entry_behind() {
        let locks = Arc::new(KeyLocks::default());
        let holder = locks.lock("k").await;
        let waiter = tokio::time::timeout(Duration::from_millis(20), locks.lock("k")).await;
        assert!(waiter.is_err(), "the waiter timed out");
        drop(holder);
        assert_eq!(locks.len(), 0);
    }
}
