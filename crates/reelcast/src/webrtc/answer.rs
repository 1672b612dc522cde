//! Turning a browser's SDP offer into an `Rtc` and our answer.
//!
//! reelcast is an ICE-lite peer: its one host candidate (the shared UDP port, at the
//! announced address) goes into every answer, so browsers that do not trickle (the WCS SDK
//! sends its offer before gathering ends) connect at once. The DTLS certificate and crypto
//! provider are made once per server: generating a key per viewer would cost milliseconds
//! of CPU on every join.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use str0m::change::SdpOffer;
use str0m::crypto::dtls::DtlsCert;
use str0m::crypto::CryptoProvider;
use str0m::{Candidate, IceCreds, Rtc};

use super::WebRtcError;

/// Makes answering `Rtc`s that all share one certificate and one UDP port.
pub struct RtcFactory {
    provider: Arc<CryptoProvider>,
    cert: DtlsCert,
    candidate: SocketAddr,
}

/// An offer accepted: the engine to hand to the hub, and the answer to send back.
pub struct Accepted {
    pub rtc: Rtc,
    pub answer_sdp: String,
    /// Our ICE username fragment: STUN requests from the browser carry it, which is how the
    /// hub finds this viewer before it knows the browser's address.
    pub local_ufrag: String,
}

impl RtcFactory {
    /// `candidate` is the address browsers are told to send to (the announced IP and the
    /// shared media port).
    pub fn new(candidate: SocketAddr) -> Result<Self, WebRtcError> {
        let provider = str0m::crypto::from_feature_flags();
        let cert = provider
            .dtls_provider
            .generate_certificate()
            .ok_or_else(|| WebRtcError::Setup("could not generate a DTLS certificate".into()))?;
        Ok(RtcFactory {
            provider: Arc::new(provider),
            cert,
            candidate,
        })
    }

    pub fn candidate(&self) -> SocketAddr {
        self.candidate
    }

    /// Accepts `offer_sdp` (the browser wants to receive) and answers it.
    pub fn accept_offer(&self, offer_sdp: &str, now: Instant) -> Result<Accepted, WebRtcError> {
        let offer = SdpOffer::from_sdp_string(offer_sdp)
            .map_err(|e| WebRtcError::BadOffer(e.to_string()))?;
        let creds = IceCreds::new();
        let local_ufrag = creds.ufrag.clone();
        let mut rtc = Rtc::builder()
            .set_ice_lite(true)
            .set_crypto_provider(self.provider.clone())
            .set_dtls_cert(self.cert.clone())
            .set_local_ice_credentials(creds)
            .clear_codecs()
            .enable_opus(true, false)
            .enable_h264(true)
            .build(now);
        let candidate = Candidate::host(self.candidate, "udp")
            .map_err(|e| WebRtcError::Setup(format!("bad host candidate: {e}")))?;
        rtc.add_local_candidate(candidate)
            .ok_or_else(|| WebRtcError::Setup("host candidate refused".into()))?;
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| WebRtcError::BadOffer(e.to_string()))?;
        Ok(Accepted {
            rtc,
            answer_sdp: answer.to_sdp_string(),
            local_ufrag,
        })
    }
}
