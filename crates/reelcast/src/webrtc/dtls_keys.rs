//! Getting each viewer's DTLS-SRTP keys out of str0m, so the hub can send media itself.
//!
//! str0m does the ICE and DTLS handshakes; once a viewer is connected the hub sends its
//! media without str0m (see [`super::media_plane`]), and for that it needs the SRTP master
//! keys the handshake exported. str0m keeps them inside its session, but it takes the DTLS
//! implementation from a pluggable crypto provider: [`CapturingDtls`] wraps the real one
//! and copies the keying material as it passes by.
//!
//! The provider is shared by every viewer and is handed no viewer context, so the slot the
//! keys go to is passed through a thread-local: [`build_with_slot`] sets it, builds the
//! `Rtc` (which asks for its DTLS instance on the spot, on this thread) and takes it back.
//! The instance itself comes from the [`DtlsStock`] when it has one ready.

use std::cell::RefCell;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use str0m::crypto::dtls::{
    DtlsCert, DtlsImplError, DtlsInstance, DtlsOutput, DtlsProvider, DtlsVersion, ProtocolVersion,
    SrtpProfile,
};
use str0m::crypto::{CryptoError, CryptoProvider};

use super::dtls_stock::DtlsStock;

/// What the DTLS handshake exported, as RFC 5764 §4.2 lays it out.
#[derive(Clone)]
pub(super) struct ExportedKeys {
    pub material: Vec<u8>,
    pub profile: SrtpProfile,
    /// Whether our side was the DTLS client (it decides which half is ours).
    pub we_are_client: bool,
}

impl fmt::Debug for ExportedKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key bytes.
        write!(f, "ExportedKeys({:?})", self.profile)
    }
}

/// Where one viewer's keys land once its handshake is done.
#[derive(Clone, Default, Debug)]
pub(crate) struct KeySlot(Arc<Mutex<Option<ExportedKeys>>>);

impl KeySlot {
    pub(super) fn take(&self) -> Option<ExportedKeys> {
        self.0.lock().ok()?.take()
    }

    fn put(&self, keys: ExportedKeys) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(keys);
        }
    }
}

thread_local! {
    /// The slot for the DTLS instance being made on this thread (see [`build_with_slot`]).
    static NEXT_SLOT: RefCell<Option<KeySlot>> = const { RefCell::new(None) };
}

/// Runs `build` (which must construct exactly one `Rtc` with a provider from
/// [`capturing_provider`]) so that the `Rtc`'s DTLS keys land in the returned slot.
pub(super) fn build_with_slot<T>(build: impl FnOnce() -> T) -> (T, KeySlot) {
    let slot = KeySlot::default();
    NEXT_SLOT.with(|next| *next.borrow_mut() = Some(slot.clone()));
    let built = build();
    NEXT_SLOT.with(|next| next.borrow_mut().take());
    (built, slot)
}

/// `base` with its DTLS implementation wrapped to capture keys, its instances taken
/// from `stock` when it has them (`stock` makes `base`'s).
pub(super) fn capturing_provider(base: CryptoProvider, stock: Arc<DtlsStock>) -> CryptoProvider {
    // The provider holds `&'static` parts; one wrapper is made per server, not per viewer.
    let dtls: &'static CapturingDtls = Box::leak(Box::new(CapturingDtls {
        inner: base.dtls_provider,
        stock,
    }));
    CryptoProvider {
        dtls_provider: dtls,
        ..base
    }
}

/// A [`DtlsProvider`] whose instances report their exported keys to a [`KeySlot`].
#[derive(Debug)]
struct CapturingDtls {
    inner: &'static dyn DtlsProvider,
    stock: Arc<DtlsStock>,
}

impl DtlsProvider for CapturingDtls {
    fn generate_certificate(&self) -> Option<DtlsCert> {
        self.inner.generate_certificate()
    }

    fn new_dtls(
        &self,
        cert: &DtlsCert,
        now: Instant,
        dtls_version: DtlsVersion,
        mtu: Option<usize>,
    ) -> Result<Box<dyn DtlsInstance>, CryptoError> {
        let inner = match self.stock.take(cert, dtls_version, mtu) {
            Some(ready) => ready,
            None => self.inner.new_dtls(cert, now, dtls_version, mtu)?,
        };
        // No slot: an `Rtc` built outside `build_with_slot` (a test client) keeps its keys.
        match NEXT_SLOT.with(|next| next.borrow_mut().take()) {
            Some(slot) => Ok(Box::new(CapturingInstance { inner, slot })),
            None => Ok(inner),
        }
    }

    fn is_test(&self) -> bool {
        self.inner.is_test()
    }
}

#[derive(Debug)]
struct CapturingInstance {
    inner: Box<dyn DtlsInstance>,
    slot: KeySlot,
}

impl DtlsInstance for CapturingInstance {
    fn set_active(&mut self, active: bool) {
        self.inner.set_active(active);
    }

    fn handle_packet(&mut self, packet: &[u8]) -> Result<(), DtlsImplError> {
        self.inner.handle_packet(packet)
    }

    fn poll_output<'a>(&mut self, buf: &'a mut [u8]) -> DtlsOutput<'a> {
        let output = self.inner.poll_output(buf);
        if let DtlsOutput::KeyingMaterial(material, profile) = &output {
            self.slot.put(ExportedKeys {
                material: material.to_vec(),
                profile: *profile,
                we_are_client: self.inner.is_active(),
            });
        }
        output
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), DtlsImplError> {
        self.inner.handle_timeout(now)
    }

    fn send_application_data(&mut self, data: &[u8]) -> Result<(), DtlsImplError> {
        self.inner.send_application_data(data)
    }

    fn is_active(&self) -> bool {
        self.inner.is_active()
    }

    fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.inner.protocol_version()
    }

    fn is_closing(&self) -> bool {
        self.inner.is_closing()
    }

    fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    fn close(&mut self) -> Result<(), DtlsImplError> {
        self.inner.close()
    }
}
