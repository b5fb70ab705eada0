//! Request bodies: from the async HTTP body to a verified blocking [`Read`] the engine consumes.
//!
//! Layers, outermost last: [`ChannelReader`] (bytes pumped from the connection, with an idle
//! timeout), [`AwsChunkedReader`] (decodes `aws-chunked`, verifying each chunk signature and the
//! trailer), [`Sha256Reader`] (a signed payload's SHA-256), [`ChecksumReader`]
//! (`x-amz-checksum-*`, from a header or the trailer). Each verifier fails the read that would
//! have returned end-of-file, so the engine never commits an object whose body did not verify.

use std::io::{self, BufRead, BufReader, Read};
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use parking_lot::Mutex;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::auth::sigv4::{chunk_signature, trailer_signature};
use super::auth::StreamingAuth;
use super::error::S3Error;
use crate::s3_error;

/// Largest `aws-chunked` chunk accepted (SDKs send 64 KiB to 1 MiB).
pub const MAX_AWS_CHUNK_BYTES: usize = 16 << 20;
/// Longest chunk header or trailer line.
const MAX_LINE_BYTES: usize = 4096;
/// Most trailer lines.
const MAX_TRAILER_LINES: usize = 16;

fn fail(e: S3Error) -> io::Error {
    e.into_io()
}

/// Reads body bytes pumped from the connection over a bounded channel.
pub struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl ChannelReader {
    /// Reads what arrives on `rx`; a closed channel is end-of-body.
    pub fn new(rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>) -> Self {
        ChannelReader {
            rx,
            current: Bytes::new(),
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Err(e)) => return Err(e),
                Some(Ok(b)) => self.current = b,
            }
        }
        let n = out.len().min(self.current.len());
        out[..n].copy_from_slice(&self.current[..n]);
        bytes::Buf::advance(&mut self.current, n);
        Ok(n)
    }
}

/// Trailing headers of an `aws-chunked` body, filled when the body ends.
pub type Trailers = Arc<Mutex<Vec<(String, String)>>>;

/// Decodes an `aws-chunked` body (`<hex size>[;chunk-signature=<sig>]\r\n<data>\r\n` ... `0...`,
/// then optional trailers), verifying signatures when `auth.signed`.
pub struct AwsChunkedReader<R: Read> {
    inner: BufReader<R>,
    auth: StreamingAuth,
    previous_signature: String,
    chunk: Vec<u8>,
    pos: usize,
    done: bool,
    trailers: Trailers,
    decoded_bytes: u64,
    expected_bytes: Option<u64>,
}

impl<R: Read> AwsChunkedReader<R> {
    /// Decodes `inner`; `expected_bytes` is `x-amz-decoded-content-length`.
    pub fn new(
        inner: R,
        auth: StreamingAuth,
        expected_bytes: Option<u64>,
        trailers: Trailers,
    ) -> Self {
        let previous_signature = auth.seed_signature.clone();
        AwsChunkedReader {
            inner: BufReader::with_capacity(64 * 1024, inner),
            auth,
            previous_signature,
            chunk: Vec::new(),
            pos: 0,
            done: false,
            trailers,
            decoded_bytes: 0,
            expected_bytes,
        }
    }

    fn line(&mut self) -> io::Result<String> {
        let mut buf = Vec::new();
        let n = (&mut self.inner)
            .take(MAX_LINE_BYTES as u64 + 2)
            .read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Err(fail(s3_error!(
                IncompleteBody,
                BAD_REQUEST,
                "the aws-chunked body ended before its final chunk"
            )));
        }
        if buf.last() != Some(&b'\n') {
            return Err(fail(s3_error!(
                InvalidRequest,
                BAD_REQUEST,
                "aws-chunked line is longer than {MAX_LINE_BYTES} bytes"
            )));
        }
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        String::from_utf8(buf).map_err(|_| {
            fail(s3_error!(
                InvalidRequest,
                BAD_REQUEST,
                "aws-chunked line is not UTF-8"
            ))
        })
    }

    fn malformed(what: &str) -> io::Error {
        fail(s3_error!(
            InvalidRequest,
            BAD_REQUEST,
            "malformed aws-chunked body: {what}"
        ))
    }

    fn next_chunk(&mut self) -> io::Result<()> {
        let header = self.line()?;
        let (size_hex, ext) = header.split_once(';').unwrap_or((header.as_str(), ""));
        let size = usize::from_str_radix(size_hex.trim(), 16)
            .map_err(|_| Self::malformed("chunk size is not hex"))?;
        if size > MAX_AWS_CHUNK_BYTES {
            return Err(Self::malformed("chunk larger than 16 MiB"));
        }
        self.chunk.resize(size, 0);
        self.inner.read_exact(&mut self.chunk).map_err(|_| {
            fail(s3_error!(
                IncompleteBody,
                BAD_REQUEST,
                "the aws-chunked body ended inside a chunk"
            ))
        })?;
        self.pos = 0;
        if self.auth.signed {
            let signature = ext
                .split(';')
                .find_map(|e| e.trim().strip_prefix("chunk-signature="))
                .ok_or_else(|| Self::malformed("chunk without chunk-signature"))?;
            let expected = chunk_signature(
                &self.auth,
                &self.previous_signature,
                &hex::encode(Sha256::digest(&self.chunk)),
            );
            if !super::auth::signatures_equal(&expected, signature) {
                return Err(fail(super::auth::signature_mismatch()));
            }
            self.previous_signature = expected;
        }
        if size > 0 {
            if !self.line()?.is_empty() {
                return Err(Self::malformed("chunk data not followed by CRLF"));
            }
            self.decoded_bytes += size as u64;
            return Ok(());
        }
        self.finish()
    }

    fn finish(&mut self) -> io::Result<()> {
        self.done = true;
        if self.auth.trailer {
            let mut lines = Vec::new();
            loop {
                let line = self.line()?;
                if line.is_empty() {
                    break;
                }
                if lines.len() == MAX_TRAILER_LINES {
                    return Err(Self::malformed("too many trailer lines"));
                }
                let (name, value) = line
                    .split_once(':')
                    .ok_or_else(|| Self::malformed("trailer line without ':'"))?;
                lines.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
            }
            if self.auth.signed {
                let signature = lines
                    .iter()
                    .find(|(n, _)| n == "x-amz-trailer-signature")
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| {
                        Self::malformed("signed trailer without x-amz-trailer-signature")
                    })?;
                let canonical: String = lines
                    .iter()
                    .filter(|(n, _)| n != "x-amz-trailer-signature")
                    .map(|(n, v)| format!("{n}:{v}\n"))
                    .collect();
                let expected = trailer_signature(&self.auth, &self.previous_signature, &canonical);
                if !super::auth::signatures_equal(&expected, &signature) {
                    return Err(fail(super::auth::signature_mismatch()));
                }
            }
            *self.trailers.lock() = lines;
        } else {
            // The final CRLF; some clients omit it at the very end.
            let mut rest = [0u8; 2];
            let _ = self.inner.read(&mut rest)?;
        }
        if let Some(expected) = self.expected_bytes {
            if expected != self.decoded_bytes {
                return Err(fail(s3_error!(
                    IncompleteBody,
                    BAD_REQUEST,
                    "x-amz-decoded-content-length is {expected} but the body decoded to {} bytes",
                    self.decoded_bytes
                )));
            }
        }
        Ok(())
    }
}

impl<R: Read> Read for AwsChunkedReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            if self.done {
                return Ok(0);
            }
            self.next_chunk()?;
        }
        let n = out.len().min(self.chunk.len() - self.pos);
        out[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Verifies a signed payload's SHA-256 (`x-amz-content-sha256: <hex>`) at end of body.
pub struct Sha256Reader<R: Read> {
    inner: R,
    hasher: Sha256,
    expected_hex: String,
}

impl<R: Read> Sha256Reader<R> {
    /// Checks that `inner` hashes to `expected_hex`.
    pub fn new(inner: R, expected_hex: String) -> Self {
        Sha256Reader {
            inner,
            hasher: Sha256::new(),
            expected_hex,
        }
    }
}

impl<R: Read> Read for Sha256Reader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(out)?;
        if n == 0 && !out.is_empty() {
            let actual = hex::encode(self.hasher.clone().finalize());
            if actual != self.expected_hex {
                return Err(fail(s3_error!(
                    XAmzContentSHA256Mismatch,
                    BAD_REQUEST,
                    "the provided x-amz-content-sha256 {} does not match the body's {actual}",
                    self.expected_hex
                )));
            }
        }
        self.hasher.update(&out[..n]);
        Ok(n)
    }
}

/// A flexible checksum algorithm (`x-amz-checksum-*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChecksumAlgorithm {
    /// CRC-32 (ISO-HDLC), big-endian, base64.
    Crc32,
    /// CRC-32C (Castagnoli).
    Crc32c,
    /// CRC-64/NVME.
    Crc64Nvme,
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
}

impl ChecksumAlgorithm {
    /// Every algorithm.
    pub const ALL: [ChecksumAlgorithm; 5] = [
        Self::Crc32,
        Self::Crc32c,
        Self::Crc64Nvme,
        Self::Sha1,
        Self::Sha256,
    ];

    /// S3's name (`CRC32`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Crc32 => "CRC32",
            Self::Crc32c => "CRC32C",
            Self::Crc64Nvme => "CRC64NVME",
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
        }
    }

    /// The header carrying it (`x-amz-checksum-crc32`, ...).
    pub fn header(self) -> String {
        format!("x-amz-checksum-{}", self.name().to_ascii_lowercase())
    }

    /// Parses S3's name, case-insensitively.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(s))
    }
}

enum Hasher {
    Crc32(crc32fast::Hasher),
    Crc32c(u32),
    Crc64(crc64fast_nvme::Digest),
    Sha1(Sha1),
    Sha256(Sha256),
}

impl Hasher {
    fn new(a: ChecksumAlgorithm) -> Self {
        match a {
            ChecksumAlgorithm::Crc32 => Hasher::Crc32(crc32fast::Hasher::new()),
            ChecksumAlgorithm::Crc32c => Hasher::Crc32c(0),
            ChecksumAlgorithm::Crc64Nvme => Hasher::Crc64(crc64fast_nvme::Digest::new()),
            ChecksumAlgorithm::Sha1 => Hasher::Sha1(Sha1::new()),
            ChecksumAlgorithm::Sha256 => Hasher::Sha256(Sha256::new()),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Crc32(h) => h.update(data),
            Hasher::Crc32c(c) => *c = crc32c::crc32c_append(*c, data),
            Hasher::Crc64(h) => h.write(data),
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
        }
    }

    fn base64(&self) -> String {
        let bytes: Vec<u8> = match self {
            Hasher::Crc32(h) => h.clone().finalize().to_be_bytes().to_vec(),
            Hasher::Crc32c(c) => c.to_be_bytes().to_vec(),
            Hasher::Crc64(h) => h.sum64().to_be_bytes().to_vec(),
            Hasher::Sha1(h) => h.clone().finalize().to_vec(),
            Hasher::Sha256(h) => h.clone().finalize().to_vec(),
        };
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }
}

/// Where a checksum's expected value comes from.
pub enum Expected {
    /// A request header.
    Header(String),
    /// The `aws-chunked` trailer (filled when the body ends).
    Trailer(Trailers),
}

/// Verifies an `x-amz-checksum-*` value at end of body; the verified value is left in `verified`.
pub struct ChecksumReader<R: Read> {
    inner: R,
    algorithm: ChecksumAlgorithm,
    hasher: Hasher,
    expected: Expected,
    verified: Arc<Mutex<Option<(String, String)>>>,
}

impl<R: Read> ChecksumReader<R> {
    /// Checks `inner` against `expected` with `algorithm`; on success stores (name, base64) in
    /// `verified`.
    pub fn new(
        inner: R,
        algorithm: ChecksumAlgorithm,
        expected: Expected,
        verified: Arc<Mutex<Option<(String, String)>>>,
    ) -> Self {
        ChecksumReader {
            inner,
            algorithm,
            hasher: Hasher::new(algorithm),
            expected,
            verified,
        }
    }
}

impl<R: Read> Read for ChecksumReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(out)?;
        if n == 0 && !out.is_empty() {
            let header = self.algorithm.header();
            let expected = match &self.expected {
                Expected::Header(v) => Some(v.clone()),
                Expected::Trailer(t) => t
                    .lock()
                    .iter()
                    .find(|(n, _)| *n == header)
                    .map(|(_, v)| v.clone()),
            };
            let Some(expected) = expected else {
                return Err(fail(s3_error!(
                    InvalidRequest,
                    BAD_REQUEST,
                    "the trailer promised {header} but did not carry it"
                )));
            };
            let actual = self.hasher.base64();
            if actual != expected {
                return Err(fail(s3_error!(
                    BadDigest,
                    BAD_REQUEST,
                    "the {} you specified ({expected}) did not match the calculated checksum ({actual})",
                    self.algorithm.name()
                )));
            }
            *self.verified.lock() = Some((self.algorithm.name().to_string(), actual));
        }
        self.hasher.update(&out[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s3::auth::sigv4::signing_key;

    fn unsigned_auth() -> StreamingAuth {
        StreamingAuth {
            signed: false,
            trailer: true,
            signing_key: [0; 32],
            seed_signature: String::new(),
            amz_date: String::new(),
            scope: String::new(),
        }
    }

    fn read_all(r: &mut dyn Read) -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        r.read_to_end(&mut v)?;
        Ok(v)
    }

    #[test]
    fn unsigned_trailer_body_decodes_and_verifies_crc32() {
        let body =
            b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n".to_vec();
        let trailers = Trailers::default();
        let chunked = AwsChunkedReader::new(&body[..], unsigned_auth(), Some(11), trailers.clone());
        let verified = Arc::new(Mutex::new(None));
        let mut r = ChecksumReader::new(
            chunked,
            ChecksumAlgorithm::Crc32,
            Expected::Trailer(trailers),
            verified.clone(),
        );
        assert_eq!(read_all(&mut r).unwrap(), b"hello world");
        assert_eq!(verified.lock().clone().unwrap().0, "CRC32");
    }

    #[test]
    fn wrong_checksum_and_truncation_fail() {
        let body = b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n".to_vec();
        let trailers = Trailers::default();
        let chunked = AwsChunkedReader::new(&body[..], unsigned_auth(), None, trailers.clone());
        let mut r = ChecksumReader::new(
            chunked,
            ChecksumAlgorithm::Crc32,
            Expected::Trailer(trailers),
            Arc::new(Mutex::new(None)),
        );
        let err = read_all(&mut r).unwrap_err();
        assert!(err.to_string().contains("BadDigest"), "{err}");
        let truncated = b"5\r\nhel".to_vec();
        let mut r =
            AwsChunkedReader::new(&truncated[..], unsigned_auth(), None, Trailers::default());
        assert!(read_all(&mut r)
            .unwrap_err()
            .to_string()
            .contains("IncompleteBody"));
    }

    /// The streaming PUT example of the SigV4 documentation (65 KiB + 1 KiB of 'a').
    #[test]
    fn signed_chunks_verify_and_tampering_fails() {
        let auth = StreamingAuth {
            signed: true,
            trailer: false,
            signing_key: signing_key(
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "20130524",
                "us-east-1",
                "s3",
            ),
            seed_signature: "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
                .into(),
            amz_date: "20130524T000000Z".into(),
            scope: "20130524/us-east-1/s3/aws4_request".into(),
        };
        let mut body = Vec::new();
        body.extend_from_slice(b"10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n");
        body.extend(std::iter::repeat_n(b'a', 65536));
        body.extend_from_slice(b"\r\n400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n");
        body.extend(std::iter::repeat_n(b'a', 1024));
        body.extend_from_slice(b"\r\n0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n\r\n");
        let mut r =
            AwsChunkedReader::new(&body[..], auth.clone(), Some(66560), Trailers::default());
        assert_eq!(read_all(&mut r).unwrap().len(), 66560);
        body[200] = b'b';
        let mut r = AwsChunkedReader::new(&body[..], auth, Some(66560), Trailers::default());
        assert!(read_all(&mut r)
            .unwrap_err()
            .to_string()
            .contains("SignatureDoesNotMatch"));
    }
}
