//! The one route table: every request is parsed once, before it is authenticated, into an
//! [`Endpoint`]; the action authorized ([`Endpoint::action`]) and the handler run
//! (`ops::route`) are both matches on that same value, so they cannot disagree (Garage's
//! `Endpoint` and `authorization_type()` are the model).
//!
//! A row of [`ROUTES`] is (method, target, selector, copy source): the target is the service,
//! a bucket or an object; the selector is the one sub-resource of `SELECTORS` the query
//! names (`?acl`, `?uploadId`, ...), or none; the copy source is whether the request carries
//! `x-amz-copy-source`. A request names at most one selector: `?acl&uploadId` is refused,
//! never resolved by a precedence (that is how `?acl` once reached the multipart handlers
//! with only `s3:PutObjectAcl`'s check). A request that matches no row is refused: 405 when
//! the target and selector exist with another method, 501 for a selector Hoard does not
//! implement, else 400.
//!
//! Parameters that only modify an operation (`versionId`, `partNumber`, listing parameters,
//! `response-*`, `x-id`) are not selectors. `versionId` changes the action of object reads,
//! deletes, tags and ACLs to S3's `...Version...` actions (S3 User Guide, "Actions, resources,
//! and condition keys for Amazon S3").
//!
//! Must not import the operations' handlers: `ops` dispatches on what this file returns.

use axum::http::Method;

use crate::error::S3Result;
use crate::s3_error;

/// Declares [`Endpoint`] and its variants' names from one list.
macro_rules! endpoints {
    ($($(#[$doc:meta])* $variant:ident,)*) => {
        /// Every S3 operation Hoard serves, one variant per operation of the S3 API Reference
        /// (plus Hoard's protection query and the CORS preflight).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Endpoint {
            $($(#[$doc])* $variant,)*
        }

        impl Endpoint {
            /// The variant's name (`GetObject`).
            fn variant_name(self) -> &'static str {
                match self {
                    $(Endpoint::$variant => stringify!($variant),)*
                }
            }
        }
    };
}

endpoints! {
    /// `GET /`.
    ListBuckets,
    /// `PUT /bucket`.
    CreateBucket,
    /// `DELETE /bucket`.
    DeleteBucket,
    /// `HEAD /bucket`.
    HeadBucket,
    /// `GET /bucket` (v1, or v2 with `list-type=2`).
    ListObjects,
    /// `GET /bucket?versions`.
    ListObjectVersions,
    /// `GET /bucket?uploads`.
    ListMultipartUploads,
    /// `GET /bucket?location`.
    GetBucketLocation,
    /// `GET /bucket?x-hoard-protection`: Hoard's protection of the bucket.
    GetBucketProtection,
    /// `POST /bucket?delete`.
    DeleteObjects,
    /// `POST /bucket` with a form body (browser upload).
    PostObject,
    /// `GET /bucket?acl`.
    GetBucketAcl,
    /// `PUT /bucket?acl`.
    PutBucketAcl,
    /// `GET /bucket?policy`.
    GetBucketPolicy,
    /// `PUT /bucket?policy`.
    PutBucketPolicy,
    /// `DELETE /bucket?policy`.
    DeleteBucketPolicy,
    /// `GET /bucket?policyStatus`.
    GetBucketPolicyStatus,
    /// `GET /bucket?publicAccessBlock`.
    GetPublicAccessBlock,
    /// `PUT /bucket?publicAccessBlock`.
    PutPublicAccessBlock,
    /// `DELETE /bucket?publicAccessBlock`.
    DeletePublicAccessBlock,
    /// `GET /bucket?ownershipControls`.
    GetBucketOwnershipControls,
    /// `PUT /bucket?ownershipControls`.
    PutBucketOwnershipControls,
    /// `DELETE /bucket?ownershipControls`.
    DeleteBucketOwnershipControls,
    /// `GET /bucket?lifecycle`.
    GetBucketLifecycle,
    /// `PUT /bucket?lifecycle`.
    PutBucketLifecycle,
    /// `DELETE /bucket?lifecycle`.
    DeleteBucketLifecycle,
    /// `GET /bucket?tagging`.
    GetBucketTagging,
    /// `PUT /bucket?tagging`.
    PutBucketTagging,
    /// `DELETE /bucket?tagging`.
    DeleteBucketTagging,
    /// `GET /bucket?cors`.
    GetBucketCors,
    /// `PUT /bucket?cors`.
    PutBucketCors,
    /// `DELETE /bucket?cors`.
    DeleteBucketCors,
    /// `GET /bucket?versioning`.
    GetBucketVersioning,
    /// `PUT /bucket?versioning`.
    PutBucketVersioning,
    /// `GET /bucket/key`.
    GetObject,
    /// `HEAD /bucket/key`.
    HeadObject,
    /// `PUT /bucket/key`.
    PutObject,
    /// `PUT /bucket/key` with `x-amz-copy-source`.
    CopyObject,
    /// `DELETE /bucket/key`.
    DeleteObject,
    /// `GET /bucket/key?attributes`.
    GetObjectAttributes,
    /// `GET /bucket/key?tagging`.
    GetObjectTagging,
    /// `PUT /bucket/key?tagging`.
    PutObjectTagging,
    /// `DELETE /bucket/key?tagging`.
    DeleteObjectTagging,
    /// `GET /bucket/key?acl`.
    GetObjectAcl,
    /// `PUT /bucket/key?acl`.
    PutObjectAcl,
    /// `POST /bucket/key?uploads`.
    CreateMultipartUpload,
    /// `PUT /bucket/key?uploadId&partNumber`.
    UploadPart,
    /// `PUT /bucket/key?uploadId&partNumber` with `x-amz-copy-source`.
    UploadPartCopy,
    /// `POST /bucket/key?uploadId`.
    CompleteMultipartUpload,
    /// `DELETE /bucket/key?uploadId`.
    AbortMultipartUpload,
    /// `GET /bucket/key?uploadId`.
    ListParts,
    /// `OPTIONS /bucket[/key]`: never authenticated (Fetch standard, CORS preflight).
    PreflightCors,
}

/// What a request is addressed to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// No bucket (`/`).
    Service,
    /// A bucket, no key.
    Bucket,
    /// An object.
    Object,
}

/// One row of the route table.
#[derive(Clone, Copy, Debug)]
pub struct Row {
    /// HTTP method.
    pub method: &'static str,
    /// Service, bucket or object.
    pub target: Target,
    /// The one selecting sub-resource, or none.
    pub selector: Option<&'static str>,
    /// Whether the request carries `x-amz-copy-source`.
    pub copy_source: bool,
    /// The operation.
    pub endpoint: Endpoint,
}

const fn row(
    method: &'static str,
    target: Target,
    selector: Option<&'static str>,
    endpoint: Endpoint,
) -> Row {
    Row {
        method,
        target,
        selector,
        copy_source: false,
        endpoint,
    }
}

const fn copy_row(selector: Option<&'static str>, endpoint: Endpoint) -> Row {
    Row {
        method: "PUT",
        target: Target::Object,
        selector,
        copy_source: true,
        endpoint,
    }
}

use Endpoint as E;
use Target::{Bucket as B, Object as O, Service as S};

/// The route table (S3 API Reference, each operation's "Request Syntax").
pub const ROUTES: &[Row] = &[
    row("GET", S, None, E::ListBuckets),
    row("PUT", B, None, E::CreateBucket),
    row("DELETE", B, None, E::DeleteBucket),
    row("HEAD", B, None, E::HeadBucket),
    row("GET", B, None, E::ListObjects),
    row("GET", B, Some("versions"), E::ListObjectVersions),
    row("GET", B, Some("uploads"), E::ListMultipartUploads),
    row("GET", B, Some("location"), E::GetBucketLocation),
    row(
        "GET",
        B,
        Some(crate::protocol::headers::PROTECTION),
        E::GetBucketProtection,
    ),
    row("POST", B, Some("delete"), E::DeleteObjects),
    row("POST", B, None, E::PostObject),
    row("GET", B, Some("acl"), E::GetBucketAcl),
    row("PUT", B, Some("acl"), E::PutBucketAcl),
    row("GET", B, Some("policy"), E::GetBucketPolicy),
    row("PUT", B, Some("policy"), E::PutBucketPolicy),
    row("DELETE", B, Some("policy"), E::DeleteBucketPolicy),
    row("GET", B, Some("policyStatus"), E::GetBucketPolicyStatus),
    row("GET", B, Some("publicAccessBlock"), E::GetPublicAccessBlock),
    row("PUT", B, Some("publicAccessBlock"), E::PutPublicAccessBlock),
    row(
        "DELETE",
        B,
        Some("publicAccessBlock"),
        E::DeletePublicAccessBlock,
    ),
    row(
        "GET",
        B,
        Some("ownershipControls"),
        E::GetBucketOwnershipControls,
    ),
    row(
        "PUT",
        B,
        Some("ownershipControls"),
        E::PutBucketOwnershipControls,
    ),
    row(
        "DELETE",
        B,
        Some("ownershipControls"),
        E::DeleteBucketOwnershipControls,
    ),
    row("GET", B, Some("lifecycle"), E::GetBucketLifecycle),
    row("PUT", B, Some("lifecycle"), E::PutBucketLifecycle),
    row("DELETE", B, Some("lifecycle"), E::DeleteBucketLifecycle),
    row("GET", B, Some("tagging"), E::GetBucketTagging),
    row("PUT", B, Some("tagging"), E::PutBucketTagging),
    row("DELETE", B, Some("tagging"), E::DeleteBucketTagging),
    row("GET", B, Some("cors"), E::GetBucketCors),
    row("PUT", B, Some("cors"), E::PutBucketCors),
    row("DELETE", B, Some("cors"), E::DeleteBucketCors),
    row("GET", B, Some("versioning"), E::GetBucketVersioning),
    row("PUT", B, Some("versioning"), E::PutBucketVersioning),
    row("GET", O, None, E::GetObject),
    row("HEAD", O, None, E::HeadObject),
    row("PUT", O, None, E::PutObject),
    copy_row(None, E::CopyObject),
    row("DELETE", O, None, E::DeleteObject),
    row("GET", O, Some("attributes"), E::GetObjectAttributes),
    row("GET", O, Some("tagging"), E::GetObjectTagging),
    row("PUT", O, Some("tagging"), E::PutObjectTagging),
    row("DELETE", O, Some("tagging"), E::DeleteObjectTagging),
    row("GET", O, Some("acl"), E::GetObjectAcl),
    row("PUT", O, Some("acl"), E::PutObjectAcl),
    row("POST", O, Some("uploads"), E::CreateMultipartUpload),
    row("PUT", O, Some("uploadId"), E::UploadPart),
    copy_row(Some("uploadId"), E::UploadPartCopy),
    row("POST", O, Some("uploadId"), E::CompleteMultipartUpload),
    row("DELETE", O, Some("uploadId"), E::AbortMultipartUpload),
    row("GET", O, Some("uploadId"), E::ListParts),
];

/// Sub-resources S3 defines that Hoard does not implement: naming one answers 501
/// NotImplemented, never another operation's answer.
pub const UNSUPPORTED_SELECTORS: &[&str] = &[
    "accelerate",
    "analytics",
    "encryption",
    "intelligent-tiering",
    "inventory",
    "legal-hold",
    "logging",
    "metadataConfiguration",
    "metadataTable",
    "metrics",
    "notification",
    "object-lock",
    "renameObject",
    "replication",
    "requestPayment",
    "restore",
    "retention",
    "select",
    "session",
    "torrent",
    "website",
];

/// Every query parameter that selects an operation: the selectors of [`ROUTES`] and
/// [`UNSUPPORTED_SELECTORS`].
pub fn is_selector(name: &str) -> bool {
    UNSUPPORTED_SELECTORS.contains(&name) || ROUTES.iter().any(|r| r.selector == Some(name))
}

impl Endpoint {
    /// Parses a request into its operation: `method`, `target`, the query's parameter names
    /// and whether `x-amz-copy-source` is present.
    ///
    /// Errors: InvalidRequest (400) for two selectors, or a copy source on an operation that
    /// takes none; NotImplemented (501) for a selector Hoard does not implement;
    /// MethodNotAllowed (405) for a method the target and selector do not take.
    pub fn parse<'q>(
        method: &Method,
        target: Target,
        query_names: impl IntoIterator<Item = &'q str>,
        copy_source: bool,
    ) -> S3Result<Endpoint> {
        if *method == Method::OPTIONS && target != Target::Service {
            return Ok(Endpoint::PreflightCors);
        }
        let mut selectors: Vec<&str> = query_names.into_iter().filter(|n| is_selector(n)).collect();
        selectors.sort_unstable();
        selectors.dedup();
        if selectors.len() > 1 {
            return Err(s3_error!(
                InvalidRequest,
                BAD_REQUEST,
                "a request names one sub-resource; this one names {}",
                selectors
                    .iter()
                    .map(|s| format!("?{s}"))
                    .collect::<Vec<_>>()
                    .join(" and ")
            ));
        }
        let selector = selectors.first().copied();
        if let Some(s) = selector.filter(|s| UNSUPPORTED_SELECTORS.contains(s)) {
            return Err(s3_error!(
                NotImplemented,
                NOT_IMPLEMENTED,
                "the ?{s} sub-resource is not implemented"
            ));
        }
        let same_place = |r: &&Row| r.target == target && r.selector == selector;
        let found = ROUTES
            .iter()
            .filter(same_place)
            .find(|r| r.method == method.as_str() && r.copy_source == copy_source);
        if let Some(r) = found {
            return Ok(r.endpoint);
        }
        let place = match (target, selector) {
            (Target::Service, _) => "the service".to_string(),
            (Target::Bucket, None) => "a bucket".to_string(),
            (Target::Object, None) => "an object".to_string(),
            (Target::Bucket, Some(s)) => format!("a bucket's ?{s}"),
            (Target::Object, Some(s)) => format!("an object's ?{s}"),
        };
        if ROUTES
            .iter()
            .filter(same_place)
            .any(|r| r.method == method.as_str())
        {
            return Err(s3_error!(
                InvalidRequest,
                BAD_REQUEST,
                "x-amz-copy-source is not allowed on {method} of {place}"
            ));
        }
        if ROUTES.iter().any(|r| same_place(&r)) {
            return Err(s3_error!(
                MethodNotAllowed,
                METHOD_NOT_ALLOWED,
                "{method} is not allowed on {place}"
            ));
        }
        Err(match selector {
            Some(s) => s3_error!(
                InvalidRequest,
                BAD_REQUEST,
                "the ?{s} sub-resource does not apply to {}",
                if target == Target::Object {
                    "an object"
                } else {
                    "this target"
                }
            ),
            None => s3_error!(
                MethodNotAllowed,
                METHOD_NOT_ALLOWED,
                "{method} is not allowed on {place}"
            ),
        })
    }

    /// The IAM action S3 authorizes for this operation (the name bucket policies use);
    /// `version` is whether the request names a `versionId`. `None` for the preflight, which
    /// is never authorized, and `s3:ListAllMyBuckets` for the service.
    pub fn action(self, version: bool) -> Option<&'static str> {
        let v = |plain, versioned| Some(if version { versioned } else { plain });
        match self {
            E::ListBuckets => Some("s3:ListAllMyBuckets"),
            E::CreateBucket => Some("s3:CreateBucket"),
            E::DeleteBucket => Some("s3:DeleteBucket"),
            E::HeadBucket | E::ListObjects => Some("s3:ListBucket"),
            E::ListObjectVersions => Some("s3:ListBucketVersions"),
            E::ListMultipartUploads => Some("s3:ListBucketMultipartUploads"),
            E::GetBucketLocation | E::GetBucketProtection => Some("s3:GetBucketLocation"),
            E::DeleteObjects => Some("s3:DeleteObject"),
            E::PostObject
            | E::PutObject
            | E::CopyObject
            | E::CreateMultipartUpload
            | E::UploadPart
            | E::UploadPartCopy
            | E::CompleteMultipartUpload => Some("s3:PutObject"),
            E::GetBucketAcl => Some("s3:GetBucketAcl"),
            E::PutBucketAcl => Some("s3:PutBucketAcl"),
            E::GetBucketPolicy => Some("s3:GetBucketPolicy"),
            E::PutBucketPolicy => Some("s3:PutBucketPolicy"),
            E::DeleteBucketPolicy => Some("s3:DeleteBucketPolicy"),
            E::GetBucketPolicyStatus => Some("s3:GetBucketPolicyStatus"),
            E::GetPublicAccessBlock => Some("s3:GetBucketPublicAccessBlock"),
            E::PutPublicAccessBlock | E::DeletePublicAccessBlock => {
                Some("s3:PutBucketPublicAccessBlock")
            }
            E::GetBucketOwnershipControls => Some("s3:GetBucketOwnershipControls"),
            E::PutBucketOwnershipControls | E::DeleteBucketOwnershipControls => {
                Some("s3:PutBucketOwnershipControls")
            }
            E::GetBucketLifecycle => Some("s3:GetLifecycleConfiguration"),
            E::PutBucketLifecycle | E::DeleteBucketLifecycle => {
                Some("s3:PutLifecycleConfiguration")
            }
            E::GetBucketTagging => Some("s3:GetBucketTagging"),
            E::PutBucketTagging | E::DeleteBucketTagging => Some("s3:PutBucketTagging"),
            E::GetBucketCors => Some("s3:GetBucketCORS"),
            E::PutBucketCors | E::DeleteBucketCors => Some("s3:PutBucketCORS"),
            E::GetBucketVersioning => Some("s3:GetBucketVersioning"),
            E::PutBucketVersioning => Some("s3:PutBucketVersioning"),
            E::GetObject | E::HeadObject => v("s3:GetObject", "s3:GetObjectVersion"),
            E::DeleteObject => v("s3:DeleteObject", "s3:DeleteObjectVersion"),
            E::GetObjectAttributes => v("s3:GetObjectAttributes", "s3:GetObjectVersionAttributes"),
            E::GetObjectTagging => v("s3:GetObjectTagging", "s3:GetObjectVersionTagging"),
            E::PutObjectTagging => v("s3:PutObjectTagging", "s3:PutObjectVersionTagging"),
            E::DeleteObjectTagging => v("s3:DeleteObjectTagging", "s3:DeleteObjectVersionTagging"),
            E::GetObjectAcl => v("s3:GetObjectAcl", "s3:GetObjectVersionAcl"),
            E::PutObjectAcl => v("s3:PutObjectAcl", "s3:PutObjectVersionAcl"),
            E::AbortMultipartUpload => Some("s3:AbortMultipartUpload"),
            E::ListParts => Some("s3:ListMultipartUploadParts"),
            E::PreflightCors => None,
        }
    }

    /// The operation's name, for metrics and usage (`GetObject`, `PostObject`, ...).
    pub fn name(self) -> &'static str {
        match self {
            E::PreflightCors => "PreflightCORS",
            // The S3 action names of these, which usage reports have always used.
            E::ListObjects | E::HeadBucket => "ListBucket",
            e => e.variant_name(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const METHODS: &[&str] = &["GET", "HEAD", "PUT", "POST", "DELETE"];
    const TARGETS: &[Target] = &[Target::Service, Target::Bucket, Target::Object];

    fn all_selectors() -> Vec<&'static str> {
        let mut all: Vec<&'static str> = ROUTES.iter().filter_map(|r| r.selector).collect();
        all.extend(UNSUPPORTED_SELECTORS);
        all.sort_unstable();
        all.dedup();
        all
    }

    fn parse(m: &str, t: Target, q: &[&str], copy: bool) -> S3Result<Endpoint> {
        Endpoint::parse(
            &Method::from_bytes(m.as_bytes()).unwrap(),
            t,
            q.iter().copied(),
            copy,
        )
    }

    #[test]
    fn every_row_is_reachable_and_unique() {
        for (i, r) in ROUTES.iter().enumerate() {
            let q: Vec<&str> = r.selector.into_iter().collect();
            assert_eq!(
                parse(r.method, r.target, &q, r.copy_source).unwrap(),
                r.endpoint,
                "{r:?}"
            );
            for other in &ROUTES[i + 1..] {
                assert!(
                    (
                        other.method,
                        other.target,
                        other.selector,
                        other.copy_source
                    ) != (r.method, r.target, r.selector, r.copy_source),
                    "two rows for {r:?}"
                );
                assert_ne!(other.endpoint, r.endpoint, "one row per endpoint");
            }
        }
    }

    /// Every pair of sub-resources on every method and target is refused, and with the
    /// modifiers real clients add (`versionId`, `partNumber`, listing parameters) a single
    /// selector routes to its own row: the action authorized is the action of the handler
    /// that runs, because both come from the one [`Endpoint`].
    #[test]
    fn two_selectors_are_refused_everywhere() {
        let all = all_selectors();
        for m in METHODS {
            for t in TARGETS {
                for (i, a) in all.iter().enumerate() {
                    for b in &all[i + 1..] {
                        for copy in [false, true] {
                            let e =
                                parse(m, *t, &[a, b, "versionId", "partNumber"], copy).unwrap_err();
                            assert_eq!(e.code, "InvalidRequest", "{m} {t:?} ?{a}&{b}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn each_selector_routes_only_to_its_row() {
        let mut routed = 0;
        for m in METHODS {
            for t in TARGETS {
                for sel in all_selectors().into_iter().map(Some).chain([None]) {
                    for copy in [false, true] {
                        let mut q = vec!["versionId", "partNumber", "prefix", "x-id"];
                        q.extend(sel);
                        let got = parse(m, *t, &q, copy);
                        let row = ROUTES.iter().find(|r| {
                            r.method == *m
                                && r.target == *t
                                && r.selector == sel
                                && r.copy_source == copy
                        });
                        match (row, got) {
                            (Some(r), Ok(e)) => {
                                assert_eq!(e, r.endpoint);
                                routed += 1;
                            }
                            (None, Err(e)) => assert!(
                                ["InvalidRequest", "MethodNotAllowed", "NotImplemented"]
                                    .contains(&e.code),
                                "{m} {t:?} {sel:?}: {}",
                                e.code
                            ),
                            (row, got) => panic!("{m} {t:?} {sel:?} {copy}: {row:?} {got:?}"),
                        }
                    }
                }
            }
        }
        assert_eq!(routed, ROUTES.len());
    }

    #[test]
    fn the_multipart_bypass_is_closed() {
        // PUT ?acl&partNumber=1&uploadId=x once ran UploadPart authorized as PutObjectAcl.
        for q in [
            &["acl", "partNumber", "uploadId"][..],
            &["tagging", "uploadId"],
            &["attributes", "uploadId"],
        ] {
            for m in ["PUT", "GET", "POST", "DELETE"] {
                assert!(parse(m, Target::Object, q, false).is_err(), "{m} {q:?}");
            }
        }
        assert!(parse("PUT", Target::Object, &["uploadId", "acl"], true).is_err());
        assert_eq!(
            parse("PUT", Target::Object, &["uploadId", "partNumber"], true).unwrap(),
            Endpoint::UploadPartCopy
        );
    }

    #[test]
    fn unsupported_selectors_answer_not_implemented() {
        for s in UNSUPPORTED_SELECTORS {
            let e = parse("GET", Target::Bucket, &[s], false).unwrap_err();
            assert_eq!(e.code, "NotImplemented", "{s}");
        }
    }

    #[test]
    fn versioned_actions_follow_s3() {
        assert_eq!(
            Endpoint::GetObject.action(true),
            Some("s3:GetObjectVersion")
        );
        assert_eq!(
            Endpoint::PutObjectTagging.action(true),
            Some("s3:PutObjectVersionTagging")
        );
        assert_eq!(
            Endpoint::ListParts.action(false),
            Some("s3:ListMultipartUploadParts")
        );
        assert_eq!(Endpoint::PreflightCors.action(false), None);
        for r in ROUTES {
            assert!(r
                .endpoint
                .action(false)
                .is_some_and(|a| a.starts_with("s3:")));
        }
    }
}
