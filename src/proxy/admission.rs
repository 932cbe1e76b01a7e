//! Which connections the proxy keeps, so that clients without the
//! password cannot crowd out those with it.
//!
//! A connection is *pending* from accept until a request on it carries the
//! password. Pending connections are capped in total and per peer address;
//! when a new one would pass a cap, the oldest pending one (of that peer,
//! else of all) is dropped. A real client sends its request head at once,
//! so it is never the oldest for long; a slow or silent one ages out. Once
//! authenticated, a connection holds one of a fixed number of slots (its
//! tunnel keeps it) until it closes.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

/// Connections waiting for their first authenticated request. A pending
/// connection holds at most the bounded head buffer (32 KiB), so this
/// bounds what clients without the password can make the proxy hold.
pub const MAX_PENDING: usize = 512;
/// Per peer address, so one remote host cannot evict everyone else's.
/// On loopback every client is 127.0.0.1, and only the total applies.
pub const MAX_PENDING_PER_PEER: usize = 256;
/// Authenticated connections (tunnels included).
pub const MAX_AUTHENTICATED: usize = 512;

pub struct Admission {
    pending: Mutex<Pending>,
    authenticated: Arc<Semaphore>,
}

#[derive(Default)]
struct Pending {
    next_id: u64,
    /// By admission order: the first entry is the oldest.
    entries: BTreeMap<u64, (IpAddr, oneshot::Sender<()>)>,
}

/// One accepted connection's standing. Clones of the `Arc` live in the
/// connection's task and in any tunnel it opens; the slot is given back
/// when the last one goes.
pub struct Slot {
    id: u64,
    admission: Arc<Admission>,
    permit: OnceLock<OwnedSemaphorePermit>,
}

impl Admission {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            pending: Mutex::new(Pending::default()),
            authenticated: Arc::new(Semaphore::new(MAX_AUTHENTICATED)),
        })
    }

    /// Admits a new connection from `peer` as pending, dropping the oldest
    /// pending one if a cap is reached. The future resolves if this
    /// connection is itself dropped that way later; it never resolves once
    /// the connection is authenticated.
    pub fn admit(
        self: &Arc<Self>,
        peer: IpAddr,
    ) -> (Arc<Slot>, impl Future<Output = ()> + Send + use<>) {
        let (evict, evicted) = oneshot::channel();
        let id = {
            let mut pending = self
                .pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let from_peer = pending.entries.values().filter(|(ip, _)| *ip == peer);
            let victim = if from_peer.count() >= MAX_PENDING_PER_PEER {
                pending
                    .entries
                    .iter()
                    .find(|(_, (ip, _))| *ip == peer)
                    .map(|(id, _)| *id)
            } else if pending.entries.len() >= MAX_PENDING {
                pending.entries.keys().next().copied()
            } else {
                None
            };
            if let Some((_, evict)) = victim.and_then(|id| pending.entries.remove(&id)) {
                let _ = evict.send(());
            }
            let id = pending.next_id;
            pending.next_id += 1;
            pending.entries.insert(id, (peer, evict));
            id
        };
        let slot = Arc::new(Slot {
            id,
            admission: self.clone(),
            permit: OnceLock::new(),
        });
        let evicted = async move {
            // A dropped sender means the connection left the pending set
            // some other way (authenticated, or closed): nothing to do.
            if evicted.await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        (slot, evicted)
    }

    fn forget(&self, id: u64) {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entries
            .remove(&id);
    }

    #[cfg(test)]
    fn pending_count(&self) -> usize {
        self.pending.lock().unwrap().entries.len()
    }
}

impl Slot {
    /// Marks the connection authenticated: it leaves the pending set and
    /// takes an authenticated slot. False when every slot is taken.
    pub fn authenticate(&self) -> bool {
        if self.permit.get().is_some() {
            return true;
        }
        let Ok(permit) = self.admission.authenticated.clone().try_acquire_owned() else {
            return false;
        };
        let _ = self.permit.set(permit);
        self.admission.forget(self.id);
        true
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.admission.forget(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    fn resolved(future: &mut std::pin::Pin<Box<impl Future<Output = ()>>>) -> bool {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        future.as_mut().poll(&mut cx).is_ready()
    }

    #[test]
    fn the_oldest_pending_connection_makes_room_and_authenticated_ones_stay() {
        let admission = Admission::new();
        let (first, first_evicted) = admission.admit(ip(1));
        let mut first_evicted = Box::pin(first_evicted);
        let (kept, kept_evicted) = admission.admit(ip(1));
        let mut kept_evicted = Box::pin(kept_evicted);
        assert!(kept.authenticate());
        let mut rest = Vec::new();
        for _ in 0..MAX_PENDING_PER_PEER - 1 {
            rest.push(admission.admit(ip(1)));
        }
        assert!(!resolved(&mut first_evicted), "room for this many");
        rest.push(admission.admit(ip(1)));
        assert!(resolved(&mut first_evicted), "the oldest made room");
        assert!(!resolved(&mut kept_evicted), "authenticated: never evicted");
        assert_eq!(admission.pending_count(), MAX_PENDING_PER_PEER);
        drop(first);
        drop(rest);
        assert_eq!(admission.pending_count(), 0, "closed ones are forgotten");
    }

    #[test]
    fn one_peer_evicts_only_its_own_connections() {
        let admission = Admission::new();
        let (_other, other_evicted) = admission.admit(ip(2));
        let mut other_evicted = Box::pin(other_evicted);
        let mut flood = Vec::new();
        for _ in 0..MAX_PENDING_PER_PEER * 2 {
            flood.push(admission.admit(ip(1)));
        }
        assert!(!resolved(&mut other_evicted));
        // Past the total, the oldest of all goes.
        let mut peers = Vec::new();
        for last in 3..=255 {
            for _ in 0..2 {
                peers.push(admission.admit(ip(last)));
            }
        }
        assert!(resolved(&mut other_evicted));
        assert!(admission.pending_count() <= MAX_PENDING);
    }

    #[test]
    fn authenticated_slots_are_capped_and_given_back() {
        let admission = Admission::new();
        let slots: Vec<_> = (0..MAX_AUTHENTICATED)
            .map(|_| {
                let (slot, _) = admission.admit(ip(1));
                assert!(slot.authenticate());
                slot
            })
            .collect();
        let (extra, _) = admission.admit(ip(1));
        assert!(!extra.authenticate());
        drop(slots);
        assert!(extra.authenticate());
    }
}
