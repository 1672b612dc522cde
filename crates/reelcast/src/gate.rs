//! Admission by count: at most N of something at once in total, and at most M from one
//! client address. Used for the TCP connections of every port ([`crate::http_conn`]) and
//! for WebSocket sessions ([`crate::signal::wcs`]).
//!
//! Owns only the counting. A [`Permit`] is the slot: whoever holds it holds the
//! connection or session, and dropping it gives the slot back, whatever way the holder
//! ends (closed, timed out, panicked). Must not: know what is being counted.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Why a [`Gate`] refused: the plain words a client may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("too many at once on this server")]
    /// The server's cap on connections in total.
    Total,
    #[error("too many at once from your address")]
    /// The cap on connections from one client address.
    PerClient,
}

/// Counts what is admitted, in total and per client address.
pub struct Gate {
    max_total: usize,
    max_per_client: usize,
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    total: usize,
    /// Only addresses holding at least one permit: the map never outgrows `max_total`.
    per_client: HashMap<IpAddr, usize>,
}

impl Gate {
    /// A gate admitting `max_total` connections in all, `max_per_client` from one address.
    pub fn new(max_total: usize, max_per_client: usize) -> Arc<Gate> {
        Arc::new(Gate {
            max_total,
            max_per_client,
            counts: Mutex::new(Counts::default()),
        })
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        // The counts stay consistent under a panic elsewhere: every change is one step.
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A slot for one more from `client`, or why not.
    pub fn admit(self: &Arc<Self>, client: IpAddr) -> Result<Permit, Refused> {
        let client = client_key(client);
        let mut counts = self.counts();
        if counts.total >= self.max_total {
            return Err(Refused::Total);
        }
        let mine = counts.per_client.entry(client).or_insert(0);
        if *mine >= self.max_per_client {
            return Err(Refused::PerClient);
        }
        *mine += 1;
        counts.total += 1;
        Ok(Permit {
            gate: Arc::clone(self),
            client,
        })
    }

    /// Slots held now.
    pub fn in_use(&self) -> usize {
        self.counts().total
    }
}

/// The address a client is counted under: an IPv4 address (also when seen through an
/// IPv6 socket as `::ffff:a.b.c.d`), or an IPv6 client's /64. One subscriber is usually
/// given a whole /64, so counting IPv6 addresses one by one would let one client take
/// every slot.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(prefix.into())
        }
        v4 @ IpAddr::V4(_) => v4,
    }
}

/// One admitted slot; given back on drop.
pub struct Permit {
    gate: Arc<Gate>,
    client: IpAddr,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counts = self.gate.counts();
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                counts.per_client.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_in_total_and_per_client_and_gives_back_on_drop() {
        let gate = Gate::new(3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let a1 = gate.admit(a).unwrap();
        let _a2 = gate.admit(a).unwrap();
        assert_eq!(gate.admit(a).err(), Some(Refused::PerClient));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(gate.admit(mapped).err(), Some(Refused::PerClient));
        let _b1 = gate.admit(b).unwrap();
        assert_eq!(gate.admit(b).err(), Some(Refused::Total));
        drop(a1);
        assert_eq!(gate.in_use(), 2);
        let _b2 = gate.admit(b).unwrap();
        assert_eq!(gate.in_use(), 3);
    }

    #[test]
    fn an_ipv6_client_counts_as_its_64() {
        let gate = Gate::new(10, 2);
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8:1:2:ffff:0:0:7".parse().unwrap();
        let next_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let _p1 = gate.admit(one).unwrap();
        let _p2 = gate.admit(same_64).unwrap();
        assert_eq!(gate.admit(one).err(), Some(Refused::PerClient));
        assert_eq!(
            gate.admit("2001:db8:1:2:1234::9".parse().unwrap()).err(),
            Some(Refused::PerClient)
        );
        assert!(gate.admit(next_64).is_ok());
    }
}
