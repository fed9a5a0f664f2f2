//! Sealed cookie values: AES-256-GCM with the cookie name as associated data, so a value
//! cannot be moved from one cookie to another. The first key seals, every key opens, which
//! lets operators rotate keys without logging anyone out.

use aes_gcm::aead::{Aead, AeadInPlace, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;

use crate::config::SessionKey;

/// Format version, so the layout can change without misreading old cookies.
const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

pub struct Sealer {
    ciphers: Vec<Aes256Gcm>,
}

impl Sealer {
    pub fn new(keys: &[SessionKey]) -> Self {
        let ciphers = keys.iter().map(|k| Aes256Gcm::new(&k.0.into())).collect();
        Sealer { ciphers }
    }

    /// Encrypts `plaintext` for the cookie `name`; the result is cookie-safe base64url.
    pub fn seal(&self, name: &str, plaintext: &[u8]) -> String {
        let Some(cipher) = self.ciphers.first() else {
            return String::new();
        };
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let ciphertext = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: name.as_bytes(),
                },
            )
            .unwrap_or_default();
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// Decrypts a value sealed for cookie `name`; `None` for anything tampered, truncated,
    /// foreign or sealed with a key no longer configured.
    pub fn open(&self, name: &str, sealed: &str) -> Option<Vec<u8>> {
        let mut raw = URL_SAFE_NO_PAD.decode(sealed.trim()).ok()?;
        if raw.first() != Some(&VERSION) || raw.len() < 1 + NONCE_LEN + TAG_LEN {
            return None;
        }
        // Decrypted in place: this runs on every request of a signed-in user.
        let body_end = raw.len() - TAG_LEN;
        let (head, rest) = raw.split_at_mut(1 + NONCE_LEN);
        let (body, tag) = rest.split_at_mut(body_end - 1 - NONCE_LEN);
        let nonce = Nonce::from_slice(&head[1..]);
        let tag = Tag::from_slice(tag);
        // A failed check leaves the buffer untouched, so the next key sees the ciphertext.
        self.ciphers.iter().find(|cipher| {
            cipher
                .decrypt_in_place_detached(nonce, name.as_bytes(), body, tag)
                .is_ok()
        })?;
        raw.copy_within(1 + NONCE_LEN..body_end, 0);
        raw.truncate(body_end - 1 - NONCE_LEN);
        Some(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SessionKey {
        SessionKey([byte; 32])
    }

    #[test]
    fn round_trip() {
        let sealer = Sealer::new(&[key(1)]);
        let sealed = sealer.seal("_sso_session", b"hello");
        assert_eq!(sealer.open("_sso_session", &sealed).unwrap(), b"hello");
        assert_ne!(
            sealer.seal("_sso_session", b"hello"),
            sealed,
            "fresh nonce each time"
        );
    }

    #[test]
    fn cookie_name_is_bound() {
        let sealer = Sealer::new(&[key(1)]);
        let sealed = sealer.seal("a", b"x");
        assert!(sealer.open("b", &sealed).is_none());
    }

    #[test]
    fn rotation_old_keys_still_open() {
        let old = Sealer::new(&[key(1)]);
        let sealed = old.seal("s", b"payload");
        let rotated = Sealer::new(&[key(2), key(1)]);
        assert_eq!(rotated.open("s", &sealed).unwrap(), b"payload");
        let removed = Sealer::new(&[key(2)]);
        assert!(removed.open("s", &sealed).is_none());
    }

    #[test]
    fn every_single_bit_flip_is_rejected() {
        let sealer = Sealer::new(&[key(7)]);
        let sealed = sealer.seal("s", b"some session payload");
        let raw = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        for i in 0..raw.len() * 8 {
            let mut flipped = raw.clone();
            flipped[i / 8] ^= 1 << (i % 8);
            assert!(
                sealer
                    .open("s", &URL_SAFE_NO_PAD.encode(&flipped))
                    .is_none(),
                "bit {i}"
            );
        }
    }

    #[test]
    fn garbage_and_truncation_are_rejected() {
        let sealer = Sealer::new(&[key(7)]);
        let sealed = sealer.seal("s", b"payload");
        for bad in [
            "",
            "!!!",
            "AQ",
            &sealed[..sealed.len() - 3],
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert!(sealer.open("s", bad).is_none(), "{bad}");
        }
    }
}
