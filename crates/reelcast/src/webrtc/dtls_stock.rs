//! Spare DTLS instances, made ahead on a thread of their own so that answering an offer
//! does not wait for one.
//!
//! Why: str0m's OpenSSL provider builds a new dimpl configuration for every DTLS
//! instance, and dimpl checks the whole crypto provider each time (a trial key exchange
//! on two curves and a signature check): ~6 ms of CPU per instance, 13–28 ms on a busy
//! 2-core machine. Every answer makes one (in `Rtc` building), so every publisher and
//! viewer waited that long before its answer left; a WCS SDK viewer of a fresh publisher
//! waits for two answers in a row.
//!
//! How: the server's one certificate is registered ([`DtlsStock::keep_for`]); a thread
//! keeps [`STOCK`] instances made for it, with the DTLS version and MTU str0m asked for
//! the last time it asked for that certificate. Taking one costs a lock. The thread makes
//! the next once no answer has taken one for [`CALM`] (then it does not compete with the
//! handshake that has just begun), or at once when the stock is empty. A request the
//! stock cannot serve (empty, another certificate, other parameters) is made on the spot,
//! as before. An instance made ahead is a fresh one: dimpl only notes the time it is
//! given, and arms its timers at the first time-out str0m gives it.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use str0m::crypto::dtls::{DtlsCert, DtlsInstance, DtlsProvider, DtlsVersion};
use tracing::warn;

/// Instances kept ready.
pub(super) const STOCK: usize = 4;
/// The stock is topped up once no instance has been taken for this long (at once when
/// empty).
pub(super) const CALM: Duration = Duration::from_millis(250);

/// What instances are made with: what str0m asks [`DtlsProvider::new_dtls`] for.
#[derive(Clone)]
struct Recipe {
    cert: DtlsCert,
    version: DtlsVersion,
    mtu: Option<usize>,
}

fn same_cert(a: &DtlsCert, b: &DtlsCert) -> bool {
    a.certificate == b.certificate && a.private_key == b.private_key
}

#[derive(Default)]
struct State {
    /// The certificate registered, and (once str0m has asked once) the whole recipe.
    cert: Option<DtlsCert>,
    recipe: Option<Recipe>,
    /// Bumped whenever the recipe changes: an instance made for an older one is dropped.
    generation: u64,
    ready: Vec<Box<dyn DtlsInstance>>,
    last_taken: Option<Instant>,
    /// The thread runs (started by the first registration).
    thread: bool,
    /// Making an instance failed: the thread has stopped, answers make their own.
    failed: bool,
}

/// The stock of spare instances for one provider. Shared by every answer.
pub(super) struct DtlsStock {
    inner: &'static dyn DtlsProvider,
    state: Mutex<State>,
    wake: Condvar,
}

impl std::fmt::Debug for DtlsStock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DtlsStock")
            // Never waits: it may be printed while the stock is locked.
            .field("ready", &self.state.try_lock().map(|s| s.ready.len()).ok())
            .finish_non_exhaustive()
    }
}

impl DtlsStock {
    /// A stock of `inner`'s instances; empty until a certificate is registered.
    pub(super) fn new(inner: &'static dyn DtlsProvider) -> Arc<Self> {
        Arc::new(DtlsStock {
            inner,
            state: Mutex::default(),
            wake: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps instances ready for `cert` from now on (the one certificate a server
    /// answers with; a later registration replaces it).
    pub(super) fn keep_for(self: &Arc<Self>, cert: &DtlsCert) {
        let mut state = self.lock();
        if state.cert.as_ref().is_some_and(|c| same_cert(c, cert)) {
            return;
        }
        state.cert = Some(cert.clone());
        state.recipe = None;
        state.generation += 1;
        state.ready.clear();
        if !state.thread {
            state.thread = true;
            let stock = self.clone();
            let spawned = std::thread::Builder::new()
                .name("dtls-stock".into())
                .spawn(move || stock.run());
            if let Err(e) = spawned {
                warn!("no thread to make DTLS instances ahead: {e}");
                state.failed = true;
            }
        }
    }

    /// An instance made ahead for exactly this request, if one is ready. A request for
    /// the registered certificate sets the recipe the stock makes.
    pub(super) fn take(
        &self,
        cert: &DtlsCert,
        version: DtlsVersion,
        mtu: Option<usize>,
    ) -> Option<Box<dyn DtlsInstance>> {
        let mut state = self.lock();
        if !state.cert.as_ref().is_some_and(|c| same_cert(c, cert)) {
            return None;
        }
        let matches = state
            .recipe
            .as_ref()
            .is_some_and(|r| r.version == version && r.mtu == mtu);
        if !matches {
            state.recipe = Some(Recipe {
                cert: cert.clone(),
                version,
                mtu,
            });
            state.generation += 1;
            state.ready.clear();
        }
        state.last_taken = Some(Instant::now());
        let taken = state.ready.pop();
        self.wake.notify_one();
        taken
    }

    /// Instances ready now.
    #[cfg(test)]
    pub(super) fn ready(&self) -> usize {
        self.lock().ready.len()
    }

    /// The thread: tops the stock up, in calm moments, until making one fails.
    fn run(&self) {
        let mut state = self.lock();
        loop {
            if state.failed {
                return;
            }
            let wanted = state.recipe.is_some() && state.ready.len() < STOCK;
            if !wanted {
                state = self
                    .wake
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            let now = Instant::now();
            let due = match state.last_taken {
                Some(t) if !state.ready.is_empty() => t + CALM,
                _ => now,
            };
            if due > now {
                state = self
                    .wake
                    .wait_timeout(state, due - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
                continue;
            }
            let Some(recipe) = state.recipe.clone() else {
                continue;
            };
            let generation = state.generation;
            drop(state);
            let made =
                self.inner
                    .new_dtls(&recipe.cert, Instant::now(), recipe.version, recipe.mtu);
            state = self.lock();
            match made {
                Ok(instance) if state.generation == generation => state.ready.push(instance),
                Ok(_) => {}
                Err(e) => {
                    warn!("making a DTLS instance ahead failed, answers make their own: {e}");
                    state.failed = true;
                    state.ready.clear();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use str0m::crypto::dtls::DtlsOutput;

    use super::*;

    fn provider() -> &'static dyn DtlsProvider {
        str0m::crypto::from_feature_flags().dtls_provider
    }

    fn cert() -> DtlsCert {
        provider().generate_certificate().expect("a certificate")
    }

    /// Waits (≤ 10 s) until `n` instances are ready.
    fn until_ready(stock: &DtlsStock, n: usize) -> bool {
        let end = Instant::now() + Duration::from_secs(10);
        while stock.ready() < n && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
        stock.ready() >= n
    }

    #[test]
    fn the_registered_certificate_is_served_from_stock_after_the_first_request() {
        let stock = DtlsStock::new(provider());
        let cert = cert();
        stock.keep_for(&cert);
        // Nothing is made before str0m has said which version and MTU it wants.
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(stock.ready(), 0);
        assert!(stock.take(&cert, DtlsVersion::Dtls12, Some(1150)).is_none());
        assert!(until_ready(&stock, STOCK), "the stock fills up");
        let t = Instant::now();
        let taken = stock.take(&cert, DtlsVersion::Dtls12, Some(1150));
        assert!(taken.is_some());
        // A lock, not a key exchange (which takes milliseconds).
        assert!(t.elapsed() < Duration::from_millis(2), "{:?}", t.elapsed());
        assert_eq!(stock.ready(), STOCK - 1);
        let mut instance = taken.unwrap();
        // A working passive instance: a time-out arms its timers, nothing is sent yet.
        instance.set_active(false);
        assert!(instance.handle_timeout(Instant::now()).is_ok());
        assert!(!instance.is_active());
        // Refilled once calm.
        assert!(until_ready(&stock, STOCK));
    }

    /// Sends what `from` has to `to` until `from` waits; true when `from` exported its
    /// SRTP keys meanwhile.
    fn pump(from: &mut dyn DtlsInstance, to: &mut dyn DtlsInstance) -> bool {
        let mut buf = vec![0u8; 2000];
        let mut keys = false;
        loop {
            match from.poll_output(&mut buf) {
                DtlsOutput::Packet(p) => {
                    let p = p.to_vec();
                    let _ = to.handle_packet(&p);
                }
                DtlsOutput::KeyingMaterial(..) => keys = true,
                DtlsOutput::Timeout(_) => return keys,
                _ => {}
            }
        }
    }

    #[test]
    fn an_instance_made_ahead_completes_a_handshake_later() {
        let stock = DtlsStock::new(provider());
        let ours = cert();
        stock.keep_for(&ours);
        let _ = stock.take(&ours, DtlsVersion::Dtls12, Some(1150));
        assert!(until_ready(&stock, 1));
        // It waits in the stock a while, as between two browsers.
        std::thread::sleep(Duration::from_millis(300));
        let mut server = stock
            .take(&ours, DtlsVersion::Dtls12, Some(1150))
            .expect("one ready");
        let mut now = Instant::now();
        let mut client = provider()
            .new_dtls(&cert(), now, DtlsVersion::Dtls12, Some(1150))
            .expect("a client");
        client.set_active(true);
        server.set_active(false);
        let (mut client_keys, mut server_keys) = (false, false);
        for _ in 0..20 {
            let _ = client.handle_timeout(now);
            let _ = server.handle_timeout(now);
            client_keys |= pump(client.as_mut(), server.as_mut());
            server_keys |= pump(server.as_mut(), client.as_mut());
            now += Duration::from_millis(5);
        }
        assert!(client_keys && server_keys, "the handshake completes");
    }

    #[test]
    fn other_certificates_and_parameters_are_not_served_from_stock() {
        let stock = DtlsStock::new(provider());
        let ours = cert();
        stock.keep_for(&ours);
        assert!(stock.take(&ours, DtlsVersion::Dtls12, Some(1150)).is_none());
        assert!(until_ready(&stock, STOCK));
        // A test client's own certificate: never from stock, and the stock stays.
        assert!(stock
            .take(&cert(), DtlsVersion::Dtls12, Some(1150))
            .is_none());
        assert_eq!(stock.ready(), STOCK);
        // Another MTU: made on the spot; the stock is remade for it.
        assert!(stock.take(&ours, DtlsVersion::Dtls12, Some(1000)).is_none());
        assert!(until_ready(&stock, STOCK));
        assert!(stock.take(&ours, DtlsVersion::Dtls12, Some(1000)).is_some());
        // A new certificate registered: the old one's instances are gone.
        let next = cert();
        stock.keep_for(&next);
        assert_eq!(stock.ready(), 0);
        assert!(stock.take(&ours, DtlsVersion::Dtls12, Some(1000)).is_none());
    }
}
