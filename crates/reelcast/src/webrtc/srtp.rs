//! SRTP and SRTCP protection of the lean per-viewer media sender.
//!
//! Owns: splitting the DTLS-SRTP keying material into the two directions' master keys
//! (RFC 5764 §4.2), deriving the session keys (RFC 3711 §4.3), protecting the RTP and RTCP
//! we send, and checking the SRTCP a viewer sends back (authentication and replay).
//! Profiles: SRTP_AES128_CM_SHA1_80 (RFC 3711) and SRTP_AEAD_AES_128_GCM /
//! SRTP_AEAD_AES_256_GCM (RFC 7714).
//!
//! Why it exists: the lean sender writes a viewer's RTP itself rather than through that
//! viewer's str0m [`Rtc`](str0m::Rtc), and str0m keeps its SRTP contexts private. It does
//! hand out the keying material after the DTLS handshake, and its [`CryptoProvider`]
//! exposes the primitives (AES-CTR, one AES-ECB block for key derivation, HMAC-SHA1),
//! which the AES-CM suite and key derivation use. AES-GCM, what browsers pick and
//! where nearly all the per-packet work is, comes from `ring`: sealing a small packet
//! through OpenSSL 3's cipher context cost several times the encryption itself.
//!
//! Must not: parse RTP or RTCP beyond the fixed offsets SRTP needs, or keep a rollover
//! counter (the caller passes the 48-bit packet index). Protecting a packet allocates
//! nothing but room in the caller's buffer; cipher instances are made once per direction.

use std::fmt;

use ring::aead;
use str0m::crypto::dtls::SrtpProfile;
use str0m::crypto::{Aes128CmSha1_80Cipher, CryptoProvider, Sha1HmacProvider, SrtpProvider};
use tracing::warn;

/// Fixed part of an RTP header; CSRCs and extensions follow.
const RTP_HEADER_LEN: usize = 12;
/// First RTCP header and sender SSRC: sent in the clear, authenticated (RFC 3711 §3.4).
const RTCP_HEADER_LEN: usize = 8;
/// The E flag and the 31-bit SRTCP index, after the encrypted part.
const SRTCP_INDEX_LEN: usize = 4;
const E_FLAG: u32 = 0x8000_0000;
const SRTCP_INDEX_MASK: u32 = 0x7fff_ffff;

/// AES_CM_128_HMAC_SHA1_80: 80 of HMAC-SHA1's 160 bits go on the wire.
const HMAC_TAG_LEN: usize = 10;
const HMAC_KEY_LEN: usize = 20;
const CM_SALT_LEN: usize = 14;
/// Some providers' AES-CTR wants its output up to a block minus one longer than its input;
/// the cipher gets that room and the surplus is cut off again.
const CTR_SLACK: usize = 15;

/// AEAD_AES_*_GCM: 96-bit salt, 128-bit tag (RFC 7714 §14.2).
const GCM_SALT_LEN: usize = 12;
const GCM_TAG_LEN: usize = 16;

/// Indexes a receiver remembers behind the highest one seen (RFC 3711 §3.3.2).
const REPLAY_WINDOW: u32 = 128;

/// Key derivation labels (RFC 3711 §4.3.1): RTP uses 0..=2, RTCP 3..=5.
const LABEL_CIPHER_KEY: u8 = 0;
const LABEL_AUTH_KEY: u8 = 1;
const LABEL_SALT: u8 = 2;
const LABEL_RTCP_OFFSET: u8 = 3;

/// The profiles we implement; [`SrtpProfile`] is `non_exhaustive`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Suite {
    AesCm128Sha1_80,
    AeadAes128Gcm,
    AeadAes256Gcm,
}

impl Suite {
    fn of(profile: SrtpProfile) -> Option<Self> {
        match profile {
            SrtpProfile::AES128_CM_SHA1_80 => Some(Suite::AesCm128Sha1_80),
            SrtpProfile::AEAD_AES_128_GCM => Some(Suite::AeadAes128Gcm),
            SrtpProfile::AEAD_AES_256_GCM => Some(Suite::AeadAes256Gcm),
            _ => None,
        }
    }

    fn profile(self) -> SrtpProfile {
        match self {
            Suite::AesCm128Sha1_80 => SrtpProfile::AES128_CM_SHA1_80,
            Suite::AeadAes128Gcm => SrtpProfile::AEAD_AES_128_GCM,
            Suite::AeadAes256Gcm => SrtpProfile::AEAD_AES_256_GCM,
        }
    }

    /// Master key length, which is also the session cipher key length.
    fn key_len(self) -> usize {
        match self {
            Suite::AesCm128Sha1_80 | Suite::AeadAes128Gcm => 16,
            Suite::AeadAes256Gcm => 32,
        }
    }

    /// Master salt length, which is also the session salt length.
    fn salt_len(self) -> usize {
        match self {
            Suite::AesCm128Sha1_80 => CM_SALT_LEN,
            Suite::AeadAes128Gcm | Suite::AeadAes256Gcm => GCM_SALT_LEN,
        }
    }
}

/// One direction's master key and salt; only the suite's lengths are used.
#[derive(Clone)]
struct MasterKey {
    key: [u8; 32],
    key_len: usize,
    salt: [u8; CM_SALT_LEN],
}

impl MasterKey {
    fn new(key: &[u8], salt: &[u8]) -> Self {
        let mut master = MasterKey {
            key: [0; 32],
            key_len: key.len(),
            salt: [0; CM_SALT_LEN],
        };
        master.key[..key.len()].copy_from_slice(key);
        master.salt[..salt.len()].copy_from_slice(salt);
        master
    }

    /// Fills `out` with the session key for `label` (RFC 3711 §4.3.1 and §4.3.3, key
    /// derivation rate 0): AES in counter mode keyed with the master key, starting at
    /// `x · 2^16` where `x` is the 112-bit master salt with the label XORed into its
    /// eighth byte. A 96-bit GCM salt is `salt · 2^16` there (RFC 7714 §11, erratum 4938),
    /// i.e. padded with zeros on the right, which the zeroed tail of `salt` already is.
    /// AEAD_AES_256_GCM uses AES-256 for this (RFC 6188).
    fn derive(&self, srtp: &dyn SrtpProvider, label: u8, out: &mut [u8]) {
        let mut block = [0u8; 16];
        block[..CM_SALT_LEN].copy_from_slice(&self.salt);
        block[7] ^= label;
        // The provider's ECB round pads, so it writes two blocks; the first is ours.
        let mut keystream = [0u8; 32];
        for (counter, chunk) in out.chunks_mut(16).enumerate() {
            block[14..].copy_from_slice(&(counter as u16).to_be_bytes());
            if self.key_len == 32 {
                srtp.srtp_aes_256_ecb_round(&self.key, &block, &mut keystream);
            } else {
                srtp.srtp_aes_128_ecb_round(&self.key[..16], &block, &mut keystream);
            }
            chunk.copy_from_slice(&keystream[..chunk.len()]);
        }
    }
}

/// AES-GCM of either width, by `ring`: its sealing costs little beyond the AES and GHASH
/// work itself, where re-initialising an OpenSSL 3 cipher context per packet (str0m's
/// provider) cost more than the encryption of a small packet.
struct GcmCipher {
    /// Boxed: the expanded key schedule is large beside the AES-CM transform.
    key: Box<aead::LessSafeKey>,
}

/// A GCM operation failed (for opening: the tag did not match).
#[derive(Debug)]
struct GcmError;

impl fmt::Display for GcmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AES-GCM failed")
    }
}

impl GcmCipher {
    /// A 16- or 32-byte `key` (AES-128 or AES-256).
    fn new(key: &[u8]) -> Self {
        let algorithm = if key.len() == 32 {
            &aead::AES_256_GCM
        } else {
            &aead::AES_128_GCM
        };
        let key = aead::UnboundKey::new(algorithm, key).expect("suite key length");
        GcmCipher {
            key: Box::new(aead::LessSafeKey::new(key)),
        }
    }

    /// Encrypts `in_out` in place and returns the 16-byte tag.
    fn seal(
        &self,
        iv: &[u8; GCM_SALT_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<[u8; GCM_TAG_LEN], GcmError> {
        let nonce = aead::Nonce::assume_unique_for_key(*iv);
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce, aead::Aad::from(aad), in_out)
            .map_err(|_| GcmError)?;
        Ok(array(tag.as_ref()))
    }

    /// Checks the tag at the end of `sealed_in_out` and decrypts in place; returns the
    /// plaintext's length (the tag is left behind it).
    fn open(
        &self,
        iv: &[u8; GCM_SALT_LEN],
        aad: &[u8],
        sealed_in_out: &mut [u8],
    ) -> Result<usize, GcmError> {
        let nonce = aead::Nonce::assume_unique_for_key(*iv);
        self.key
            .open_in_place(nonce, aead::Aad::from(aad), sealed_in_out)
            .map(|plain| plain.len())
            .map_err(|_| GcmError)
    }
}

/// Session keys and the cipher instance of one stream kind (RTP or RTCP) in one direction.
enum Transform {
    AesCm {
        cipher: Box<dyn Aes128CmSha1_80Cipher>,
        auth_key: [u8; HMAC_KEY_LEN],
        salt: [u8; CM_SALT_LEN],
    },
    Gcm {
        cipher: GcmCipher,
        salt: [u8; GCM_SALT_LEN],
    },
}

impl Transform {
    /// Derives the RTP (`rtcp == false`) or RTCP session keys from `master` and makes the
    /// cipher for encrypting or decrypting.
    fn derive(
        provider: &CryptoProvider,
        suite: Suite,
        master: &MasterKey,
        rtcp: bool,
        encrypt: bool,
    ) -> Self {
        let srtp = provider.srtp_provider;
        let base = if rtcp { LABEL_RTCP_OFFSET } else { 0 };
        let mut key = [0u8; 32];
        let mut salt = [0u8; CM_SALT_LEN];
        let mut auth_key = [0u8; HMAC_KEY_LEN];
        let key = &mut key[..suite.key_len()];
        let salt = &mut salt[..suite.salt_len()];
        master.derive(srtp, base + LABEL_CIPHER_KEY, key);
        master.derive(srtp, base + LABEL_SALT, salt);
        if suite == Suite::AesCm128Sha1_80 {
            master.derive(srtp, base + LABEL_AUTH_KEY, &mut auth_key);
        }
        Transform::new(srtp, suite, key, salt, &auth_key, encrypt)
    }

    /// From session keys; `auth_key` is ignored by the GCM suites.
    fn new(
        srtp: &dyn SrtpProvider,
        suite: Suite,
        key: &[u8],
        salt: &[u8],
        auth_key: &[u8],
        encrypt: bool,
    ) -> Self {
        match suite {
            Suite::AesCm128Sha1_80 => Transform::AesCm {
                cipher: srtp.aes_128_cm_sha1_80().create_cipher(array(key), encrypt),
                auth_key: array(auth_key),
                salt: array(salt),
            },
            Suite::AeadAes128Gcm | Suite::AeadAes256Gcm => Transform::Gcm {
                cipher: GcmCipher::new(key),
                salt: array(salt),
            },
        }
    }

    fn suite_name(&self) -> &'static str {
        match self {
            Transform::AesCm { .. } => "AES_CM_128_HMAC_SHA1_80",
            Transform::Gcm { cipher, .. } if cipher.key.algorithm() == &aead::AES_128_GCM => {
                "AEAD_AES_128_GCM"
            }
            Transform::Gcm { .. } => "AEAD_AES_256_GCM",
        }
    }
}

/// The two directions' master keys from DTLS-SRTP keying material.
#[derive(Clone)]
pub(super) struct SrtpKeys {
    suite: Suite,
    /// What we send with.
    local: MasterKey,
    /// What the peer sends with.
    remote: MasterKey,
}

impl SrtpKeys {
    /// `material`: the exported bytes; `we_are_dtls_client`: true when our DTLS side was
    /// active. None when the length does not match the profile (or the profile is unknown).
    pub(super) fn from_keying_material(
        material: &[u8],
        profile: SrtpProfile,
        we_are_dtls_client: bool,
    ) -> Option<Self> {
        let suite = Suite::of(profile)?;
        let (key_len, salt_len) = (suite.key_len(), suite.salt_len());
        if material.len() != 2 * (key_len + salt_len) {
            return None;
        }
        // RFC 5764 §4.2: client key | server key | client salt | server salt. Each side
        // sends with its own ("write") key, so the DTLS client sends with the client key.
        let (keys, salts) = material.split_at(2 * key_len);
        let client = MasterKey::new(&keys[..key_len], &salts[..salt_len]);
        let server = MasterKey::new(&keys[key_len..], &salts[salt_len..]);
        let (local, remote) = if we_are_dtls_client {
            (client, server)
        } else {
            (server, client)
        };
        Some(SrtpKeys {
            suite,
            local,
            remote,
        })
    }

    /// Protection of what we send: our RTP and our RTCP.
    pub(super) fn sender(&self, provider: &CryptoProvider) -> SrtpSender {
        SrtpSender {
            rtp: Transform::derive(provider, self.suite, &self.local, false, true),
            rtcp: Transform::derive(provider, self.suite, &self.local, true, true),
            hmac: provider.sha1_hmac_provider,
            next_rtcp_index: 1,
        }
    }

    /// Checking of what the peer sends: its RTCP (a viewer sends us no RTP).
    pub(super) fn receiver(&self, provider: &CryptoProvider) -> SrtcpReceiver {
        SrtcpReceiver {
            rtcp: Transform::derive(provider, self.suite, &self.remote, true, false),
            hmac: provider.sha1_hmac_provider,
            replay: ReplayWindow::default(),
        }
    }
}

impl fmt::Debug for SrtpKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrtpKeys")
            .field("profile", &self.suite.profile())
            .finish_non_exhaustive()
    }
}

/// SRTP and SRTCP protection of one viewer's outgoing packets.
pub(super) struct SrtpSender {
    rtp: Transform,
    rtcp: Transform,
    hmac: &'static dyn Sha1HmacProvider,
    next_rtcp_index: u32,
}

impl SrtpSender {
    /// Appends to `out` the SRTP packet: `header` (a plain RTP header, 12 bytes + any
    /// CSRC/extension, copied as is), then `payload` encrypted, then the auth tag. `index` is
    /// the 48-bit SRTP packet index (ROC << 16 | seq) and must match the seq in `header`;
    /// `ssrc` matches the header's. No other copy of the payload is made: the cipher reads
    /// `payload` and writes straight into `out`.
    ///
    /// Should the provider's cipher fail (it does not for valid lengths), nothing is
    /// appended and a warning is logged: the packet is lost as if on the network.
    pub(super) fn protect_rtp(
        &mut self,
        header: &[u8],
        payload: &[u8],
        ssrc: u32,
        index: u64,
        out: &mut Vec<u8>,
    ) {
        debug_assert!(header.len() >= RTP_HEADER_LEN, "short RTP header");
        debug_assert_eq!(&header[2..4], &(index as u16).to_be_bytes(), "seq vs index");
        debug_assert_eq!(&header[8..12], &ssrc.to_be_bytes(), "SSRC vs header");
        let start = out.len();
        let body = start + header.len();
        let end = body + payload.len();
        out.reserve(header.len() + payload.len() + CTR_SLACK.max(GCM_TAG_LEN));
        out.extend_from_slice(header);

        let result = match &mut self.rtp {
            Transform::AesCm {
                cipher,
                auth_key,
                salt,
            } => {
                out.resize(end + CTR_SLACK, 0);
                let iv = cm_iv(salt, ssrc, index);
                cipher
                    .encrypt(&iv, payload, &mut out[body..])
                    .map(|()| {
                        out.truncate(end);
                        // RFC 3711 §4.2: the tag also covers the ROC, which is not sent.
                        let roc = ((index >> 16) as u32).to_be_bytes();
                        let tag = self.hmac.sha1_hmac(auth_key, &[&out[start..], &roc]);
                        out.extend_from_slice(&tag[..HMAC_TAG_LEN]);
                    })
                    .map_err(|e| e.to_string())
            }
            Transform::Gcm { cipher, salt } => {
                out.extend_from_slice(payload);
                let iv = gcm_rtp_iv(salt, ssrc, index);
                // RFC 7714 §8: the header is the associated data, sent in the clear.
                cipher
                    .seal(&iv, header, &mut out[body..])
                    .map(|tag| out.extend_from_slice(&tag))
                    .map_err(|e| e.to_string())
            }
        };
        if let Err(e) = result {
            out.truncate(start);
            warn!(
                suite = self.rtp.suite_name(),
                ssrc, index, "SRTP protect failed: {e}"
            );
        }
    }

    /// Appends to `out` the SRTCP form of the plain compound RTCP `packet` (sender SSRC at
    /// bytes 4..8), with the E flag set and the sender's own SRTCP index, which starts at 1
    /// (or where [`set_next_rtcp_index`](Self::set_next_rtcp_index) put it) and rises by one
    /// per packet. Panics when `packet` is shorter than an RTCP header (8 bytes).
    pub(super) fn protect_rtcp(&mut self, packet: &[u8], out: &mut Vec<u8>) {
        assert!(packet.len() >= RTCP_HEADER_LEN, "short RTCP packet");
        let index = self.next_rtcp_index;
        // RFC 3711 §3.4: the index counts modulo 2^31. Wrapping would need new keys, but
        // 2^31 RTCP packets outlast any viewer.
        self.next_rtcp_index = index.wrapping_add(1) & SRTCP_INDEX_MASK;
        let e_and_index = (E_FLAG | index).to_be_bytes();
        let ssrc = be_u32(&packet[4..8]);
        let start = out.len();
        let body = start + RTCP_HEADER_LEN;
        let end = start + packet.len();
        out.reserve(packet.len() + SRTCP_INDEX_LEN + CTR_SLACK.max(GCM_TAG_LEN));
        out.extend_from_slice(&packet[..RTCP_HEADER_LEN]);
        let plain = &packet[RTCP_HEADER_LEN..];

        let result = match &mut self.rtcp {
            Transform::AesCm {
                cipher,
                auth_key,
                salt,
            } => {
                out.resize(end + CTR_SLACK, 0);
                let iv = cm_iv(salt, ssrc, u64::from(index));
                cipher
                    .encrypt(&iv, plain, &mut out[body..])
                    .map(|()| {
                        out.truncate(end);
                        out.extend_from_slice(&e_and_index);
                        // RFC 3711 §3.4: the tag covers the header, ciphertext, E flag and
                        // index.
                        let tag = self.hmac.sha1_hmac(auth_key, &[&out[start..]]);
                        out.extend_from_slice(&tag[..HMAC_TAG_LEN]);
                    })
                    .map_err(|e| e.to_string())
            }
            Transform::Gcm { cipher, salt } => {
                // RFC 7714 §9 (and its §17 vectors): header | ciphertext | tag | E+index;
                // the associated data is the header followed by E+index.
                let mut aad = [0u8; RTCP_HEADER_LEN + SRTCP_INDEX_LEN];
                aad[..RTCP_HEADER_LEN].copy_from_slice(&packet[..RTCP_HEADER_LEN]);
                aad[RTCP_HEADER_LEN..].copy_from_slice(&e_and_index);
                out.extend_from_slice(plain);
                let iv = gcm_rtcp_iv(salt, ssrc, index);
                cipher
                    .seal(&iv, &aad, &mut out[body..])
                    .map(|tag| {
                        out.extend_from_slice(&tag);
                        out.extend_from_slice(&e_and_index);
                    })
                    .map_err(|e| e.to_string())
            }
        };
        if let Err(e) = result {
            out.truncate(start);
            warn!(
                suite = self.rtcp.suite_name(),
                ssrc, index, "SRTCP protect failed: {e}"
            );
        }
    }

    /// The next SRTCP index to use (default 1; only the low 31 bits count). The peer drops
    /// indexes it has already seen under these keys, so when str0m has sent SRTCP on this
    /// session before, start above what it may have used.
    pub(super) fn set_next_rtcp_index(&mut self, index: u32) {
        self.next_rtcp_index = index & SRTCP_INDEX_MASK;
    }
}

impl fmt::Debug for SrtpSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrtpSender")
            .field("suite", &self.rtp.suite_name())
            .field("next_rtcp_index", &self.next_rtcp_index)
            .finish_non_exhaustive()
    }
}

/// Authentication, decryption and replay protection of the SRTCP a peer sends us.
pub(super) struct SrtcpReceiver {
    rtcp: Transform,
    hmac: &'static dyn Sha1HmacProvider,
    replay: ReplayWindow,
}

impl SrtcpReceiver {
    /// The plain compound RTCP inside an SRTCP packet from the peer, or None when it is too
    /// short, fails authentication, or replays an index already seen (a replay window of 128
    /// indexes, RFC 3711 §3.3.2).
    pub(super) fn unprotect_rtcp(&mut self, packet: &[u8]) -> Option<Vec<u8>> {
        // AES-CM: header | encrypted | E+index | tag. GCM: header | encrypted | tag | E+index.
        let (tag_len, index_at) = match self.rtcp {
            Transform::AesCm { .. } => (HMAC_TAG_LEN, HMAC_TAG_LEN + SRTCP_INDEX_LEN),
            Transform::Gcm { .. } => (GCM_TAG_LEN, SRTCP_INDEX_LEN),
        };
        if packet.len() < RTCP_HEADER_LEN + SRTCP_INDEX_LEN + tag_len {
            return None;
        }
        let index_at = packet.len() - index_at;
        let e_and_index_bytes = &packet[index_at..index_at + SRTCP_INDEX_LEN];
        let e_and_index = be_u32(e_and_index_bytes);
        let encrypted = e_and_index & E_FLAG != 0;
        let index = e_and_index & SRTCP_INDEX_MASK;
        if !self.replay.is_new(index) {
            return None;
        }
        let ssrc = be_u32(&packet[4..8]);

        let plain = match &mut self.rtcp {
            Transform::AesCm {
                cipher,
                auth_key,
                salt,
            } => {
                let (signed, tag) = packet.split_at(packet.len() - HMAC_TAG_LEN);
                let expected = self.hmac.sha1_hmac(auth_key, &[signed]);
                if !same_tag(&expected[..HMAC_TAG_LEN], tag) {
                    return None;
                }
                let rtcp = &packet[..index_at];
                if encrypted {
                    let mut plain = Vec::with_capacity(rtcp.len() + CTR_SLACK);
                    plain.extend_from_slice(&rtcp[..RTCP_HEADER_LEN]);
                    plain.resize(rtcp.len() + CTR_SLACK, 0);
                    let iv = cm_iv(salt, ssrc, u64::from(index));
                    cipher
                        .decrypt(&iv, &rtcp[RTCP_HEADER_LEN..], &mut plain[RTCP_HEADER_LEN..])
                        .ok()?;
                    plain.truncate(rtcp.len());
                    plain
                } else {
                    rtcp.to_vec()
                }
            }
            Transform::Gcm { cipher, salt } => {
                let sealed = &packet[..index_at];
                let iv = gcm_rtcp_iv(salt, ssrc, index);
                if encrypted {
                    let mut aad = [0u8; RTCP_HEADER_LEN + SRTCP_INDEX_LEN];
                    aad[..RTCP_HEADER_LEN].copy_from_slice(&packet[..RTCP_HEADER_LEN]);
                    aad[RTCP_HEADER_LEN..].copy_from_slice(e_and_index_bytes);
                    let mut plain = sealed.to_vec();
                    let n = cipher.open(&iv, &aad, &mut plain[RTCP_HEADER_LEN..]).ok()?;
                    plain.truncate(RTCP_HEADER_LEN + n);
                    plain
                } else {
                    // Authenticated only (RFC 7714 §9): all but the tag is associated data.
                    let (rtcp, tag) = sealed.split_at(sealed.len() - GCM_TAG_LEN);
                    let aad = [rtcp, e_and_index_bytes].concat();
                    let mut tag = array::<GCM_TAG_LEN>(tag);
                    cipher.open(&iv, &aad, &mut tag).ok()?;
                    rtcp.to_vec()
                }
            }
        };
        // Only an authentic packet moves the window, so forgeries cannot block real ones.
        self.replay.mark(index);
        Some(plain)
    }
}

impl fmt::Debug for SrtcpReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrtcpReceiver")
            .field("suite", &self.rtcp.suite_name())
            .finish_non_exhaustive()
    }
}

/// Which of the last [`REPLAY_WINDOW`] SRTCP indexes have been accepted.
#[derive(Default)]
struct ReplayWindow {
    /// Highest index accepted.
    top: u32,
    /// Bit `n` set: index `top - n` was accepted. Zero before the first packet.
    seen: u128,
}

impl ReplayWindow {
    /// Whether `index` may still be accepted: ahead of the window, or inside it and unseen.
    fn is_new(&self, index: u32) -> bool {
        if self.seen == 0 || index > self.top {
            return true;
        }
        let behind = self.top - index;
        behind < REPLAY_WINDOW && self.seen & (1 << behind) == 0
    }

    /// Records an accepted `index` (one [`is_new`](Self::is_new) allowed).
    fn mark(&mut self, index: u32) {
        if self.seen == 0 {
            self.top = index;
            self.seen = 1;
        } else if index > self.top {
            let ahead = index - self.top;
            self.seen = if ahead >= REPLAY_WINDOW {
                0
            } else {
                self.seen << ahead
            };
            self.seen |= 1;
            self.top = index;
        } else {
            self.seen |= 1 << (self.top - index);
        }
    }
}

/// AES-CM counter start (RFC 3711 §4.1.1): `salt · 2^16 ⊕ SSRC · 2^64 ⊕ index · 2^16`.
/// The same for SRTCP with the SRTCP index (§4.1).
fn cm_iv(salt: &[u8; CM_SALT_LEN], ssrc: u32, index: u64) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[..CM_SALT_LEN].copy_from_slice(salt);
    xor_into(&mut iv[4..8], &ssrc.to_be_bytes());
    xor_into(&mut iv[8..14], &index.to_be_bytes()[2..]);
    iv
}

/// GCM nonce for RTP (RFC 7714 §8.1): `00 00 | SSRC | ROC | SEQ` XOR salt; ROC | SEQ is
/// the 48-bit packet index.
fn gcm_rtp_iv(salt: &[u8; GCM_SALT_LEN], ssrc: u32, index: u64) -> [u8; GCM_SALT_LEN] {
    let mut iv = *salt;
    xor_into(&mut iv[2..6], &ssrc.to_be_bytes());
    xor_into(&mut iv[6..12], &index.to_be_bytes()[2..]);
    iv
}

/// GCM nonce for RTCP (RFC 7714 §9.1): `00 00 | SSRC | 00 00 | 0 + 31-bit index` XOR salt.
fn gcm_rtcp_iv(salt: &[u8; GCM_SALT_LEN], ssrc: u32, index: u32) -> [u8; GCM_SALT_LEN] {
    let mut iv = *salt;
    xor_into(&mut iv[2..6], &ssrc.to_be_bytes());
    xor_into(&mut iv[8..12], &(index & SRTCP_INDEX_MASK).to_be_bytes());
    iv
}

fn xor_into(to: &mut [u8], from: &[u8]) {
    for (t, f) in to.iter_mut().zip(from) {
        *t ^= f;
    }
}

/// Tag comparison whose time does not depend on where the first difference is.
fn same_tag(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn be_u32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// A slice whose length the suite fixed as a key or salt array.
fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    bytes.try_into().expect("length fixed by the suite")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROFILES: [SrtpProfile; 3] = [
        SrtpProfile::AES128_CM_SHA1_80,
        SrtpProfile::AEAD_AES_128_GCM,
        SrtpProfile::AEAD_AES_256_GCM,
    ];

    /// RFC 3711 Appendix B.3's master key and salt; libsrtp's reference packets use them too.
    const B3_MASTER_KEY: &str = "e1f97a0d3e018be0d64fa32c06de4139";
    const B3_MASTER_SALT: &str = "0ec675ad498afeebb6960b3aabe6";

    /// RFC 7714 §16-17: session keys (no derivation) and the packets.
    const GCM_KEY_128: &str = "000102030405060708090a0b0c0d0e0f";
    const GCM_KEY_256: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const GCM_SALT: &str = "517569642070726f2071756f";
    const GCM_RTP: &str = "8040f17b8041f8d35501a0b2
        47616c6c696120657374206f6d6e69732064697669736120696e207061727465732074726573";
    const GCM_SRTP_128: &str = "8040f17b8041f8d35501a0b2
        f24de3a3fb34de6cacba861c9d7e4bcabe633bd50d294e6f42a5f47a51c7d19b36de3adf8833
        899d7f27beb16a9152cf765ee4390cce";
    const GCM_SRTP_256: &str = "8040f17b8041f8d35501a0b2
        32b1de78a822fe12ef9f78fa332e33aab18012389a58e2f3b50b2a0276ffae0f1ba63799b87b
        7aa3db36dfffd6b0f9bb7878d7a76c13";
    const GCM_RTCP: &str = "81c8000d4d617273
        4e5450314e545032525450200000042a0000e9304c756e61
        deadbeefdeadbeefdeadbeefdeadbeefdeadbeef";
    const GCM_SRTCP_INDEX: u32 = 0x5d4;
    const GCM_SRTCP_128: &str = "81c8000d4d617273
        63e94885dcdab67ca727d7662f6b7e997ff5c0f76c06f32dc676a5f1730d6fda4ce09b4686303ded0bb9275b
        c84aa45896cf4d2fc5abf87245d9eade 800005d4";
    const GCM_SRTCP_256: &str = "81c8000d4d617273
        d50ae4d1f5ce5d304ba297e47d470c282c3ece5dbffe0a50a2eaa5c1110555be8415f658c61de0476f1b
        6fad1d1eb30c4446839f57ff6f6cb26ac3be 800005d4";
    /// §17.3: the same RTCP authenticated only (E flag clear): RTCP | tag | index.
    const GCM_SRTCP_128_AUTH_ONLY_TRAILER: &str = "841dd9683dd78ec92ae58790125f62b3 000005d4";

    fn provider() -> CryptoProvider {
        str0m::crypto::from_feature_flags()
    }

    fn hex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        digits
            .chunks(2)
            .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
            .collect()
    }

    /// DTLS-SRTP keying material whose client half is `key`/`salt`, server half filler.
    fn material_with_client(key: &[u8], salt: &[u8]) -> Vec<u8> {
        let mut material = key.to_vec();
        material.extend(std::iter::repeat_n(0x5a, key.len()));
        material.extend_from_slice(salt);
        material.extend(std::iter::repeat_n(0xa5, salt.len()));
        material
    }

    /// Arbitrary keying material of the right length for `profile`.
    fn material_for(profile: SrtpProfile) -> Vec<u8> {
        let suite = Suite::of(profile).unwrap();
        let len = 2 * (suite.key_len() + suite.salt_len());
        (0..len).map(|i| (i * 37 + 11) as u8).collect()
    }

    /// The GCM suite of a key: 16 bytes for AES-128, 32 for AES-256.
    fn gcm_suite(key: &[u8]) -> Suite {
        if key.len() == 16 {
            Suite::AeadAes128Gcm
        } else {
            Suite::AeadAes256Gcm
        }
    }

    fn gcm_sender(key: &str) -> SrtpSender {
        let p = provider();
        let key = hex(key);
        let suite = gcm_suite(&key);
        let salt = hex(GCM_SALT);
        SrtpSender {
            rtp: Transform::new(p.srtp_provider, suite, &key, &salt, &[], true),
            rtcp: Transform::new(p.srtp_provider, suite, &key, &salt, &[], true),
            hmac: p.sha1_hmac_provider,
            next_rtcp_index: 1,
        }
    }

    fn gcm_receiver(key: &str) -> SrtcpReceiver {
        let p = provider();
        let key = hex(key);
        let suite = gcm_suite(&key);
        SrtcpReceiver {
            rtcp: Transform::new(p.srtp_provider, suite, &key, &hex(GCM_SALT), &[], false),
            hmac: p.sha1_hmac_provider,
            replay: ReplayWindow::default(),
        }
    }

    /// The peer's side of [`SrtpSender::protect_rtp`], which the server itself never needs:
    /// the payload of `packet`, or None when it does not authenticate.
    fn unprotect_rtp(
        keys_of_peer: &SrtpKeys,
        packet: &[u8],
        header_len: usize,
        index: u64,
    ) -> Option<Vec<u8>> {
        let p = provider();
        let mut rtp = Transform::derive(&p, keys_of_peer.suite, &keys_of_peer.remote, false, false);
        let ssrc = be_u32(&packet[8..12]);
        match &mut rtp {
            Transform::AesCm {
                cipher,
                auth_key,
                salt,
            } => {
                let (signed, tag) = packet.split_at(packet.len() - HMAC_TAG_LEN);
                let roc = ((index >> 16) as u32).to_be_bytes();
                let expected = p.sha1_hmac_provider.sha1_hmac(auth_key, &[signed, &roc]);
                if !same_tag(&expected[..HMAC_TAG_LEN], tag) {
                    return None;
                }
                let encrypted = &signed[header_len..];
                let mut plain = vec![0; encrypted.len() + CTR_SLACK];
                cipher
                    .decrypt(&cm_iv(salt, ssrc, index), encrypted, &mut plain)
                    .ok()?;
                plain.truncate(encrypted.len());
                Some(plain)
            }
            Transform::Gcm { cipher, salt } => {
                let (header, sealed) = packet.split_at(header_len);
                let mut plain = sealed.to_vec();
                let iv = gcm_rtp_iv(salt, ssrc, index);
                let n = cipher.open(&iv, header, &mut plain).ok()?;
                plain.truncate(n);
                Some(plain)
            }
        }
    }

    /// The E flag and SRTCP index word of a packet we protected.
    fn srtcp_index_word(profile: SrtpProfile, packet: &[u8]) -> u32 {
        let from_end = match Suite::of(profile).unwrap() {
            Suite::AesCm128Sha1_80 => HMAC_TAG_LEN + SRTCP_INDEX_LEN,
            _ => SRTCP_INDEX_LEN,
        };
        be_u32(&packet[packet.len() - from_end..])
    }

    fn tag_len(profile: SrtpProfile) -> usize {
        match Suite::of(profile).unwrap() {
            Suite::AesCm128Sha1_80 => HMAC_TAG_LEN,
            _ => GCM_TAG_LEN,
        }
    }

    #[test]
    fn key_derivation_matches_rfc3711_appendix_b3() {
        let p = provider();
        let master = MasterKey::new(&hex(B3_MASTER_KEY), &hex(B3_MASTER_SALT));

        let mut cipher_key = [0u8; 16];
        master.derive(p.srtp_provider, LABEL_CIPHER_KEY, &mut cipher_key);
        assert_eq!(cipher_key.to_vec(), hex("c61e7a93744f39ee10734afe3ff7a087"));

        let mut cipher_salt = [0u8; 14];
        master.derive(p.srtp_provider, LABEL_SALT, &mut cipher_salt);
        assert_eq!(cipher_salt.to_vec(), hex("30cbbc08863d8c85d49db34a9ae1"));

        // B.3 prints 94 bytes of the auth key stream: six counter blocks, the last cut short.
        let mut auth_key = [0u8; 94];
        master.derive(p.srtp_provider, LABEL_AUTH_KEY, &mut auth_key);
        assert_eq!(
            auth_key.to_vec(),
            hex(
                "cebe321f6ff7716b6fd4ab49af256a15 6d38baa48f0a0acf3c34e2359e6cdbce
                 e049646c43d9327ad175578ef7227098 6371c10c9a369ac2f94a8c5fbcdddc25
                 6d6e919a48b610ef17c2041e47403576 6b68642c59bbfc2f34db60dbdfb2"
            )
        );
    }

    #[test]
    fn gcm_rtp_matches_rfc7714_section_16() {
        let plain = hex(GCM_RTP);
        for (key, expected) in [(GCM_KEY_128, GCM_SRTP_128), (GCM_KEY_256, GCM_SRTP_256)] {
            let mut sender = gcm_sender(key);
            // Something already in the buffer must stay and not enter the packet.
            let mut out = vec![0xee; 3];
            sender.protect_rtp(&plain[..12], &plain[12..], 0x5501_a0b2, 0xf17b, &mut out);
            assert_eq!(&out[..3], &[0xee; 3]);
            assert_eq!(out[3..], hex(expected)[..], "key {key}");
        }
    }

    #[test]
    fn gcm_srtcp_matches_rfc7714_section_17() {
        let plain = hex(GCM_RTCP);
        for (key, expected) in [(GCM_KEY_128, GCM_SRTCP_128), (GCM_KEY_256, GCM_SRTCP_256)] {
            let mut sender = gcm_sender(key);
            sender.set_next_rtcp_index(GCM_SRTCP_INDEX);
            let mut out = Vec::new();
            sender.protect_rtcp(&plain, &mut out);
            assert_eq!(out, hex(expected), "key {key}");

            let mut receiver = gcm_receiver(key);
            assert_eq!(receiver.unprotect_rtcp(&out), Some(plain.clone()));

            out.clear();
            sender.protect_rtcp(&plain, &mut out);
            assert_eq!(out[out.len() - 4..], [0x80, 0x00, 0x05, 0xd5]);
        }
    }

    #[test]
    fn gcm_srtcp_authenticated_only_matches_rfc7714_section_17_3() {
        let plain = hex(GCM_RTCP);
        let mut packet = plain.clone();
        packet.extend(hex(GCM_SRTCP_128_AUTH_ONLY_TRAILER));
        assert_eq!(
            gcm_receiver(GCM_KEY_128).unprotect_rtcp(&packet),
            Some(plain)
        );

        // Not encrypted, still authenticated: a changed byte of the clear text is refused.
        packet[20] ^= 0x01;
        assert_eq!(gcm_receiver(GCM_KEY_128).unprotect_rtcp(&packet), None);
    }

    /// libsrtp's `srtp_validate` reference packet: RFC 3711 B.3's master key, SSRC
    /// 0xcafebabe, seq 0x1234, sixteen 0xab bytes of payload.
    #[test]
    fn aes_cm_rtp_matches_libsrtp_reference() {
        let p = provider();
        let material = material_with_client(&hex(B3_MASTER_KEY), &hex(B3_MASTER_SALT));
        let ours = SrtpKeys::from_keying_material(&material, SrtpProfile::AES128_CM_SHA1_80, true)
            .unwrap();
        let header = hex("800f1234decafbadcafebabe");
        let payload = [0xab; 16];
        let mut out = vec![0x11, 0x22];
        ours.sender(&p)
            .protect_rtp(&header, &payload, 0xcafe_babe, 0x1234, &mut out);
        assert_eq!(&out[..2], &[0x11, 0x22]);
        assert_eq!(
            out[2..],
            hex("800f1234decafbadcafebabe 4e55dc4ce79978d88ca4d215949d2402 b78d6acc99ea179b8dbb")[..]
        );

        let peer = SrtpKeys::from_keying_material(&material, SrtpProfile::AES128_CM_SHA1_80, false)
            .unwrap();
        let got = unprotect_rtp(&peer, &out[2..], 12, 0x1234);
        assert_eq!(got.as_deref(), Some(&payload[..]));
    }

    /// libsrtp's SRTCP reference packet: its first SRTCP index is 1, as is ours.
    #[test]
    fn aes_cm_srtcp_matches_libsrtp_reference() {
        let p = provider();
        let material = material_with_client(&hex(B3_MASTER_KEY), &hex(B3_MASTER_SALT));
        let profile = SrtpProfile::AES128_CM_SHA1_80;
        let ours = SrtpKeys::from_keying_material(&material, profile, true).unwrap();
        let plain = hex("81c8000bcafebabe abababababababababababababababab");
        let mut out = Vec::new();
        ours.sender(&p).protect_rtcp(&plain, &mut out);
        let expected =
            hex("81c8000bcafebabe 7128035be487b9bdbef89041f977a5a8 80000001 993e08cd54d6c1230798");
        assert_eq!(out, expected);

        let peer = SrtpKeys::from_keying_material(&material, profile, false).unwrap();
        assert_eq!(peer.receiver(&p).unprotect_rtcp(&expected), Some(plain));
    }

    #[test]
    fn rtp_round_trips_for_each_profile() {
        let p = provider();
        // V=2, X=1, CC=1, PT 96, seq 0xbeef, SSRC 0x01020304, one CSRC, one-byte extension.
        let header = hex("91 60 beef 00001000 01020304 0a0b0c0d bede0001 10ff0000");
        let index = (3 << 16) | 0xbeef;
        for profile in PROFILES {
            let material = material_for(profile);
            let ours = SrtpKeys::from_keying_material(&material, profile, true).unwrap();
            let peer = SrtpKeys::from_keying_material(&material, profile, false).unwrap();
            let mut sender = ours.sender(&p);
            for len in [0, 1, 17, 1200] {
                let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
                let mut out = Vec::new();
                sender.protect_rtp(&header, &payload, 0x0102_0304, index, &mut out);
                assert_eq!(out.len(), header.len() + len + tag_len(profile));
                assert_eq!(out[..header.len()], header[..], "header is sent as is");
                if len >= 17 {
                    assert_ne!(out[header.len()..header.len() + len], payload[..]);
                }
                let got = unprotect_rtp(&peer, &out, header.len(), index);
                assert_eq!(got, Some(payload), "{profile:?} len {len}");

                // The ROC is authenticated although it is not sent.
                let wrong_roc = (2 << 16) | 0xbeef;
                assert_eq!(unprotect_rtp(&peer, &out, header.len(), wrong_roc), None);
                let mut bad = out.clone();
                *bad.last_mut().unwrap() ^= 0x80;
                assert_eq!(unprotect_rtp(&peer, &bad, header.len(), index), None);
                let mut bad = out.clone();
                bad[5] ^= 0x01; // the timestamp
                assert_eq!(unprotect_rtp(&peer, &bad, header.len(), index), None);
            }
            // Our own receiving keys are the other direction's.
            let mut out = Vec::new();
            sender.protect_rtp(&header, b"payload", 0x0102_0304, index, &mut out);
            assert_eq!(unprotect_rtp(&ours, &out, header.len(), index), None);
        }
    }

    #[test]
    fn rtcp_round_trips_for_each_profile_and_refuses_forgeries_and_replays() {
        let p = provider();
        // A receiver report with one report block.
        let rtcp = hex("81c90007 01020304 0a0b0c0d 00000001 0000beef 00000010 00000000 00000000");
        for profile in PROFILES {
            let material = material_for(profile);
            let ours = SrtpKeys::from_keying_material(&material, profile, true).unwrap();
            let peer = SrtpKeys::from_keying_material(&material, profile, false).unwrap();
            let mut sender = ours.sender(&p);
            let mut receiver = peer.receiver(&p);

            let mut packets = Vec::new();
            for i in 1..=4u32 {
                let mut out = Vec::new();
                sender.protect_rtcp(&rtcp, &mut out);
                assert_eq!(out.len(), rtcp.len() + SRTCP_INDEX_LEN + tag_len(profile));
                assert_eq!(out[..8], rtcp[..8], "header and SSRC in the clear");
                assert_ne!(out[8..rtcp.len()], rtcp[8..], "encrypted");
                assert_eq!(srtcp_index_word(profile, &out), E_FLAG | i, "{profile:?}");
                packets.push(out);
            }

            // Out of order within the window is fine, each once.
            for i in [2, 0, 1] {
                let got = receiver.unprotect_rtcp(&packets[i]);
                assert_eq!(got.as_ref(), Some(&rtcp), "{profile:?} packet {i}");
            }
            for i in [0, 1, 2] {
                assert_eq!(receiver.unprotect_rtcp(&packets[i]), None, "replay {i}");
            }

            // Any flipped bit fails; a failure does not use up the index.
            let good = &packets[3];
            for at in [0, 5, 9, good.len() - tag_len(profile) - 1, good.len() - 1] {
                let mut bad = good.clone();
                bad[at] ^= 0x04;
                assert_eq!(
                    receiver.unprotect_rtcp(&bad),
                    None,
                    "{profile:?} bit at {at}"
                );
            }
            let min = RTCP_HEADER_LEN + SRTCP_INDEX_LEN + tag_len(profile);
            assert_eq!(receiver.unprotect_rtcp(&good[..min - 1]), None, "too short");
            assert_eq!(receiver.unprotect_rtcp(&good[..0]), None, "empty");
            assert_eq!(receiver.unprotect_rtcp(good).as_ref(), Some(&rtcp));

            // Our own receiver holds the peer's keys, not ours.
            assert_eq!(ours.receiver(&p).unprotect_rtcp(good), None);
        }
    }

    #[test]
    fn rtcp_index_starts_where_told() {
        let p = provider();
        let profile = SrtpProfile::AES128_CM_SHA1_80;
        let keys = SrtpKeys::from_keying_material(&material_for(profile), profile, true).unwrap();
        let mut sender = keys.sender(&p);
        let rtcp = hex("80c80001 01020304");
        sender.set_next_rtcp_index(1000);
        for expected in [1000, 1001] {
            let mut out = Vec::new();
            sender.protect_rtcp(&rtcp, &mut out);
            assert_eq!(srtcp_index_word(profile, &out), E_FLAG | expected);
        }
        // 31 bits: the index after the largest is 0.
        sender.set_next_rtcp_index(SRTCP_INDEX_MASK);
        let mut out = Vec::new();
        sender.protect_rtcp(&rtcp, &mut out);
        sender.protect_rtcp(&rtcp, &mut out);
        let second = &out[out.len() / 2..];
        assert_eq!(srtcp_index_word(profile, &out[..out.len() / 2]), u32::MAX);
        assert_eq!(srtcp_index_word(profile, second), E_FLAG);
    }

    #[test]
    fn replay_window_remembers_128_indexes() {
        let mut window = ReplayWindow::default();
        assert!(window.is_new(5));
        window.mark(5);
        assert!(!window.is_new(5));
        assert!(window.is_new(4), "older but unseen");

        window.mark(200);
        assert!(window.is_new(73), "200 - 127 is inside the window");
        assert!(!window.is_new(72), "200 - 128 is outside");
        window.mark(73);
        assert!(!window.is_new(73));
        assert!(window.is_new(74));
        assert!(!window.is_new(200));
        assert!(window.is_new(201));

        window.mark(203);
        assert!(!window.is_new(200), "seen, three behind the top");
        assert!(window.is_new(202));

        // A jump past the whole window forgets it.
        window.mark(1000);
        assert!(!window.is_new(1000));
        assert!(window.is_new(999));
        assert!(window.is_new(873));
        assert!(!window.is_new(872));
    }

    #[test]
    fn keying_material_splits_by_role_and_length() {
        for profile in PROFILES {
            let suite = Suite::of(profile).unwrap();
            let (k, s) = (suite.key_len(), suite.salt_len());
            let n = 2 * (k + s);
            let material: Vec<u8> = (0..n as u8).collect();

            let client = SrtpKeys::from_keying_material(&material, profile, true).unwrap();
            assert!(client.suite == suite);
            assert_eq!(client.local.key_len, k);
            assert_eq!(client.local.key[..k], material[..k], "client key");
            assert_eq!(client.remote.key[..k], material[k..2 * k], "server key");
            assert_eq!(
                client.local.salt[..s],
                material[2 * k..2 * k + s],
                "client salt"
            );
            assert_eq!(
                client.remote.salt[..s],
                material[2 * k + s..],
                "server salt"
            );

            let server = SrtpKeys::from_keying_material(&material, profile, false).unwrap();
            assert_eq!(server.local.key, client.remote.key);
            assert_eq!(server.local.salt, client.remote.salt);
            assert_eq!(server.remote.key, client.local.key);
            assert_eq!(server.remote.salt, client.local.salt);

            let longer = [&material[..], &[0]].concat();
            for wrong in [&material[..n - 1], &longer[..], &[][..]] {
                assert!(
                    SrtpKeys::from_keying_material(wrong, profile, true).is_none(),
                    "{profile:?} with {} bytes",
                    wrong.len()
                );
            }
        }
    }
}
