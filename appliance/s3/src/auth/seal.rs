//! Sealing secrets at rest: access keys' secrets are kept in the store's metadata only as
//! AES-256-GCM ciphertexts (NIST SP 800-38D) under the store's secrets key
//! ([`hoard::Store::secrets_key`], which lives on the metadata SSDs outside the metadata
//! region). The sealed form is base64 of a random 96-bit nonce followed by the ciphertext and
//! its 128-bit tag; the record's name is the associated data, so a sealed secret copied onto
//! another record does not open.
//!
//! Must not import anything of this crate: it is the sealing primitive the directory uses.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;

/// Seals and opens secrets with one key.
#[derive(Clone)]
pub struct Sealer {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

/// Bytes of the GCM nonce at the front of a sealed value.
const NONCE_BYTES: usize = 12;

impl Sealer {
    /// A sealer under the 256-bit `key`.
    pub fn new(key: &[u8; 32]) -> Self {
        Sealer {
            cipher: Aes256Gcm::new(key.into()),
        }
    }

    /// Seals `secret`, bound to `record` (the name it is stored under).
    pub fn seal(&self, secret: &str, record: &str) -> String {
        let mut nonce = [0u8; NONCE_BYTES];
        nonce.copy_from_slice(&uuid::Uuid::new_v4().as_bytes()[..NONCE_BYTES]);
        let payload = Payload {
            msg: secret.as_bytes(),
            aad: record.as_bytes(),
        };
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), payload)
            .expect("AES-GCM encryption of a short secret cannot fail");
        base64::engine::general_purpose::STANDARD.encode([&nonce[..], &sealed].concat())
    }

    /// Opens a value [`Sealer::seal`] made for `record`.
    ///
    /// Errors: a message when it is not base64, too short, sealed under another key or for
    /// another record, or altered.
    pub fn open(&self, sealed: &str, record: &str) -> Result<String, String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .map_err(|e| format!("sealed secret of {record} is not base64: {e}"))?;
        if bytes.len() < NONCE_BYTES + 16 {
            return Err(format!("sealed secret of {record} is too short"));
        }
        let (nonce, body) = bytes.split_at(NONCE_BYTES);
        let payload = Payload {
            msg: body,
            aad: record.as_bytes(),
        };
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), payload)
            .map_err(|_| {
                format!("sealed secret of {record} does not open under this store's key")
            })?;
        String::from_utf8(plain).map_err(|_| format!("secret of {record} is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_for_their_record_and_key() {
        let s = Sealer::new(&[7; 32]);
        let sealed = s.seal("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "iam/k/AKID");
        assert!(!sealed.contains("wJalr"));
        assert_eq!(
            s.open(&sealed, "iam/k/AKID").unwrap(),
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
        );
        assert!(s.open(&sealed, "iam/k/OTHER").is_err());
        assert!(Sealer::new(&[8; 32]).open(&sealed, "iam/k/AKID").is_err());
        // Two seals of one secret differ (fresh nonces).
        assert_ne!(
            sealed,
            s.seal("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "iam/k/AKID")
        );
        let mut tampered = base64::engine::general_purpose::STANDARD
            .decode(&sealed)
            .unwrap();
        *tampered.last_mut().unwrap() ^= 1;
        let tampered = base64::engine::general_purpose::STANDARD.encode(tampered);
        assert!(s.open(&tampered, "iam/k/AKID").is_err());
    }
}
