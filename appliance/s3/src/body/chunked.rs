//! `aws-chunked` bodies (Amazon S3 API Reference, "Signature Calculations for the Authorization
//! Header: Transferring Payload in Multiple Chunks" and "... Including Trailing Headers"):
//! framing, chunk signatures and the trailer, decoded in push mode.
//!
//! [`ChunkedDecoder::feed`] takes raw bytes as they arrive, in pieces of any size, and appends
//! the chunk data they carry; [`ChunkedDecoder::finish`] checks that the body ended where it
//! should. Memory follows the bytes that arrive, never the sizes a client declares: chunk data
//! passes straight through (hashed on the way for its signature, which is checked at the
//! chunk's end, before the body can end), and a header or trailer line is held only up to
//! [`MAX_LINE_BYTES`].
//!
//! Must not import `state`, `request`, `ops` or `body` itself (`super`): it is a pure decoder
//! below them (it uses `auth::sigv4` for chunk signatures).

use sha2::{Digest, Sha256};

use crate::auth::sigv4::{chunk_signature, trailer_signature};
use crate::auth::{signature_mismatch, signatures_equal, StreamingAuth};
use crate::error::{S3Error, S3Result};
use crate::s3_error;

/// Largest `aws-chunked` chunk accepted (SDKs send 64 KiB to 1 MiB).
pub const MAX_AWS_CHUNK_BYTES: usize = 16 << 20;
/// Longest chunk header or trailer line.
pub const MAX_LINE_BYTES: usize = 4096;
/// Most trailer lines.
const MAX_TRAILER_LINES: usize = 16;

/// Where the decoder is in the body.
#[derive(Debug)]
enum State {
    /// Reading a chunk header line (`<hex size>[;chunk-signature=<sig>]`).
    Header,
    /// Passing chunk data through.
    Data { remaining: usize },
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// Reading trailer lines, up to an empty one.
    Trailer,
    /// After the final chunk of a body without trailer: an optional CRLF.
    FinalCrlf,
    /// The body is complete: nothing may follow.
    Done,
}

/// Decodes an `aws-chunked` body (`<hex size>[;chunk-signature=<sig>]\r\n<data>\r\n` ... `0...`,
/// then optional trailers), verifying signatures when `auth.signed`.
pub struct ChunkedDecoder {
    auth: StreamingAuth,
    previous_signature: String,
    state: State,
    /// The line being read (header, CRLF, trailer).
    line: Vec<u8>,
    /// The current chunk's signature and the hash of its data so far (signed bodies).
    chunk: Option<(String, Sha256)>,
    declared_trailers: Vec<String>,
    trailers: Vec<(String, String)>,
    decoded_bytes: u64,
    expected_bytes: Option<u64>,
}

fn malformed(what: &str) -> S3Error {
    s3_error!(
        InvalidRequest,
        BAD_REQUEST,
        "malformed aws-chunked body: {what}"
    )
}

impl ChunkedDecoder {
    /// A decoder; `expected_bytes` is `x-amz-decoded-content-length`; `declared_trailers` are
    /// the names `x-amz-trailer` promised (lower case): a trailer may carry only those.
    pub fn new(
        auth: StreamingAuth,
        expected_bytes: Option<u64>,
        declared_trailers: Vec<String>,
    ) -> Self {
        let previous_signature = auth.seed_signature.clone();
        ChunkedDecoder {
            auth,
            previous_signature,
            state: State::Header,
            line: Vec::new(),
            chunk: None,
            declared_trailers,
            trailers: Vec::new(),
            decoded_bytes: 0,
            expected_bytes,
        }
    }

    /// Decodes `input`, appending chunk data to `out`.
    ///
    /// Errors: InvalidRequest for bad framing, an undeclared trailer or bytes after the end;
    /// SignatureDoesNotMatch for a chunk or trailer signature.
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> S3Result<()> {
        while !input.is_empty() {
            match self.state {
                State::Data { remaining } => {
                    let n = remaining.min(input.len());
                    out.extend_from_slice(&input[..n]);
                    if let Some((_, hasher)) = self.chunk.as_mut() {
                        hasher.update(&input[..n]);
                    }
                    self.decoded_bytes += n as u64;
                    input = &input[n..];
                    self.state = if n == remaining {
                        State::DataEnd
                    } else {
                        State::Data {
                            remaining: remaining - n,
                        }
                    };
                }
                State::Done => return Err(malformed("bytes follow the final chunk")),
                State::FinalCrlf | State::DataEnd => {
                    // Exactly CRLF, byte by byte.
                    let want = b"\r\n"[self.line.len()];
                    if input[0] != want {
                        return Err(match self.state {
                            State::DataEnd => malformed("chunk data not followed by CRLF"),
                            _ => malformed("bytes follow the final chunk"),
                        });
                    }
                    self.line.push(input[0]);
                    input = &input[1..];
                    if self.line.len() == 2 {
                        self.line.clear();
                        self.state = match self.state {
                            State::DataEnd => {
                                self.end_chunk()?;
                                State::Header
                            }
                            _ => State::Done,
                        };
                    }
                }
                State::Header | State::Trailer => {
                    let (taken, complete) = match input.iter().position(|&b| b == b'\n') {
                        Some(i) => (i + 1, true),
                        None => (input.len(), false),
                    };
                    if self.line.len() + taken > MAX_LINE_BYTES + 2 {
                        return Err(malformed("a header or trailer line is too long"));
                    }
                    self.line.extend_from_slice(&input[..taken]);
                    input = &input[taken..];
                    if complete {
                        let mut line = std::mem::take(&mut self.line);
                        line.pop();
                        if line.last() == Some(&b'\r') {
                            line.pop();
                        }
                        let line = String::from_utf8(line)
                            .map_err(|_| malformed("a line is not UTF-8"))?;
                        match self.state {
                            State::Header => self.header(&line)?,
                            _ => self.trailer_line(&line)?,
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// A chunk header: the next chunk's size and signature.
    fn header(&mut self, line: &str) -> S3Result<()> {
        let (size_hex, ext) = line.split_once(';').unwrap_or((line, ""));
        let size = usize::from_str_radix(size_hex.trim(), 16)
            .map_err(|_| malformed("chunk size is not hex"))?;
        if size > MAX_AWS_CHUNK_BYTES {
            return Err(malformed("chunk larger than 16 MiB"));
        }
        let signature = if self.auth.signed {
            Some(
                ext.split(';')
                    .find_map(|e| e.trim().strip_prefix("chunk-signature="))
                    .ok_or_else(|| malformed("chunk without chunk-signature"))?
                    .to_string(),
            )
        } else {
            None
        };
        self.chunk = signature.map(|s| (s, Sha256::new()));
        if size > 0 {
            self.state = State::Data { remaining: size };
            return Ok(());
        }
        // The final chunk.
        self.end_chunk()?;
        self.state = if self.auth.trailer {
            State::Trailer
        } else {
            State::FinalCrlf
        };
        Ok(())
    }

    /// Verifies the chunk that just ended (signed bodies).
    fn end_chunk(&mut self) -> S3Result<()> {
        let Some((signature, hasher)) = self.chunk.take() else {
            return Ok(());
        };
        let expected = chunk_signature(
            &self.auth,
            &self.previous_signature,
            &hex::encode(hasher.finalize()),
        );
        if !signatures_equal(&expected, &signature) {
            return Err(signature_mismatch());
        }
        self.previous_signature = expected;
        Ok(())
    }

    /// A trailer line; the empty line ends the trailer (and its signature is checked).
    fn trailer_line(&mut self, line: &str) -> S3Result<()> {
        if line.is_empty() {
            self.state = State::Done;
            return self.verify_trailer();
        }
        if self.trailers.len() == MAX_TRAILER_LINES {
            return Err(malformed("too many trailer lines"));
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| malformed("trailer line without ':'"))?;
        let name = name.trim().to_ascii_lowercase();
        // A checksum (or anything) x-amz-trailer did not promise would go unverified.
        if name != "x-amz-trailer-signature" && !self.declared_trailers.contains(&name) {
            return Err(s3_error!(
                InvalidRequest,
                BAD_REQUEST,
                "the trailer carries {name}, which x-amz-trailer did not declare"
            ));
        }
        self.trailers.push((name, value.trim().to_string()));
        Ok(())
    }

    fn verify_trailer(&mut self) -> S3Result<()> {
        if !self.auth.signed {
            return Ok(());
        }
        let signature = self
            .trailers
            .iter()
            .find(|(n, _)| n == "x-amz-trailer-signature")
            .map(|(_, v)| v.clone())
            .ok_or_else(|| malformed("signed trailer without x-amz-trailer-signature"))?;
        let canonical: String = self
            .trailers
            .iter()
            .filter(|(n, _)| n != "x-amz-trailer-signature")
            .map(|(n, v)| format!("{n}:{v}\n"))
            .collect();
        let expected = trailer_signature(&self.auth, &self.previous_signature, &canonical);
        if !signatures_equal(&expected, &signature) {
            return Err(signature_mismatch());
        }
        Ok(())
    }

    /// The body ended: it must have ended after its final chunk (and trailer), with as many
    /// bytes as `x-amz-decoded-content-length` declared. Returns the trailer's lines.
    ///
    /// Errors: IncompleteBody.
    pub fn finish(self) -> S3Result<Vec<(String, String)>> {
        // Some clients omit the CRLF after the final chunk at the very end.
        let complete = matches!(self.state, State::Done)
            || matches!(self.state, State::FinalCrlf if self.line.is_empty());
        if !complete {
            let at = match self.state {
                State::Data { .. } | State::DataEnd => "inside a chunk",
                State::Trailer => "inside the trailer",
                _ => "before its final chunk",
            };
            return Err(s3_error!(
                IncompleteBody,
                BAD_REQUEST,
                "the aws-chunked body ended {at}"
            ));
        }
        if let Some(expected) = self.expected_bytes {
            if expected != self.decoded_bytes {
                return Err(s3_error!(
                    IncompleteBody,
                    BAD_REQUEST,
                    "x-amz-decoded-content-length is {expected} but the body decoded to {} bytes",
                    self.decoded_bytes
                ));
            }
        }
        Ok(self.trailers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::sigv4::signing_key;

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

    /// Decoded data and trailer lines.
    type Decoded = (Vec<u8>, Vec<(String, String)>);

    /// Feeds `body` in pieces of `step` bytes; returns the data and the trailer.
    fn decode(mut d: ChunkedDecoder, body: &[u8], step: usize) -> S3Result<Decoded> {
        let mut out = Vec::new();
        for piece in body.chunks(step) {
            d.feed(piece, &mut out)?;
        }
        Ok((out, d.finish()?))
    }

    #[test]
    fn unsigned_trailer_body_decodes_in_pieces_of_any_size() {
        let body = b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n";
        for step in [1, 2, 3, 7, 1000] {
            let d = ChunkedDecoder::new(
                unsigned_auth(),
                Some(11),
                vec!["x-amz-checksum-crc32".into()],
            );
            let (data, trailer) = decode(d, body, step).unwrap();
            assert_eq!(data, b"hello world");
            assert_eq!(
                trailer,
                vec![("x-amz-checksum-crc32".into(), "DUoRhQ==".into())]
            );
        }
    }

    #[test]
    fn truncation_and_wrong_lengths_fail() {
        for cut in [
            b"5\r\nhel".as_slice(),
            b"5\r\nhello\r\n",
            b"5\r\nhello\r\n0\r\nx-amz",
        ] {
            let d = ChunkedDecoder::new(unsigned_auth(), None, vec!["x-amz".into()]);
            let err = decode(d, cut, 4).unwrap_err();
            assert_eq!(err.code, "IncompleteBody", "{err}");
        }
        let mut no_trailer = unsigned_auth();
        no_trailer.trailer = false;
        let d = ChunkedDecoder::new(no_trailer, Some(6), vec![]);
        let err = decode(d, b"5\r\nhello\r\n0\r\n\r\n", 3).unwrap_err();
        assert!(err.message.contains("decoded to 5 bytes"), "{err}");
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
        for step in [1000, 65536 + 200] {
            let d = ChunkedDecoder::new(auth.clone(), Some(66560), vec![]);
            assert_eq!(decode(d, &body, step).unwrap().0.len(), 66560);
        }
        body[200] = b'b';
        let d = ChunkedDecoder::new(auth, Some(66560), vec![]);
        assert_eq!(
            decode(d, &body, 4096).unwrap_err().code,
            "SignatureDoesNotMatch"
        );
    }

    /// A declared chunk size is not allocated: the first byte of a 16 MiB chunk comes out as
    /// soon as it arrives, and a body cut there fails.
    #[test]
    fn a_declared_chunk_size_is_not_allocated_before_its_bytes_arrive() {
        let mut d = ChunkedDecoder::new(unsigned_auth(), None, vec![]);
        let mut out = Vec::new();
        d.feed(b"1000000\r\nx", &mut out).unwrap();
        assert_eq!(out, b"x");
        assert!(out.capacity() < 1024, "{}", out.capacity());
        assert!(matches!(d.state, State::Data { remaining } if remaining == (16 << 20) - 1));
        assert_eq!(d.finish().unwrap_err().code, "IncompleteBody");
    }

    #[test]
    fn bytes_after_the_final_chunk_and_undeclared_trailers_are_refused() {
        let mut no_trailer = unsigned_auth();
        no_trailer.trailer = false;
        let d = ChunkedDecoder::new(no_trailer.clone(), Some(5), vec![]);
        let err = decode(d, b"5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n", 5).unwrap_err();
        assert!(err.message.contains("follow the final chunk"), "{err}");
        // The final CRLF may be omitted at the very end.
        for body in [
            b"5\r\nhello\r\n0\r\n\r\n".as_slice(),
            b"5\r\nhello\r\n0\r\n",
        ] {
            let d = ChunkedDecoder::new(no_trailer.clone(), Some(5), vec![]);
            assert_eq!(decode(d, body, 2).unwrap().0, b"hello");
        }
        let body = b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\nx-amz-checksum-sha256:AAAA\r\n\r\n";
        let d = ChunkedDecoder::new(
            unsigned_auth(),
            Some(5),
            vec!["x-amz-checksum-crc32".into()],
        );
        let err = decode(d, body, 9).unwrap_err();
        assert!(err.message.contains("x-amz-checksum-sha256"), "{err}");
    }
}
