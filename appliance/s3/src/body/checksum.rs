//! Body digests verified at end of body: a signed payload's SHA-256 and the flexible checksums
//! (`x-amz-checksum-*`, Amazon S3 User Guide, "Checking object integrity"), and the checksums
//! of multipart objects combined from their parts'.
//!
//! Must not import `state`, `request`, `ops` or `body` itself (`super`): it is a pure decoder
//! below them.

use base64::Engine;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::error::S3Result;
use crate::s3_error;

/// A signed payload's SHA-256 (`x-amz-content-sha256: <hex>`), checked when the body ends.
pub struct PayloadSha256 {
    hasher: Sha256,
    expected_hex: String,
}

impl PayloadSha256 {
    /// Expects the body to hash to `expected_hex` (lower case).
    pub fn new(expected_hex: String) -> Self {
        PayloadSha256 {
            hasher: Sha256::new(),
            expected_hex,
        }
    }

    /// Hashes more of the body.
    pub fn update(&mut self, data: &[u8]) {
        self.hasher.update(data);
    }

    /// Errors: XAmzContentSHA256Mismatch.
    pub fn finish(self) -> S3Result<()> {
        let actual = hex::encode(self.hasher.finalize());
        if actual != self.expected_hex {
            return Err(s3_error!(
                XAmzContentSHA256Mismatch,
                BAD_REQUEST,
                "the provided x-amz-content-sha256 {} does not match the body's {actual}",
                self.expected_hex
            ));
        }
        Ok(())
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

impl ChecksumAlgorithm {
    /// Whether the algorithm is a CRC (full-object checksums of multipart uploads combine
    /// CRCs; the SHA families only compose).
    pub fn is_crc(self) -> bool {
        matches!(self, Self::Crc32 | Self::Crc32c | Self::Crc64Nvme)
    }

    /// The checksum type a multipart upload gets when it names none: CRC-64/NVME supports
    /// only full-object checksums, the others default to composite (Amazon S3 User Guide,
    /// "Checking object integrity").
    pub fn default_multipart_type(self) -> &'static str {
        match self {
            Self::Crc64Nvme => FULL_OBJECT,
            _ => COMPOSITE,
        }
    }

    /// Whether a multipart upload may use `checksum_type` with this algorithm.
    pub fn supports_multipart_type(self, checksum_type: &str) -> bool {
        match checksum_type {
            COMPOSITE => self != Self::Crc64Nvme,
            FULL_OBJECT => self.is_crc(),
            _ => false,
        }
    }
}

/// A multipart checksum over the parts' checksums.
pub const COMPOSITE: &str = "COMPOSITE";
/// A multipart checksum of the whole object's bytes (CRCs only).
pub const FULL_OBJECT: &str = "FULL_OBJECT";

/// A multipart object's checksum from its parts' (size in bytes, base64 checksum), as S3
/// computes it (Amazon S3 User Guide, "Checking object integrity"):
/// - `COMPOSITE`: `base64(hash(raw part checksums concatenated))-N`;
/// - `FULL_OBJECT` (CRCs): the CRC of the whole object, combined from the parts' CRCs and
///   sizes (`crc(a || b)` from `crc(a)`, `crc(b)` and `len(b)`, by `crc-fast`).
///
/// Errors: InvalidArgument for an unknown algorithm or type, or a part checksum that is not
/// base64 of the algorithm's width.
pub fn combine_parts(
    algorithm: &str,
    checksum_type: &str,
    parts: &[(u64, String)],
) -> hoard::Result<String> {
    let invalid = |what: String| hoard::Error::InvalidArgument(what);
    let algo = ChecksumAlgorithm::parse(algorithm)
        .ok_or_else(|| invalid(format!("unknown checksum algorithm {algorithm:?}")))?;
    let width = match algo {
        ChecksumAlgorithm::Crc32 | ChecksumAlgorithm::Crc32c => 4,
        ChecksumAlgorithm::Crc64Nvme => 8,
        ChecksumAlgorithm::Sha1 => 20,
        ChecksumAlgorithm::Sha256 => 32,
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut raw = Vec::with_capacity(parts.len() * width);
    for (i, (_, value)) in parts.iter().enumerate() {
        let bytes = b64
            .decode(value)
            .ok()
            .filter(|b| b.len() == width)
            .ok_or_else(|| {
                invalid(format!(
                    "part {} has a malformed {algorithm} checksum {value:?}",
                    i + 1
                ))
            })?;
        raw.extend_from_slice(&bytes);
    }
    match checksum_type {
        COMPOSITE => {
            let mut h = Hasher::new(algo);
            h.update(&raw);
            Ok(format!("{}-{}", h.base64(), parts.len()))
        }
        FULL_OBJECT if algo.is_crc() => {
            let crc_algorithm = match algo {
                ChecksumAlgorithm::Crc32 => crc_fast::CrcAlgorithm::Crc32IsoHdlc,
                ChecksumAlgorithm::Crc32c => crc_fast::CrcAlgorithm::Crc32Iscsi,
                _ => crc_fast::CrcAlgorithm::Crc64Nvme,
            };
            let value = |i: usize| {
                let b = &raw[i * width..(i + 1) * width];
                b.iter().fold(0u64, |acc, &x| (acc << 8) | x as u64)
            };
            let mut crc = 0u64;
            for (i, (size, _)) in parts.iter().enumerate() {
                crc = if i == 0 {
                    value(0)
                } else {
                    crc_fast::checksum_combine(crc_algorithm, crc, value(i), *size)
                };
            }
            let bytes = crc.to_be_bytes();
            Ok(b64.encode(&bytes[8 - width..]))
        }
        other => Err(invalid(format!(
            "checksum type {other:?} is not available for {algorithm}"
        ))),
    }
}

/// Where a checksum's expected value comes from.
pub enum Expected {
    /// A request header's value.
    Header(String),
    /// The `aws-chunked` trailer (known when the body ends).
    Trailer,
}

/// A flexible checksum (`x-amz-checksum-*`) of the decoded body, checked when the body ends.
pub struct ChecksumCheck {
    algorithm: ChecksumAlgorithm,
    hasher: Hasher,
    expected: Expected,
}

impl ChecksumCheck {
    /// Checks the body against `expected` with `algorithm`.
    pub fn new(algorithm: ChecksumAlgorithm, expected: Expected) -> Self {
        ChecksumCheck {
            algorithm,
            hasher: Hasher::new(algorithm),
            expected,
        }
    }

    /// Hashes more of the body.
    pub fn update(&mut self, data: &[u8]) {
        self.hasher.update(data);
    }

    /// Checks the body, given the trailer's lines; returns the verified (algorithm, base64).
    ///
    /// Errors: BadDigest on a mismatch; InvalidRequest when the trailer lacks the checksum it
    /// promised.
    pub fn finish(self, trailers: &[(String, String)]) -> S3Result<(String, String)> {
        let header = self.algorithm.header();
        let expected = match self.expected {
            Expected::Header(v) => Some(v),
            Expected::Trailer => trailers
                .iter()
                .find(|(n, _)| *n == header)
                .map(|(_, v)| v.clone()),
        };
        let Some(expected) = expected else {
            return Err(s3_error!(
                InvalidRequest,
                BAD_REQUEST,
                "the trailer promised {header} but did not carry it"
            ));
        };
        let actual = self.hasher.base64();
        if actual != expected {
            return Err(s3_error!(
                BadDigest,
                BAD_REQUEST,
                "the {} you specified ({expected}) did not match the calculated checksum ({actual})",
                self.algorithm.name()
            ));
        }
        Ok((self.algorithm.name().to_string(), actual))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checksum(algo: ChecksumAlgorithm, data: &[u8]) -> String {
        let mut h = Hasher::new(algo);
        h.update(data);
        h.base64()
    }

    /// Full-object CRCs combined from parts equal the CRC of the whole; composite checksums
    /// hash the raw part checksums.
    #[test]
    fn multipart_checksums_combine_as_s3_defines_them() {
        let a = vec![7u8; 5 << 20];
        let b: Vec<u8> = (0..1234u32).map(|i| i as u8).collect();
        let whole = [a.clone(), b.clone()].concat();
        for algo in [
            ChecksumAlgorithm::Crc32,
            ChecksumAlgorithm::Crc32c,
            ChecksumAlgorithm::Crc64Nvme,
        ] {
            let parts = [
                (a.len() as u64, checksum(algo, &a)),
                (b.len() as u64, checksum(algo, &b)),
            ];
            assert_eq!(
                combine_parts(algo.name(), FULL_OBJECT, &parts).unwrap(),
                checksum(algo, &whole),
                "{algo:?}"
            );
        }
        for algo in ChecksumAlgorithm::ALL
            .into_iter()
            .filter(|a| *a != ChecksumAlgorithm::Crc64Nvme)
        {
            let (ca, cb) = (checksum(algo, &a), checksum(algo, &b));
            let b64 = base64::engine::general_purpose::STANDARD;
            let raw = [b64.decode(&ca).unwrap(), b64.decode(&cb).unwrap()].concat();
            let parts = [(a.len() as u64, ca), (b.len() as u64, cb)];
            assert_eq!(
                combine_parts(algo.name(), COMPOSITE, &parts).unwrap(),
                format!("{}-2", checksum(algo, &raw))
            );
        }
        assert!(combine_parts(
            "SHA256",
            FULL_OBJECT,
            &[(1, checksum(ChecksumAlgorithm::Sha256, b"x"))]
        )
        .is_err());
        assert!(combine_parts("CRC32", COMPOSITE, &[(1, "not base64!".into())]).is_err());
    }
}
