//! Early nomination: an ICE-lite peer takes the browser's first authenticated check as
//! a nomination, so DTLS starts at once instead of one ICE ping interval later.
//!
//! Why: str0m's ICE-lite agent has a send address only once the browser nominates a
//! pair (a check with USE-CANDIDATE), and the DTLS flight answering the browser's
//! ClientHello waits for it. Chromium sends its ClientHello as soon as its first check is
//! answered, but nominates only with a later check, a ping interval (~50 ms) on; that
//! wait was a third of a publisher's time from `publishStream` to PUBLISHING, and the
//! same again for each viewer. Fed the nominating copy this module makes of the first
//! check, the engine answers DTLS on the path the check came on, which the browser has
//! just proven it sends and receives on. A later real nomination of another pair still
//! moves the engine there.
//!
//! Owns only the copy: a Binding request like the browser's (its USERNAME, PRIORITY and
//! ICE-CONTROLLING tie-breaker) plus USE-CANDIDATE, under a new transaction id (the
//! engine's reply to it matches nothing the browser sent, which drops it), signed with
//! our own ICE password as the browser signs its checks to us. Made only from a check the
//! engine has already accepted (its MESSAGE-INTEGRITY verified with that password), so
//! nobody without the password can have one made.

use str0m::ice::{StunMessage, TransId};

/// The nominating copy of `check` (a datagram the engine accepted), signed with
/// `password` (our ICE password), or None when `check` is not a controlling Binding
/// request or already nominates.
pub(super) fn nominating_copy(check: &[u8], password: &str) -> Option<Vec<u8>> {
    let m = StunMessage::parse(check).ok()?;
    if !m.is_binding_request() || m.use_candidate() {
        return None;
    }
    let username = m.username()?;
    let prio = m.prio()?;
    let tie_breaker = m.ice_controlling()?;
    let copy =
        StunMessage::binding_request(username, TransId::new(), true, tie_breaker, prio, true);
    let mut buf = vec![0u8; 1500];
    let n = copy
        .to_bytes(Some(password.as_bytes()), &mut buf, hmac_sha1)
        .ok()?;
    buf.truncate(n);
    Some(buf)
}

/// HMAC-SHA1 of the concatenated `parts` (STUN's MESSAGE-INTEGRITY).
fn hmac_sha1(key: &[u8], parts: &[&[u8]]) -> [u8; 20] {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key);
    let mut ctx = ring::hmac::Context::with_key(&key);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; 20];
    out.copy_from_slice(ctx.sign().as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(use_candidate: bool, password: &str) -> Vec<u8> {
        let m = StunMessage::binding_request(
            "ours:theirs",
            TransId::new(),
            true,
            0x1234_5678_9abc_def0,
            1_845_501_695,
            use_candidate,
        );
        let mut buf = vec![0u8; 1500];
        let n = m
            .to_bytes(Some(password.as_bytes()), &mut buf, hmac_sha1)
            .unwrap();
        buf.truncate(n);
        buf
    }

    #[test]
    fn the_copy_nominates_is_signed_and_keeps_the_checks_fields() {
        let original = check(false, "our-password");
        let copy = nominating_copy(&original, "our-password").expect("a copy");
        let m = StunMessage::parse(&copy).expect("parses");
        let o = StunMessage::parse(&original).unwrap();
        assert!(m.is_binding_request() && m.use_candidate());
        assert_eq!(m.username(), Some("ours:theirs"));
        assert_eq!(m.prio(), o.prio());
        assert_eq!(m.ice_controlling(), o.ice_controlling());
        assert_ne!(m.trans_id(), o.trans_id());
        assert!(m.verify(b"our-password", hmac_sha1));
        assert!(!m.verify(b"another", hmac_sha1));
    }

    /// Whether the engine, answering a browser's offer, gets its send address (ICE
    /// `Completed`) from the browser's first check, which does not nominate; with
    /// `early`, the check's nominating copy follows it as the peers feed it.
    fn completes_on_the_first_check(early: bool) -> bool {
        use crate::webrtc::rtc_factory::RtcFactory;
        use crate::webrtc::IceTransport;
        use std::time::Instant;
        use str0m::net::{Protocol, Receive};
        use str0m::{Event, IceConnectionState, Input, Output, Rtc};

        let now = Instant::now();
        let mut browser = Rtc::builder().build(now);
        let browser_ufrag = browser.direct_api().local_ice_credentials().ufrag;
        let mut api = browser.sdp_api();
        api.add_media(
            str0m::media::MediaKind::Video,
            str0m::media::Direction::RecvOnly,
            None,
            None,
            None,
        );
        let offer = api.apply().expect("an offer").0.to_sdp_string();
        let ours: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
        let factory = RtcFactory::new(vec![ours], vec![]).expect("factory");
        let accepted = factory
            .accept_offer(&offer, now, IceTransport::Any)
            .expect("answered");
        let mut server = accepted.rtc;
        let username = format!("{}:{browser_ufrag}", accepted.local_ufrag);
        let first = StunMessage::binding_request(&username, TransId::new(), true, 7, 1_000, false);
        let mut buf = vec![0u8; 1500];
        let n = first
            .to_bytes(Some(accepted.ice_password.as_bytes()), &mut buf, hmac_sha1)
            .unwrap();
        let mut checks = vec![buf[..n].to_vec()];
        if early {
            checks.push(nominating_copy(&buf[..n], &accepted.ice_password).expect("a copy"));
        }
        let mut completed = false;
        for check in &checks {
            let input = Input::Receive(
                now,
                Receive {
                    proto: Protocol::Udp,
                    source: "127.0.0.1:5000".parse().unwrap(),
                    destination: ours,
                    contents: check.as_slice().try_into().unwrap(),
                },
            );
            assert!(server.accepts(&input), "the check is authenticated");
            server.handle_input(input).expect("taken");
            loop {
                match server.poll_output().expect("output") {
                    Output::Timeout(_) => break,
                    Output::Event(Event::IceConnectionStateChange(
                        IceConnectionState::Completed,
                    )) => completed = true,
                    _ => {}
                }
            }
        }
        completed
    }

    #[test]
    fn the_copy_gives_the_engine_its_send_address_at_the_first_check() {
        assert!(
            !completes_on_the_first_check(false),
            "without the copy the engine waits for the browser's nomination"
        );
        assert!(completes_on_the_first_check(true));
    }

    #[test]
    fn only_a_controlling_check_that_does_not_nominate_is_copied() {
        assert!(nominating_copy(&check(true, "p"), "p").is_none());
        assert!(nominating_copy(b"\x16\xfe\xfd not stun", "p").is_none());
        let reply = StunMessage::binding_reply(TransId::new(), "127.0.0.1:9".parse().unwrap());
        let mut buf = vec![0u8; 1500];
        let n = reply.to_bytes(Some(b"p"), &mut buf, hmac_sha1).unwrap();
        assert!(nominating_copy(&buf[..n], "p").is_none());
    }
}
