//! Authorization: the one evaluation that decides every bucket and object request, after
//! [`super::authenticate`] says who is calling. It follows the S3 User Guide, "How Amazon S3
//! authorizes a request" and "Policy evaluation logic", for a box whose buckets are owned by
//! accounts and whose users have the rights of their account:
//!
//! 1. An explicit `Deny` in the bucket policy that applies refuses the request, whoever asks
//!    (the owner's users too).
//! 2. A user of the bucket owner's account may do anything to the bucket and to the objects
//!    its account owns (owner rights). The bucket policy and public access block are the
//!    owner's alone: no policy or ACL lets another account read or change them.
//! 3. An `Allow` in the bucket policy that applies allows it (a public statement only when
//!    the bucket's public access block does not set `RestrictPublicBuckets`).
//! 4. The ACL grants the permission the action needs: the bucket's ACL for bucket actions
//!    and writes (READ to list, WRITE to put and delete, READ_ACP / WRITE_ACP for the ACL),
//!    the object's ACL for object reads (READ, READ_ACP, WRITE_ACP). Grants to AllUsers and
//!    AuthenticatedUsers count for nothing under `IgnorePublicAcls`.
//! 5. Otherwise: `403 AccessDenied`.
//!
//! One exception comes first: a store admin, and an admin of the owning account, may always
//! read, replace and delete a bucket's policy, so a deny-all policy cannot lock a bucket away
//! for good (AWS lets the owning account's root user do so).
//!
//! Anonymous callers (no signature) are a principal like any other: `"*"` in a policy,
//! `AllUsers` in an ACL; they get exactly what those grant. An object written into the bucket
//! by another account (through a policy or a public-write ACL) is owned by that account, as
//! S3's `ObjectWriter` ownership has it: the bucket owner reads it only if its ACL grants so
//! (`bucket-owner-read`, `bucket-owner-full-control`), but may always delete it.
//!
//! Object reads cannot be decided before the object's record is read: [`authorize`] returns
//! a [`Verdict`] whose [`Verdict::check_object`] the operation calls with the record's stored
//! headers (no extra metadata read).
//!
//! Must not import `ops`, `request`, `state`, `body` or `server`: it decides from the request
//! context and the bucket settings it is handed.

use serde::{Deserialize, Serialize};

use super::acl::{
    Acl, Ownership, Permission, BUCKET_ACL_ATTRIBUTE, OBJECT_ACL_HEADER, OWNERSHIP_ATTRIBUTE,
};
use super::policy::{Decision, Policy, RequestContext, BUCKET_POLICY_ATTRIBUTE};
use super::Auth;
use crate::error::{S3Error, S3Result};
use crate::s3_error;
use crate::xml::{malformed, walk, Node};

/// The bucket attribute holding the public access block.
pub const PUBLIC_ACCESS_BLOCK_ATTRIBUTE: &str = "public-access-block";

/// A bucket's public access block (S3 User Guide, "Blocking public access to your Amazon S3
/// storage"). Absent means all four false: Hoard does not block by default, as S3-compatible
/// stores on premises do not.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicAccessBlock {
    /// Refuse requests that set a public ACL.
    pub block_public_acls: bool,
    /// Public ACL grants count for nothing.
    pub ignore_public_acls: bool,
    /// Refuse a public bucket policy.
    pub block_public_policy: bool,
    /// Public policy statements allow only the owner's account.
    pub restrict_public_buckets: bool,
}

/// Everything about a bucket that authorization reads, loaded in one metadata scan.
#[derive(Clone, Debug)]
pub struct BucketAccess {
    /// Bucket name.
    pub bucket: String,
    /// The owning account.
    pub owner: String,
    /// The bucket's ACL (the owner's `private` if none was set).
    pub acl: Acl,
    /// The bucket policy, if any, as put.
    pub policy_text: Option<Vec<u8>>,
    /// The parsed bucket policy.
    pub policy: Option<Policy>,
    /// The public access block.
    pub block: PublicAccessBlock,
    /// Whether a public access block is set (all four false is a setting too).
    pub block_set: bool,
    /// Object ownership: with BucketOwnerEnforced, ACLs grant nothing.
    pub ownership: Ownership,
    /// Every attribute of the bucket, as read (lifecycle rules, CORS...).
    pub attributes: Vec<(String, Vec<u8>)>,
}

impl BucketAccess {
    /// From the bucket's attributes (see [`hoard::Store::bucket_attributes`]); `owner` is
    /// its owning account.
    ///
    /// Errors: InternalError for a stored attribute that does not parse.
    pub fn load(bucket: &str, owner: &str, attributes: &[(String, Vec<u8>)]) -> S3Result<Self> {
        let get = |name: &str| {
            attributes
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_slice())
        };
        let acl = match get(BUCKET_ACL_ATTRIBUTE) {
            Some(v) => Acl::from_json(v)?,
            None => Acl::private(owner),
        };
        let policy_text = get(BUCKET_POLICY_ATTRIBUTE).map(<[u8]>::to_vec);
        let policy = match &policy_text {
            Some(t) => Some(Policy::parse(t, bucket).map_err(|e| {
                s3_error!(
                    InternalError,
                    INTERNAL_SERVER_ERROR,
                    "the stored policy of bucket {bucket} does not parse: {}",
                    e.message
                )
            })?),
            None => None,
        };
        let block = match get(PUBLIC_ACCESS_BLOCK_ATTRIBUTE) {
            Some(v) => serde_json::from_slice(v).map_err(|e| {
                s3_error!(
                    InternalError,
                    INTERNAL_SERVER_ERROR,
                    "the stored public access block of bucket {bucket} does not parse: {e}"
                )
            })?,
            None => PublicAccessBlock::default(),
        };
        let ownership = match get(OWNERSHIP_ATTRIBUTE) {
            Some(v) => Ownership::parse(&String::from_utf8_lossy(v))?,
            None => Ownership::default(),
        };
        Ok(BucketAccess {
            bucket: bucket.to_string(),
            owner: owner.to_string(),
            ownership,
            acl,
            policy_text,
            policy,
            block,
            block_set: get(PUBLIC_ACCESS_BLOCK_ATTRIBUTE).is_some(),
            attributes: attributes.to_vec(),
        })
    }
}

/// Parsed [`BucketAccess`] by bucket, reused while the bucket's owner and attributes are
/// byte-for-byte what they were parsed from (the attributes are read with every request, so
/// a change is seen at once; only the parsing is saved). Holds at most
/// [`AccessCache::MAX_BUCKETS`] buckets; past that it starts over.
#[derive(Default)]
pub struct AccessCache {
    parsed: parking_lot::Mutex<std::collections::HashMap<String, std::sync::Arc<BucketAccess>>>,
}

impl AccessCache {
    /// Most buckets kept.
    pub const MAX_BUCKETS: usize = 4096;

    /// The bucket's access settings, parsed from `attributes` unless the same were parsed
    /// before.
    ///
    /// Errors: as [`BucketAccess::load`].
    pub fn get(
        &self,
        bucket: &str,
        owner: &str,
        attributes: Vec<(String, Vec<u8>)>,
    ) -> S3Result<std::sync::Arc<BucketAccess>> {
        if let Some(a) = self.parsed.lock().get(bucket) {
            // A parsed access keeps the owner and attributes it was parsed from.
            if a.owner == owner && a.attributes == attributes {
                return Ok(a.clone());
            }
        }
        let access = std::sync::Arc::new(BucketAccess::load(bucket, owner, &attributes)?);
        let mut parsed = self.parsed.lock();
        if parsed.len() >= Self::MAX_BUCKETS {
            parsed.clear();
        }
        parsed.insert(bucket.to_string(), access.clone());
        Ok(access)
    }
}

/// The actions on a bucket's policy itself.
const POLICY_ACTIONS: &[&str] = &[
    "s3:GetBucketPolicy",
    "s3:PutBucketPolicy",
    "s3:DeleteBucketPolicy",
];

/// Actions only the bucket owner's account may take.
const OWNER_ONLY: &[&str] = &[
    "s3:GetBucketPolicy",
    "s3:PutBucketPolicy",
    "s3:DeleteBucketPolicy",
    "s3:PutBucketPublicAccessBlock",
];

/// The ACL permission an action needs, and whether it is read from the object's ACL (S3 User
/// Guide, "Access control list (ACL) overview", mapping of ACL permissions to actions).
/// Hoard differs in one place: S3 lets only the initiator (or a policy) list an upload's parts
/// and abort it; Hoard lets whoever the bucket ACL lets write (WRITE) do both, since a
/// grantee that may upload parts must be able to clean up after itself.
fn acl_permission(action: &str) -> Option<(Permission, bool)> {
    Some(match action {
        "s3:ListBucket" | "s3:ListBucketVersions" | "s3:ListBucketMultipartUploads" => {
            (Permission::Read, false)
        }
        "s3:PutObject"
        | "s3:DeleteObject"
        | "s3:DeleteObjectVersion"
        | "s3:AbortMultipartUpload"
        | "s3:ListMultipartUploadParts" => (Permission::Write, false),
        "s3:GetBucketAcl" => (Permission::ReadAcp, false),
        "s3:PutBucketAcl" => (Permission::WriteAcp, false),
        "s3:GetObject"
        | "s3:GetObjectVersion"
        | "s3:GetObjectTagging"
        | "s3:GetObjectVersionTagging"
        | "s3:GetObjectAttributes"
        | "s3:GetObjectVersionAttributes" => (Permission::Read, true),
        "s3:GetObjectAcl" | "s3:GetObjectVersionAcl" => (Permission::ReadAcp, true),
        "s3:PutObjectAcl" | "s3:PutObjectVersionAcl" => (Permission::WriteAcp, true),
        _ => return None,
    })
}

/// The outcome of [`authorize`]: allowed, or (for object reads) to be settled by the
/// object's ACL with [`Verdict::check_object`].
#[derive(Clone, Debug)]
pub struct Verdict {
    /// Allowed by owner rights, the policy or the bucket ACL.
    bucket_allowed: bool,
    /// For object reads: what the object's ACL must grant.
    object: Option<ObjectCheck>,
    denial: Option<S3Error>,
}

#[derive(Clone, Debug)]
struct ObjectCheck {
    caller: Option<String>,
    bucket_owner: String,
    permission: Permission,
    ignore_public: bool,
    action: String,
    resource: String,
}

fn denied(action: &str, resource: &str, who: Option<&str>) -> S3Error {
    s3_error!(
        AccessDenied,
        FORBIDDEN,
        "{} may not {action} on {resource}",
        match who {
            Some(a) => format!("account {a}"),
            None => "an anonymous caller".to_string(),
        }
    )
}

impl Verdict {
    /// Whether the request may go on before any object is read.
    ///
    /// Errors: AccessDenied naming the caller, the action and the resource.
    pub fn check(&self) -> S3Result<()> {
        match &self.denial {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Settles an object read with the object's stored headers (its ACL, if it has one).
    ///
    /// Errors: AccessDenied.
    pub fn check_object(&self, headers: &[(String, String)]) -> S3Result<()> {
        self.check()?;
        let Some(c) = &self.object else {
            return Ok(());
        };
        let acl = headers
            .iter()
            .find(|(n, _)| n == OBJECT_ACL_HEADER)
            .map(|(_, v)| Acl::from_json(v.as_bytes()))
            .transpose()?;
        let allowed = match &acl {
            // No ACL: the bucket owner's object, private.
            None => self.bucket_allowed,
            Some(acl) => {
                c.caller.as_deref() == Some(acl.owner.as_str())
                    || acl.allows(c.caller.as_deref(), c.permission, c.ignore_public)
                    || (self.bucket_allowed && acl.owner == c.bucket_owner)
            }
        };
        if allowed {
            Ok(())
        } else {
            Err(denied(&c.action, &c.resource, c.caller.as_deref()))
        }
    }
}

/// Decides a request on a bucket (`key` `None`) or an object, by the rules of the module
/// doc. `cx` gives the request's context for policy conditions.
pub fn authorize(access: &BucketAccess, auth: &Auth, cx: &RequestContext<'_>) -> Verdict {
    let caller = (!auth.anonymous).then_some(auth.account_id.as_str());
    let owner = caller == Some(access.owner.as_str());
    let decision = match &access.policy {
        Some(p) => p.decide(cx, owner || !access.block.restrict_public_buckets),
        None => Decision::NotApplicable,
    };
    let deny = |why: S3Error| Verdict {
        bucket_allowed: false,
        object: None,
        denial: Some(why),
    };
    // A store admin, and an admin of the owning account, may always read, replace and delete
    // a bucket's policy, whatever it says: a deny-all policy cannot lock a bucket away for
    // good (AWS lets the owning account's root user do so).
    if auth.admin && (owner || auth.store_admin) && POLICY_ACTIONS.contains(&cx.action) {
        return Verdict {
            bucket_allowed: true,
            object: None,
            denial: None,
        };
    }
    if decision == Decision::Deny {
        return deny(s3_error!(
            AccessDenied,
            FORBIDDEN,
            "the policy of bucket {} denies {} on {}",
            access.bucket,
            cx.action,
            cx.resource
        ));
    }
    // The bucket's policy and public access block are the owner's alone (S3: the caller must
    // belong to the bucket owner's account, whatever a policy says).
    if OWNER_ONLY.contains(&cx.action) && !owner {
        return deny(denied(cx.action, cx.resource, caller));
    }
    // With ACLs disabled (BucketOwnerEnforced) only the owner and the policy grant access.
    let needs = acl_permission(cx.action).filter(|_| access.ownership.acls_enabled());
    let ignore_public = access.block.ignore_public_acls;
    let bucket_allowed = owner
        || decision == Decision::Allow
        || needs.is_some_and(|(p, on_object)| {
            !on_object && access.acl.allows(caller, p, ignore_public)
        });
    let object = needs
        .filter(|(_, on_object)| *on_object)
        .map(|(permission, _)| ObjectCheck {
            caller: caller.map(str::to_string),
            bucket_owner: access.owner.clone(),
            permission,
            ignore_public,
            action: cx.action.to_string(),
            resource: cx.resource.to_string(),
        });
    if !bucket_allowed && object.is_none() {
        return deny(denied(cx.action, cx.resource, caller));
    }
    Verdict {
        bucket_allowed,
        object,
        denial: None,
    }
}

/// For a request decided key by key (DeleteObjects), the check made before its body is read:
/// the caller must be the owner's, hold the bucket ACL permission one of `actions` needs, or
/// be named with one of them by an Allow of the policy for some key. A caller nothing could
/// allow is refused without a byte of its body read.
///
/// Errors: AccessDenied.
pub fn authorize_some_key(
    access: &BucketAccess,
    auth: &Auth,
    cx: &RequestContext<'_>,
    actions: &[&str],
) -> S3Result<()> {
    let caller = (!auth.anonymous).then_some(auth.account_id.as_str());
    let owner = caller == Some(access.owner.as_str());
    let public_allows = owner || !access.block.restrict_public_buckets;
    let may = |action: &&str| {
        let acls = access.ownership.acls_enabled();
        let by_acl = acl_permission(action)
            .filter(|_| acls)
            .is_some_and(|(p, on_object)| {
                !on_object
                    && access
                        .acl
                        .allows(caller, p, access.block.ignore_public_acls)
            });
        let cx = RequestContext {
            action,
            ..cx.clone()
        };
        by_acl
            || access
                .policy
                .as_ref()
                .is_some_and(|p| p.may_allow(&cx, public_allows))
    };
    if owner || actions.iter().any(may) {
        Ok(())
    } else {
        Err(denied(cx.action, cx.resource, caller))
    }
}

/// Refuses a public ACL on a bucket whose public access block sets `BlockPublicAcls`.
///
/// Errors: AccessDenied.
pub fn check_acl_allowed(access: &BucketAccess, acl: &Acl) -> S3Result<()> {
    if access.block.block_public_acls && acl.is_public() {
        return Err(s3_error!(
            AccessDenied,
            FORBIDDEN,
            "bucket {} blocks public ACLs (its public access block sets BlockPublicAcls)",
            access.bucket
        ));
    }
    Ok(())
}

/// Parses `<PublicAccessBlockConfiguration>` (each of its four flags `true` or `false`,
/// absent meaning false).
pub fn parse_public_access_block(body: &[u8]) -> S3Result<crate::auth::access::PublicAccessBlock> {
    let mut block = crate::auth::access::PublicAccessBlock::default();
    let mut seen_root = false;
    walk(body, |node| {
        if let Node::Text(path, text) = &node {
            let Some(name) = path.strip_prefix("PublicAccessBlockConfiguration/") else {
                return Ok(());
            };
            let value = match text.as_str() {
                "true" | "TRUE" | "True" => true,
                "false" | "FALSE" | "False" => false,
                other => {
                    return Err(malformed(format!(
                        "{name} must be true or false, not {other:?}"
                    )))
                }
            };
            match name {
                "BlockPublicAcls" => block.block_public_acls = value,
                "IgnorePublicAcls" => block.ignore_public_acls = value,
                "BlockPublicPolicy" => block.block_public_policy = value,
                "RestrictPublicBuckets" => block.restrict_public_buckets = value,
                other => return Err(malformed(format!("unknown element {other}"))),
            }
        }
        if let Node::End("PublicAccessBlockConfiguration") = node {
            seen_root = true;
        }
        Ok(())
    })?;
    if !seen_root {
        return Err(malformed(
            "the body is not a PublicAccessBlockConfiguration document",
        ));
    }
    Ok(block)
}
