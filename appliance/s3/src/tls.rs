//! TLS on the front door (rustls with the `ring` provider): TLS 1.3 and 1.2 only, with
//! rustls' default suites (AEAD only: AES-GCM and ChaCha20-Poly1305, forward secrecy, no CBC,
//! RC4 or export suites), ALPN `http/1.1`.
//!
//! The certificate chain and key are PEM, read from a [`CertSource`]. [`Tls`] keeps the
//! config in force; a reload (SIGHUP, or `POST /_hoard/tls/reload`) or an install
//! (`PUT /_hoard/tls` with a PEM bundle) swaps it for the connections accepted from then on,
//! and connections already open keep theirs: nothing is dropped. A bundle that does not parse,
//! or whose key does not match its certificate, is refused and the config in force stays.
//!
//! Must not import the operations: the server accepts with it, admin requests reload it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use sha2::{Digest, Sha256};

/// Where the certificate chain and key are kept.
#[derive(Clone)]
pub enum CertSource {
    /// Two PEM files (`hoard serve --tls-cert --tls-key`).
    Files {
        /// The certificate chain, leaf first.
        cert: PathBuf,
        /// The private key (PKCS#8, PKCS#1 or SEC1).
        key: PathBuf,
    },
    /// Given by the caller (the appliance keeps its pair sealed in the store); an install
    /// replaces it in memory and `persist` keeps it.
    Memory {
        /// Certificate chain PEM.
        cert_pem: Vec<u8>,
        /// Private key PEM.
        key_pem: Vec<u8>,
        /// Keeps an installed pair (cert PEM, key PEM) where the next start finds it.
        persist: Arc<dyn Fn(&[u8], &[u8]) -> Result<(), String> + Send + Sync>,
    },
}

impl std::fmt::Debug for CertSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CertSource::Files { cert, key } => f
                .debug_struct("Files")
                .field("cert", cert)
                .field("key", key)
                .finish(),
            CertSource::Memory { .. } => f.write_str("Memory"),
        }
    }
}

/// The TLS config in force and where it comes from.
#[derive(Debug)]
pub struct Tls {
    source: RwLock<CertSource>,
    current: RwLock<(Arc<ServerConfig>, String)>,
}

/// A certificate chain and key, parsed and checked against each other.
struct Pair {
    config: ServerConfig,
    fingerprint: String,
}

fn parse_pair(cert_pem: &[u8], key_pem: &[u8]) -> Result<Pair, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("the certificate PEM does not parse: {e}"))?;
    let Some(leaf) = certs.first() else {
        return Err("the certificate PEM holds no CERTIFICATE".into());
    };
    let fingerprint = fingerprint_of(leaf);
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| format!("the key PEM holds no private key that parses: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("the key does not fit the certificate: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Pair {
        config,
        fingerprint,
    })
}

/// The SHA-256 fingerprint of a certificate, as `openssl x509 -fingerprint -sha256` shows it
/// (`AB:CD:...`).
pub fn fingerprint_of(cert: &CertificateDer<'_>) -> String {
    Sha256::digest(cert.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn read_source(source: &CertSource) -> Result<(Vec<u8>, Vec<u8>), String> {
    match source {
        CertSource::Files { cert, key } => {
            let read = |p: &Path| {
                std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
            };
            Ok((read(cert)?, read(key)?))
        }
        CertSource::Memory {
            cert_pem, key_pem, ..
        } => Ok((cert_pem.clone(), key_pem.clone())),
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a reader sees the old
/// file or the new one, never a part.
fn replace_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("new");
    let fail = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(fail)?;
    f.write_all(bytes).map_err(fail)?;
    f.sync_all().map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}

impl Tls {
    /// TLS from `source`.
    ///
    /// Errors: a file that cannot be read, PEM that does not parse, a key that does not fit.
    pub fn new(source: CertSource) -> Result<Tls, String> {
        let (cert, key) = read_source(&source)?;
        let pair = parse_pair(&cert, &key)?;
        Ok(Tls {
            source: RwLock::new(source),
            current: RwLock::new((Arc::new(pair.config), pair.fingerprint)),
        })
    }

    /// The acceptor for a new connection, with the config in force.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.current.read().0.clone())
    }

    /// The SHA-256 fingerprint of the certificate in force.
    pub fn fingerprint(&self) -> String {
        self.current.read().1.clone()
    }

    /// Reads the source again and puts what it holds in force; returns the new fingerprint.
    ///
    /// Errors: as [`Tls::new`]; the config in force stays.
    pub fn reload(&self) -> Result<String, String> {
        let (cert, key) = read_source(&self.source.read())?;
        let pair = parse_pair(&cert, &key)?;
        *self.current.write() = (Arc::new(pair.config), pair.fingerprint.clone());
        Ok(pair.fingerprint)
    }

    /// Installs a PEM bundle holding the certificate chain (leaf first) and its private key:
    /// checks it, keeps it in the source (files replaced atomically, key 0600), puts it in
    /// force. Returns the new fingerprint.
    ///
    /// Errors: a bundle without a certificate or a key, a key that does not fit, a source
    /// that cannot be written; the config in force stays.
    pub fn install(&self, bundle: &[u8]) -> Result<String, String> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(bundle)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("the bundle's certificates do not parse: {e}"))?;
        let key = PrivateKeyDer::from_pem_slice(bundle)
            .map_err(|e| format!("the bundle holds no private key that parses: {e}"))?;
        let cert_pem: Vec<u8> = certs
            .iter()
            .flat_map(|c| pem_block("CERTIFICATE", c.as_ref()).into_bytes())
            .collect();
        let key_label = match &key {
            PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
            PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
            _ => "PRIVATE KEY",
        };
        let key_pem = pem_block(key_label, key.secret_der()).into_bytes();
        let pair = parse_pair(&cert_pem, &key_pem)?;
        {
            let mut source = self.source.write();
            match &mut *source {
                CertSource::Files { cert, key } => {
                    replace_file(key, &key_pem, 0o600)?;
                    replace_file(cert, &cert_pem, 0o644)?;
                }
                CertSource::Memory {
                    cert_pem: c,
                    key_pem: k,
                    persist,
                } => {
                    persist(&cert_pem, &key_pem)?;
                    *c = cert_pem.clone();
                    *k = key_pem.clone();
                }
            }
        }
        *self.current.write() = (Arc::new(pair.config), pair.fingerprint.clone());
        Ok(pair.fingerprint)
    }
}

/// One PEM block (RFC 7468): base64 in lines of 64.
fn pem_block(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
