//! Request headers that S3 defines and Hoard does not implement: each is refused with
//! `501 NotImplemented` naming it, never accepted and ignored. A client that asks for
//! encryption, a retention period, a website redirect or an MFA-protected delete either gets
//! it or learns that it did not.
//!
//! Owns: the list of refused headers (with the values that ask for nothing and so pass, such
//! as `x-amz-bucket-object-lock-enabled: false`), and `x-amz-expected-bucket-owner`. The
//! headers Hoard ignores on purpose are listed, with why, in README ("Request headers").
//! Must not import operation handlers: it is asked by `ops::dispatch` before any runs.
//!
//! Source: the request headers of every operation in the AWS S3 API Reference (as botocore's
//! service model lists them, which `tests/scripts/test_headers.py` walks).

use axum::http::HeaderMap;

use crate::error::S3Result;
use crate::s3_error;

/// Hoard's header (at CreateBucket) and sub-resource (GET) for a bucket's protection:
/// `replicas:N` or `ec:K+M`; the pool's default when absent.
pub const PROTECTION: &str = "x-hoard-protection";

/// A header Hoard refuses, and the values that ask for nothing (accepted as if absent).
struct Refused {
    /// Lower-case header name.
    name: &'static str,
    /// Values (case-insensitive) that request nothing Hoard lacks.
    harmless: &'static [&'static str],
    /// What it asks for, for the error message.
    asks: &'static str,
}

const ENCRYPTION: &str = "server-side encryption, which this server does not implement yet";
const CUSTOMER_KEY: &str =
    "server-side encryption with a customer key (SSE-C), which this server does not implement yet";
const OBJECT_LOCK: &str = "Object Lock, which this server does not implement yet";

/// Every refused header.
const REFUSED: &[Refused] = &[
    Refused { name: "x-amz-server-side-encryption", harmless: &[], asks: ENCRYPTION },
    Refused { name: "x-amz-server-side-encryption-aws-kms-key-id", harmless: &[], asks: ENCRYPTION },
    Refused { name: "x-amz-server-side-encryption-context", harmless: &[], asks: ENCRYPTION },
    Refused { name: "x-amz-server-side-encryption-bucket-key-enabled", harmless: &["false"], asks: ENCRYPTION },
    Refused { name: "x-amz-server-side-encryption-customer-algorithm", harmless: &[], asks: CUSTOMER_KEY },
    Refused { name: "x-amz-server-side-encryption-customer-key", harmless: &[], asks: CUSTOMER_KEY },
    Refused { name: "x-amz-server-side-encryption-customer-key-md5", harmless: &[], asks: CUSTOMER_KEY },
    Refused { name: "x-amz-copy-source-server-side-encryption-customer-algorithm", harmless: &[], asks: CUSTOMER_KEY },
    Refused { name: "x-amz-copy-source-server-side-encryption-customer-key", harmless: &[], asks: CUSTOMER_KEY },
    Refused { name: "x-amz-copy-source-server-side-encryption-customer-key-md5", harmless: &[], asks: CUSTOMER_KEY },
    Refused { name: "x-amz-object-lock-mode", harmless: &[], asks: OBJECT_LOCK },
    Refused { name: "x-amz-object-lock-retain-until-date", harmless: &[], asks: OBJECT_LOCK },
    Refused { name: "x-amz-object-lock-legal-hold", harmless: &["OFF"], asks: OBJECT_LOCK },
    Refused { name: "x-amz-object-lock-event-hold", harmless: &["OFF"], asks: OBJECT_LOCK },
    Refused { name: "x-amz-object-lock-event-hold-duration-days", harmless: &[], asks: OBJECT_LOCK },
    Refused { name: "x-amz-object-lock-event-hold-duration-years", harmless: &[], asks: OBJECT_LOCK },
    Refused { name: "x-amz-bucket-object-lock-enabled", harmless: &["false"], asks: OBJECT_LOCK },
    Refused { name: "x-amz-bucket-object-lock-token", harmless: &[], asks: OBJECT_LOCK },
    Refused {
        name: "x-amz-bucket-namespace",
        harmless: &["global"],
        asks: "an account-regional bucket namespace; this server has the one global namespace",
    },
    Refused {
        // No object carries annotations here, so copying them or excluding them both hold.
        name: "x-amz-object-annotation-directive",
        harmless: &["COPY", "EXCLUDE"],
        asks: "object annotations, which this server does not implement",
    },
    Refused {
        name: "x-amz-mfa",
        harmless: &[],
        asks: "an MFA-authenticated request (MFA delete), which this server does not implement",
    },
    Refused {
        name: "x-amz-website-redirect-location",
        harmless: &[],
        asks: "a website redirect, and this server does not host websites",
    },
    Refused {
        name: "x-amz-storage-class",
        harmless: &["STANDARD"],
        asks: "a storage class other than STANDARD, the only one this server has",
    },
    Refused {
        name: "x-amz-write-offset-bytes",
        harmless: &[],
        asks: "an append to an existing object, which this server does not implement",
    },
    Refused {
        name: "x-amz-mp-object-size",
        harmless: &[],
        asks: "a check of the completed object's size, which this server does not implement",
    },
    Refused {
        name: "x-amz-if-match-size",
        harmless: &[],
        asks: "a conditional delete by size, which this server does not implement",
    },
    Refused {
        name: "x-amz-if-match-last-modified-time",
        harmless: &[],
        asks: "a conditional delete by modification time, which this server does not implement",
    },
    Refused {
        name: "x-amz-if-match-initiated-time",
        harmless: &[],
        asks: "a conditional abort by initiation time, which this server does not implement",
    },
    Refused {
        name: "x-amz-optional-object-attributes",
        harmless: &[],
        asks: "optional object attributes (RestoreStatus) in a listing; this server archives nothing",
    },
    Refused {
        name: "x-amz-transition-default-minimum-object-size",
        harmless: &[],
        asks: "a lifecycle transition setting; this server has one storage class and no transitions",
    },
    Refused {
        name: "x-amz-checksum-md5",
        harmless: &[],
        asks: "an MD5 flexible checksum, which this server does not implement (Content-MD5 is checked)",
    },
    Refused {
        name: "x-amz-checksum-sha512",
        harmless: &[],
        asks: "a SHA-512 checksum, which this server does not implement",
    },
    Refused {
        name: "x-amz-checksum-xxhash3",
        harmless: &[],
        asks: "an XXHASH3 checksum, which this server does not implement",
    },
    Refused {
        name: "x-amz-checksum-xxhash64",
        harmless: &[],
        asks: "an XXHASH64 checksum, which this server does not implement",
    },
    Refused {
        name: "x-amz-checksum-xxhash128",
        harmless: &[],
        asks: "an XXHASH128 checksum, which this server does not implement",
    },
];

/// Refuses the first header of `headers` that asks for what Hoard does not implement.
///
/// Errors: NotImplemented (501) naming the header and what it asks for.
pub fn refuse_unimplemented(headers: &HeaderMap) -> S3Result<()> {
    refuse_unimplemented_fields(
        headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap_or(""))),
    )
}

/// [`refuse_unimplemented`] over (lower-case name, value) pairs: a browser POST's form fields
/// carry the same requests as headers.
///
/// Errors: NotImplemented (501) naming the field and what it asks for.
pub fn refuse_unimplemented_fields<'a>(
    fields: impl Iterator<Item = (&'a str, &'a str)>,
) -> S3Result<()> {
    for (name, value) in fields {
        let Some(r) = REFUSED.iter().find(|r| r.name == name) else {
            continue;
        };
        let value = value.trim();
        if r.harmless.iter().any(|h| h.eq_ignore_ascii_case(value)) {
            continue;
        }
        return Err(s3_error!(
            NotImplemented,
            NOT_IMPLEMENTED,
            "the header {}: {value:?} asks for {}; the request was not performed",
            r.name,
            r.asks
        ));
    }
    Ok(())
}

/// Checks the account a request expects to own a bucket (the value of `header`:
/// `x-amz-expected-bucket-owner`, or `x-amz-source-expected-bucket-owner` for a copy's
/// source) against the account that owns it.
///
/// Errors: AccessDenied (403) when it names another account, as S3 answers.
pub fn check_expected_owner(
    header: &str,
    expected: Option<&str>,
    bucket: &str,
    owner_account: &str,
) -> S3Result<()> {
    match expected {
        Some(expected) if expected != owner_account => Err(s3_error!(
            AccessDenied,
            FORBIDDEN,
            "{header} is {expected:?}, but bucket {bucket} belongs to another account"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_headers_name_themselves_and_harmless_values_pass() {
        let mut h = HeaderMap::new();
        h.insert("x-amz-bucket-object-lock-enabled", "False".parse().unwrap());
        h.insert("x-amz-storage-class", "STANDARD".parse().unwrap());
        assert!(refuse_unimplemented(&h).is_ok());
        h.insert("x-amz-server-side-encryption", "AES256".parse().unwrap());
        let e = refuse_unimplemented(&h).unwrap_err();
        assert_eq!(e.code, "NotImplemented");
        assert!(
            e.message.contains("x-amz-server-side-encryption"),
            "{}",
            e.message
        );
        let mut names: Vec<_> = REFUSED.iter().map(|r| r.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), REFUSED.len(), "each header is listed once");
        assert!(REFUSED
            .iter()
            .all(|r| r.name == r.name.to_ascii_lowercase()));
    }
}
