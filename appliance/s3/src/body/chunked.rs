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
///
/// Memory follows the bytes that arrive, never the sizes a client declares: chunk data streams
/// through (hashed on the way for its signature, which is checked at the chunk's end, before
/// the body can end), so a request holds one 64 KiB read buffer whatever its chunk size.
pub struct AwsChunkedReader<R: Read> {
    inner: BufReader<R>,
    auth: StreamingAuth,
    previous_signature: String,
    /// Data bytes of the current chunk not yet returned.
    remaining: usize,
    /// The current chunk's signature and the hash of its data so far (signed bodies).
    chunk_signature: Option<(String, Sha256)>,
    /// A chunk's data was read: its CRLF (and signature check) come next.
    after_data: bool,
    done: bool,
    declared_trailers: Vec<String>,
    trailers: Trailers,
    decoded_bytes: u64,
    expected_bytes: Option<u64>,
}

impl<R: Read> AwsChunkedReader<R> {
    /// Decodes `inner`; `expected_bytes` is `x-amz-decoded-content-length`; `declared_trailers`
    /// are the names `x-amz-trailer` promised (lower case): a trailer may carry only those.
    pub fn new(
        inner: R,
        auth: StreamingAuth,
        expected_bytes: Option<u64>,
        declared_trailers: Vec<String>,
        trailers: Trailers,
    ) -> Self {
        let previous_signature = auth.seed_signature.clone();
        AwsChunkedReader {
            inner: BufReader::with_capacity(64 * 1024, inner),
            auth,
            previous_signature,
            remaining: 0,
            chunk_signature: None,
            after_data: false,
            done: false,
            declared_trailers,
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

    /// Ends the current chunk (its signature, its CRLF), then reads the next chunk's header;
    /// the final (empty) chunk ends the body.
    fn next_chunk(&mut self) -> io::Result<()> {
        if self.after_data {
            self.after_data = false;
            if let Some((signature, hasher)) = self.chunk_signature.take() {
                self.verify_chunk(&signature, hasher)?;
            }
            if !self.line()?.is_empty() {
                return Err(Self::malformed("chunk data not followed by CRLF"));
            }
        }
        let header = self.line()?;
        let (size_hex, ext) = header.split_once(';').unwrap_or((header.as_str(), ""));
        let size = usize::from_str_radix(size_hex.trim(), 16)
            .map_err(|_| Self::malformed("chunk size is not hex"))?;
        if size > MAX_AWS_CHUNK_BYTES {
            return Err(Self::malformed("chunk larger than 16 MiB"));
        }
        let signature = if self.auth.signed {
            Some(
                ext.split(';')
                    .find_map(|e| e.trim().strip_prefix("chunk-signature="))
                    .ok_or_else(|| Self::malformed("chunk without chunk-signature"))?
                    .to_string(),
            )
        } else {
            None
        };
        if size > 0 {
            self.remaining = size;
            self.after_data = true;
            self.chunk_signature = signature.map(|s| (s, Sha256::new()));
            return Ok(());
        }
        if let Some(signature) = signature {
            self.verify_chunk(&signature, Sha256::new())?;
        }
        self.finish()
    }

    fn verify_chunk(&mut self, signature: &str, hasher: Sha256) -> io::Result<()> {
        let expected = chunk_signature(
            &self.auth,
            &self.previous_signature,
            &hex::encode(hasher.finalize()),
        );
        if !crate::auth::signatures_equal(&expected, signature) {
            return Err(fail(crate::auth::signature_mismatch()));
        }
        self.previous_signature = expected;
        Ok(())
    }

    /// Fails if anything follows the end of the body.
    fn expect_end(&mut self) -> io::Result<()> {
        let mut extra = [0u8; 1];
        if self.inner.read(&mut extra)? != 0 {
            return Err(Self::malformed("bytes follow the final chunk"));
        }
        Ok(())
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
                let name = name.trim().to_ascii_lowercase();
                // A checksum (or anything) x-amz-trailer did not promise would go unverified.
                if name != "x-amz-trailer-signature" && !self.declared_trailers.contains(&name) {
                    return Err(fail(s3_error!(
                        InvalidRequest,
                        BAD_REQUEST,
                        "the trailer carries {name}, which x-amz-trailer did not declare"
                    )));
                }
                lines.push((name, value.trim().to_string()));
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
            let mut crlf = Vec::new();
            (&mut self.inner).take(2).read_to_end(&mut crlf)?;
            if !(crlf.is_empty() || crlf == b"\r\n") {
                return Err(Self::malformed("bytes follow the final chunk"));
            }
        }
        self.expect_end()?;
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
        if out.is_empty() {
            return Ok(0);
        }
        while self.remaining == 0 {
            if self.done {
                return Ok(0);
            }
            self.next_chunk()?;
        }
        let want = out.len().min(self.remaining);
        let n = self.inner.read(&mut out[..want])?;
        if n == 0 {
            return Err(fail(s3_error!(
                IncompleteBody,
                BAD_REQUEST,
                "the aws-chunked body ended inside a chunk"
            )));
        }
        if let Some((_, hasher)) = self.chunk_signature.as_mut() {
            hasher.update(&out[..n]);
        }
        self.remaining -= n;
        self.decoded_bytes += n as u64;
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
        let chunked = AwsChunkedReader::new(
            &body[..],
            unsigned_auth(),
            Some(11),
            vec!["x-amz-checksum-crc32".into()],
            trailers.clone(),
        );
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
        let chunked = AwsChunkedReader::new(
            &body[..],
            unsigned_auth(),
            None,
            vec!["x-amz-checksum-crc32".into()],
            trailers.clone(),
        );
        let mut r = ChecksumReader::new(
            chunked,
            ChecksumAlgorithm::Crc32,
            Expected::Trailer(trailers),
            Arc::new(Mutex::new(None)),
        );
        let err = read_all(&mut r).unwrap_err();
        assert!(err.to_string().contains("BadDigest"), "{err}");
        let truncated = b"5\r\nhel".to_vec();
        let mut r = AwsChunkedReader::new(
            &truncated[..],
            unsigned_auth(),
            None,
            vec![],
            Trailers::default(),
        );
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
        let mut r = AwsChunkedReader::new(
            &body[..],
            auth.clone(),
            Some(66560),
            vec![],
            Trailers::default(),
        );
        assert_eq!(read_all(&mut r).unwrap().len(), 66560);
        body[200] = b'b';
        let mut r = AwsChunkedReader::new(
            &body[..],
            auth.clone(),
            Some(66560),
            vec![],
            Trailers::default(),
        );
        assert!(read_all(&mut r)
            .unwrap_err()
            .to_string()
            .contains("SignatureDoesNotMatch"));
    }
    /// A declared chunk size is not allocated: the first byte of a 16 MiB chunk comes out as
    /// soon as it arrives, and a body cut there fails.

    #[test]
    fn a_declared_chunk_size_is_not_allocated_before_its_bytes_arrive() {
        let body = b"1000000\r\nx".to_vec();
        let mut r = AwsChunkedReader::new(
            &body[..],
            unsigned_auth(),
            None,
            vec![],
            Trailers::default(),
        );
        let mut out = vec![0u8; 1 << 20];
        assert_eq!(r.read(&mut out).unwrap(), 1);
        assert_eq!(r.remaining, (16 << 20) - 1);
        let err = r.read(&mut out).unwrap_err();
        assert!(err.to_string().contains("IncompleteBody"), "{err}");
    }

    #[test]
    fn bytes_after_the_final_chunk_and_undeclared_trailers_are_refused() {
        let mut no_trailer = unsigned_auth();
        no_trailer.trailer = false;
        let body = b"5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n".to_vec();
        let mut r = AwsChunkedReader::new(
            &body[..],
            no_trailer.clone(),
            Some(5),
            vec![],
            Trailers::default(),
        );
        let err = read_all(&mut r).unwrap_err();
        assert!(err.to_string().contains("follow the final chunk"), "{err}");
        let body = b"5\r\nhello\r\n0\r\n\r\n".to_vec();
        let mut r =
            AwsChunkedReader::new(&body[..], no_trailer, Some(5), vec![], Trailers::default());
        assert_eq!(read_all(&mut r).unwrap(), b"hello");

        let body =
            b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\nx-amz-checksum-sha256:AAAA\r\n\r\n".to_vec();
        let mut r = AwsChunkedReader::new(
            &body[..],
            unsigned_auth(),
            Some(5),
            vec!["x-amz-checksum-crc32".into()],
            Trailers::default(),
        );
        let err = read_all(&mut r).unwrap_err();
        assert!(err.to_string().contains("x-amz-checksum-sha256"), "{err}");
    }
}
