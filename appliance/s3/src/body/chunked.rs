//! `aws-chunked` bodies (Amazon S3 API Reference, "Signature Calculations for the Authorization
//! Header: Transferring Payload in Multiple Chunks" and "... Including Trailing Headers"):
//! framing, chunk signatures and the trailer.

use std::io::{self, BufRead, BufReader, Read};
use std::sync::Arc;

use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use super::fail;
use crate::auth::sigv4::{chunk_signature, trailer_signature};
use crate::auth::StreamingAuth;
use crate::s3_error;

/// Largest `aws-chunked` chunk accepted (SDKs send 64 KiB to 1 MiB).
pub const MAX_AWS_CHUNK_BYTES: usize = 16 << 20;
/// Longest chunk header or trailer line.
const MAX_LINE_BYTES: usize = 4096;
/// Most trailer lines.
const MAX_TRAILER_LINES: usize = 16;

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
            if !crate::auth::signatures_equal(&expected, signature) {
                return Err(fail(crate::auth::signature_mismatch()));
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
                if !crate::auth::signatures_equal(&expected, &signature) {
                    return Err(fail(crate::auth::signature_mismatch()));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::sigv4::signing_key;
    use crate::body::checksum::{ChecksumAlgorithm, ChecksumReader, Expected};

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
