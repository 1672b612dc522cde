//! str0m's SRTP AES-GCM through `ring`: the ciphers every `Rtc` (publishers' intake,
//! viewers' handshakes) decrypts and encrypts with when the browser picks an AEAD profile.
//!
//! Why: str0m takes its SRTP ciphers from the crypto provider, and the OpenSSL one
//! re-initialises its cipher context (key schedule, parameter lookups) for every packet;
//! profiled on a publisher's intake that set-up cost more than the decryption. A `ring`
//! key is expanded once when str0m creates the cipher, and each packet is then one
//! `open`/`seal`. The same reason the lean sender uses `ring` (see [`super::srtp`]).
//!
//! Owns: [`with_ring_gcm`], which keeps a provider's AES-CM suite, key derivation and
//! hashes and swaps in the two GCM suites here. Must not: know RTP; str0m passes the
//! header as the associated data and the IV it computed.

use ring::aead;
use str0m::crypto::{
    AeadAes128Gcm, AeadAes128GcmCipher, AeadAes256Gcm, AeadAes256GcmCipher, CryptoError,
    CryptoProvider, SrtpProvider, SupportedAeadAes128Gcm, SupportedAeadAes256Gcm,
    SupportedAes128CmSha1_80,
};

/// GCM's tag, the same for both key sizes (RFC 7714 §14.2).
const TAG_LEN: usize = 16;

/// `base` with its SRTP AES-GCM suites done by `ring`; everything else as it was.
pub(super) fn with_ring_gcm(base: CryptoProvider) -> CryptoProvider {
    // The provider holds `&'static` parts; this is made once per server.
    let srtp: &'static RingGcmSrtp = Box::leak(Box::new(RingGcmSrtp {
        inner: base.srtp_provider,
    }));
    CryptoProvider {
        srtp_provider: srtp,
        ..base
    }
}

#[derive(Debug)]
struct RingGcmSrtp {
    inner: &'static dyn SrtpProvider,
}

impl SrtpProvider for RingGcmSrtp {
    fn aes_128_cm_sha1_80(&self) -> &'static dyn SupportedAes128CmSha1_80 {
        self.inner.aes_128_cm_sha1_80()
    }

    fn aead_aes_128_gcm(&self) -> &'static dyn SupportedAeadAes128Gcm {
        &RingGcm128
    }

    fn aead_aes_256_gcm(&self) -> &'static dyn SupportedAeadAes256Gcm {
        &RingGcm256
    }

    fn srtp_aes_128_ecb_round(&self, key: &[u8], input: &[u8], output: &mut [u8]) {
        self.inner.srtp_aes_128_ecb_round(key, input, output);
    }

    fn srtp_aes_256_ecb_round(&self, key: &[u8], input: &[u8], output: &mut [u8]) {
        self.inner.srtp_aes_256_ecb_round(key, input, output);
    }
}

#[derive(Debug)]
struct RingGcm128;

#[derive(Debug)]
struct RingGcm256;

impl SupportedAeadAes128Gcm for RingGcm128 {
    fn create_cipher(&self, key: [u8; 16], _encrypt: bool) -> Box<dyn AeadAes128GcmCipher> {
        Box::new(GcmCipher::new(&aead::AES_128_GCM, &key))
    }
}

impl SupportedAeadAes256Gcm for RingGcm256 {
    fn create_cipher(&self, key: [u8; 32], _encrypt: bool) -> Box<dyn AeadAes256GcmCipher> {
        Box::new(GcmCipher::new(&aead::AES_256_GCM, &key))
    }
}

/// One direction's key, expanded once; `aad` is room to join str0m's associated-data
/// pieces (ring takes one slice), kept from packet to packet.
struct GcmCipher {
    key: aead::LessSafeKey,
    aad: Vec<u8>,
}

impl std::fmt::Debug for GcmCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("GcmCipher")
            .field("algorithm", self.key.algorithm())
            .finish_non_exhaustive()
    }
}

fn fail(what: &str) -> CryptoError {
    CryptoError::Other(what.to_string())
}

impl GcmCipher {
    fn new(algorithm: &'static aead::Algorithm, key: &[u8]) -> Self {
        // The key arrays are the algorithm's key length: this cannot fail.
        let key = aead::UnboundKey::new(algorithm, key).expect("GCM key length");
        GcmCipher {
            key: aead::LessSafeKey::new(key),
            aad: Vec::new(),
        }
    }

    /// `output` gets the ciphertext of `input` and the tag after it.
    fn seal(
        &mut self,
        iv: &[u8; 12],
        aad: &[u8],
        input: &[u8],
        output: &mut [u8],
    ) -> Result<(), CryptoError> {
        let n = input.len();
        if output.len() < n + TAG_LEN {
            return Err(fail("SRTP output too short"));
        }
        output[..n].copy_from_slice(input);
        let nonce = aead::Nonce::assume_unique_for_key(*iv);
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce, aead::Aad::from(aad), &mut output[..n])
            .map_err(|_| fail("SRTP encryption failed"))?;
        output[n..n + TAG_LEN].copy_from_slice(tag.as_ref());
        Ok(())
    }

    /// `input` is the ciphertext with its tag; `output` gets the plaintext, whose length
    /// is returned. Fails when the tag does not match (a forged or damaged packet).
    fn open(
        &mut self,
        iv: &[u8; 12],
        aads: &[&[u8]],
        input: &[u8],
        output: &mut [u8],
    ) -> Result<usize, CryptoError> {
        let Some(n) = input.len().checked_sub(TAG_LEN) else {
            return Err(fail("SRTP packet shorter than its tag"));
        };
        if output.len() < n {
            return Err(fail("SRTP output too short"));
        }
        let (ciphertext, tag) = input.split_at(n);
        let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| fail("SRTP tag"))?;
        let aad: &[u8] = if let [one] = aads {
            one
        } else {
            self.aad.clear();
            for piece in aads {
                self.aad.extend_from_slice(piece);
            }
            &self.aad
        };
        output[..n].copy_from_slice(ciphertext);
        let nonce = aead::Nonce::assume_unique_for_key(*iv);
        self.key
            .open_in_place_separate_tag(
                nonce,
                aead::Aad::from(aad),
                aead::Tag::from(tag),
                &mut output[..n],
                0..,
            )
            .map_err(|_| fail("SRTP authentication failed"))?;
        Ok(n)
    }
}

impl AeadAes128GcmCipher for GcmCipher {
    fn encrypt(
        &mut self,
        iv: &[u8; AeadAes128Gcm::IV_LEN],
        aad: &[u8],
        input: &[u8],
        output: &mut [u8],
    ) -> Result<(), CryptoError> {
        self.seal(iv, aad, input, output)
    }

    fn decrypt(
        &mut self,
        iv: &[u8; AeadAes128Gcm::IV_LEN],
        aads: &[&[u8]],
        input: &[u8],
        output: &mut [u8],
    ) -> Result<usize, CryptoError> {
        self.open(iv, aads, input, output)
    }
}

impl AeadAes256GcmCipher for GcmCipher {
    fn encrypt(
        &mut self,
        iv: &[u8; AeadAes256Gcm::IV_LEN],
        aad: &[u8],
        input: &[u8],
        output: &mut [u8],
    ) -> Result<(), CryptoError> {
        self.seal(iv, aad, input, output)
    }

    fn decrypt(
        &mut self,
        iv: &[u8; AeadAes256Gcm::IV_LEN],
        aads: &[&[u8]],
        input: &[u8],
        output: &mut [u8],
    ) -> Result<usize, CryptoError> {
        self.open(iv, aads, input, output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn openssl() -> &'static dyn SrtpProvider {
        str0m::crypto::from_feature_flags().srtp_provider
    }

    fn ring() -> &'static dyn SrtpProvider {
        with_ring_gcm(str0m::crypto::from_feature_flags()).srtp_provider
    }

    /// What str0m's OpenSSL ciphers seal, ours open, and the other way round, for both
    /// key sizes and a two-piece associated data (SRTCP's shape); a flipped bit in the
    /// ciphertext, the tag or the associated data fails.
    #[test]
    fn ring_gcm_agrees_with_openssl_both_ways_and_rejects_forgeries() {
        type Seal = Box<dyn FnMut(&[u8], &mut [u8])>;
        type Open = Box<dyn FnMut(&[&[u8]], &[u8], &mut [u8]) -> Result<usize, CryptoError>>;
        let iv = [7u8; 12];
        let header = [0x80u8, 0x60, 0, 1, 0, 0, 0, 2, 0xde, 0xad, 0xbe, 0xef];
        let payload: Vec<u8> = (0..1200u32).map(|i| (i * 31 % 251) as u8).collect();
        let pairs: Vec<(&str, Seal, Open, Seal, Open)> = vec![
            {
                let mut a = openssl().aead_aes_128_gcm().create_cipher([3; 16], true);
                let mut b = ring().aead_aes_128_gcm().create_cipher([3; 16], false);
                let mut c = ring().aead_aes_128_gcm().create_cipher([3; 16], true);
                let mut d = openssl().aead_aes_128_gcm().create_cipher([3; 16], false);
                (
                    "128",
                    Box::new(move |i: &[u8], o: &mut [u8]| a.encrypt(&iv, &header, i, o).unwrap()),
                    Box::new(move |aads: &[&[u8]], i: &[u8], o: &mut [u8]| {
                        b.decrypt(&iv, aads, i, o)
                    }),
                    Box::new(move |i: &[u8], o: &mut [u8]| c.encrypt(&iv, &header, i, o).unwrap()),
                    Box::new(move |aads: &[&[u8]], i: &[u8], o: &mut [u8]| {
                        d.decrypt(&iv, aads, i, o)
                    }),
                )
            },
            {
                let mut a = openssl().aead_aes_256_gcm().create_cipher([5; 32], true);
                let mut b = ring().aead_aes_256_gcm().create_cipher([5; 32], false);
                let mut c = ring().aead_aes_256_gcm().create_cipher([5; 32], true);
                let mut d = openssl().aead_aes_256_gcm().create_cipher([5; 32], false);
                (
                    "256",
                    Box::new(move |i: &[u8], o: &mut [u8]| a.encrypt(&iv, &header, i, o).unwrap()),
                    Box::new(move |aads: &[&[u8]], i: &[u8], o: &mut [u8]| {
                        b.decrypt(&iv, aads, i, o)
                    }),
                    Box::new(move |i: &[u8], o: &mut [u8]| c.encrypt(&iv, &header, i, o).unwrap()),
                    Box::new(move |aads: &[&[u8]], i: &[u8], o: &mut [u8]| {
                        d.decrypt(&iv, aads, i, o)
                    }),
                )
            },
        ];
        for (name, mut ossl_seal, mut ring_open, mut ring_seal, mut ossl_open) in pairs {
            for (seal, open) in [
                (&mut ossl_seal, &mut ring_open),
                (&mut ring_seal, &mut ossl_open),
            ] {
                let mut sealed = vec![0u8; payload.len() + TAG_LEN];
                seal(&payload, &mut sealed);
                assert_ne!(
                    &sealed[..payload.len()],
                    &payload[..],
                    "{name}: not encrypted"
                );
                let mut out = vec![0u8; payload.len()];
                // The header whole, and split in two pieces as SRTCP passes it.
                for aads in [&[&header[..]][..], &[&header[..4], &header[4..]][..]] {
                    out.fill(0);
                    let n = open(aads, &sealed, &mut out).expect("opens");
                    assert_eq!(&out[..n], &payload[..], "{name}");
                }
                for flip in [0, payload.len() - 1, payload.len(), sealed.len() - 1] {
                    let mut forged = sealed.clone();
                    forged[flip] ^= 1;
                    assert!(
                        open(&[&header], &forged, &mut out).is_err(),
                        "{name} byte {flip}"
                    );
                }
                let mut other = header;
                other[11] ^= 1;
                assert!(open(&[&other], &sealed, &mut out).is_err(), "{name}: aad");
            }
        }
    }

    /// Short input and short output are errors, never panics.
    #[test]
    fn short_buffers_are_errors() {
        let mut c = ring().aead_aes_128_gcm().create_cipher([1; 16], false);
        let mut out = [0u8; 64];
        assert!(c
            .decrypt(&[0; 12], &[&[0; 12]], &[0; 15], &mut out)
            .is_err());
        assert!(c
            .decrypt(&[0; 12], &[&[0; 12]], &[0; 40], &mut out[..10])
            .is_err());
        let mut e = ring().aead_aes_128_gcm().create_cipher([1; 16], true);
        assert!(e
            .encrypt(&[0; 12], &[0; 12], &[0; 40], &mut out[..50])
            .is_err());
        assert!(e
            .encrypt(&[0; 12], &[0; 12], &[0; 40], &mut out[..56])
            .is_ok());
    }
}
