//! Access control lists (Amazon S3 User Guide, "Access control list (ACL) overview"): an owner
//! and grants of READ, WRITE, READ_ACP, WRITE_ACP or FULL_CONTROL to an account (a
//! `CanonicalUser` whose ID is the 12-digit account ID), to everyone (`AllUsers`, anonymous
//! callers included) or to every signed caller (`AuthenticatedUsers`).
//!
//! Set by a canned ACL (`x-amz-acl`), by `x-amz-grant-*` headers, or by an
//! `AccessControlPolicy` document (`PUT ?acl`). A bucket's ACL is a bucket attribute; an
//! object's lives with its version as the stored header [`OBJECT_ACL_HEADER`], so an
//! overwrite replaces it and a delete removes it. An object without one is the bucket owner's,
//! private. Stored as JSON.
//!
//! Must not import `ops`, `request`, `state`, `body` or `server`, nor `auth::access` (which
//! reads ACLs, not the reverse).

use serde::{Deserialize, Serialize};

use crate::error::S3Result;
use crate::s3_error;
use crate::xml::XmlBuilder;
use crate::xml::{malformed, walk, Node};

/// The bucket attribute holding a bucket's ACL.
pub const BUCKET_ACL_ATTRIBUTE: &str = "acl";
/// The stored object header holding an object's ACL.
pub const OBJECT_ACL_HEADER: &str = "x-hoard-acl";
/// URI of the everyone group.
pub const ALL_USERS_URI: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
/// URI of the signed-callers group.
pub const AUTHENTICATED_USERS_URI: &str =
    "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";

/// Who a grant is to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Grantee {
    /// An account (its 12-digit ID).
    Account(String),
    /// Everyone, anonymous callers included.
    AllUsers,
    /// Every caller with a valid signature.
    AuthenticatedUsers,
}

/// What a grant allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Permission {
    /// Bucket: list objects. Object: read data and metadata.
    Read,
    /// Bucket: create, overwrite and delete objects. (Not for objects.)
    Write,
    /// Read the ACL.
    ReadAcp,
    /// Write the ACL.
    WriteAcp,
    /// All of the above.
    FullControl,
}

impl Permission {
    /// S3's name (`READ`, `FULL_CONTROL`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Permission::Read => "READ",
            Permission::Write => "WRITE",
            Permission::ReadAcp => "READ_ACP",
            Permission::WriteAcp => "WRITE_ACP",
            Permission::FullControl => "FULL_CONTROL",
        }
    }

    fn parse(s: &str) -> Option<Permission> {
        Some(match s {
            "READ" => Permission::Read,
            "WRITE" => Permission::Write,
            "READ_ACP" => Permission::ReadAcp,
            "WRITE_ACP" => Permission::WriteAcp,
            "FULL_CONTROL" => Permission::FullControl,
            _ => return None,
        })
    }

    /// Whether holding `self` gives `wanted`.
    pub fn covers(self, wanted: Permission) -> bool {
        self == Permission::FullControl || self == wanted
    }
}

/// One grant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// To whom.
    pub grantee: Grantee,
    /// What.
    pub permission: Permission,
}

/// Most grants an ACL may hold (S3 User Guide, "Access control list (ACL) overview": "You can
/// grant permissions ... up to 100 grants per ACL").
pub const MAX_GRANTS: usize = 100;

/// Errors: InvalidArgument past [`MAX_GRANTS`] grants.
fn check_grant_count(n: usize) -> S3Result<()> {
    if n > MAX_GRANTS {
        return Err(s3_error!(
            InvalidArgument,
            BAD_REQUEST,
            "an ACL holds at most {MAX_GRANTS} grants; this one has {n}"
        ));
    }
    Ok(())
}

/// An ACL: the owner (an account ID) and its grants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acl {
    /// The owning account.
    pub owner: String,
    /// Grants, in order.
    pub grants: Vec<Grant>,
}

/// The canned ACLs Hoard accepts (the six of the issue; `aws-exec-read` and
/// `log-delivery-write` name AWS services that do not exist here).
pub const CANNED: &[&str] = &[
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
];

impl Acl {
    /// `private`: the owner has FULL_CONTROL.
    pub fn private(owner: &str) -> Acl {
        Acl {
            owner: owner.to_string(),
            grants: vec![Grant {
                grantee: Grantee::Account(owner.to_string()),
                permission: Permission::FullControl,
            }],
        }
    }

    /// A canned ACL for `owner`; `bucket_owner` is the bucket's owner (for the
    /// `bucket-owner-*` ones, which mean nothing more than `private` on a bucket).
    ///
    /// Errors: InvalidArgument naming the value.
    pub fn canned(name: &str, owner: &str, bucket_owner: &str) -> S3Result<Acl> {
        let mut acl = Acl::private(owner);
        let mut grant = |grantee: Grantee, permission| {
            acl.grants.push(Grant {
                grantee,
                permission,
            })
        };
        match name {
            "private" => {}
            "public-read" => grant(Grantee::AllUsers, Permission::Read),
            "public-read-write" => {
                grant(Grantee::AllUsers, Permission::Read);
                grant(Grantee::AllUsers, Permission::Write);
            }
            "authenticated-read" => grant(Grantee::AuthenticatedUsers, Permission::Read),
            "bucket-owner-read" if owner != bucket_owner => {
                grant(Grantee::Account(bucket_owner.into()), Permission::Read)
            }
            "bucket-owner-full-control" if owner != bucket_owner => grant(
                Grantee::Account(bucket_owner.into()),
                Permission::FullControl,
            ),
            "bucket-owner-read" | "bucket-owner-full-control" => {}
            other => {
                return Err(s3_error!(
                    InvalidArgument,
                    BAD_REQUEST,
                    "x-amz-acl {other:?} is not a canned ACL this server knows ({})",
                    CANNED.join(", ")
                ))
            }
        }
        Ok(acl)
    }

    /// The ACL a create request asks for with `x-amz-acl` or `x-amz-grant-*` headers (not
    /// both), or `None` if it names none. `header` reads a request header; `account_exists`
    /// says whether a grantee ID is an account.
    ///
    /// Errors: InvalidRequest (both forms), InvalidArgument (a bad canned name or grantee),
    /// UnresolvableGrantByEmailAddress.
    pub fn from_headers(
        header: impl Fn(&str) -> Option<String>,
        owner: &str,
        bucket_owner: &str,
        account_exists: impl Fn(&str) -> bool,
    ) -> S3Result<Option<Acl>> {
        let canned = header("x-amz-acl");
        let grants: Vec<(String, Permission)> = GRANT_HEADERS
            .iter()
            .filter_map(|(h, p)| header(h).map(|v| (v, *p)))
            .collect();
        match (canned, grants.is_empty()) {
            (None, true) => Ok(None),
            (Some(_), false) => Err(s3_error!(
                InvalidRequest,
                BAD_REQUEST,
                "specify either x-amz-acl or x-amz-grant-* headers, not both"
            )),
            (Some(name), true) => Acl::canned(name.trim(), owner, bucket_owner).map(Some),
            (None, false) => {
                let mut acl = Acl {
                    owner: owner.to_string(),
                    grants: Vec::new(),
                };
                for (value, permission) in grants {
                    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                        let (kind, v) = item.split_once('=').ok_or_else(|| bad_grantee(item))?;
                        let v = v.trim().trim_matches('"');
                        let grantee = match kind.trim() {
                            "id" => account_grantee(v, &account_exists)?,
                            "uri" => group_grantee(v)?,
                            "emailAddress" => return Err(no_email(v)),
                            _ => return Err(bad_grantee(item)),
                        };
                        acl.grants.push(Grant {
                            grantee,
                            permission,
                        });
                        check_grant_count(acl.grants.len())?;
                    }
                }
                Ok(Some(acl))
            }
        }
    }

    /// Whether a caller of `account` (`None`: anonymous) holds `wanted` by this ACL. With
    /// `ignore_public` (a public access block's IgnorePublicAcls), grants to AllUsers and
    /// AuthenticatedUsers count for nothing.
    pub fn allows(&self, account: Option<&str>, wanted: Permission, ignore_public: bool) -> bool {
        self.grants.iter().any(|g| {
            g.permission.covers(wanted)
                && match &g.grantee {
                    Grantee::Account(id) => account == Some(id.as_str()),
                    Grantee::AllUsers => !ignore_public,
                    Grantee::AuthenticatedUsers => !ignore_public && account.is_some(),
                }
        })
    }

    /// Whether it grants anything to AllUsers or AuthenticatedUsers.
    pub fn is_public(&self) -> bool {
        self.grants
            .iter()
            .any(|g| matches!(g.grantee, Grantee::AllUsers | Grantee::AuthenticatedUsers))
    }

    /// The stored form.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an ACL serialises")
    }

    /// Reads the stored form.
    ///
    /// Errors: InternalError naming what is wrong (a stored ACL is Hoard's own writing).
    pub fn from_json(s: &[u8]) -> S3Result<Acl> {
        serde_json::from_slice(s).map_err(|e| {
            s3_error!(
                InternalError,
                INTERNAL_SERVER_ERROR,
                "a stored ACL does not parse: {e}"
            )
        })
    }

    /// The `AccessControlPolicy` document (GetBucketAcl, GetObjectAcl).
    pub fn to_xml(&self) -> Vec<u8> {
        let mut x = XmlBuilder::new("AccessControlPolicy");
        x.open("Owner")
            .elem("ID", &self.owner)
            .elem("DisplayName", &self.owner)
            .close("Owner");
        x.open("AccessControlList");
        for g in &self.grants {
            x.open("Grant");
            match &g.grantee {
                Grantee::Account(id) => {
                    x.open_with(
                        "Grantee",
                        &[
                            ("xmlns:xsi", "http://www.w3.org/2001/XMLSchema-instance"),
                            ("xsi:type", "CanonicalUser"),
                        ],
                    )
                    .elem("ID", id)
                    .elem("DisplayName", id)
                    .close("Grantee");
                }
                Grantee::AllUsers | Grantee::AuthenticatedUsers => {
                    let uri = match g.grantee {
                        Grantee::AllUsers => ALL_USERS_URI,
                        _ => AUTHENTICATED_USERS_URI,
                    };
                    x.open_with(
                        "Grantee",
                        &[
                            ("xmlns:xsi", "http://www.w3.org/2001/XMLSchema-instance"),
                            ("xsi:type", "Group"),
                        ],
                    )
                    .elem("URI", uri)
                    .close("Grantee");
                }
            }
            x.elem("Permission", g.permission.name()).close("Grant");
        }
        x.close("AccessControlList");
        x.finish("AccessControlPolicy")
    }

    /// Parses an `AccessControlPolicy` document (PutBucketAcl, PutObjectAcl). Its Owner, if
    /// given, must be `owner`: an ACL cannot hand a bucket or object to another account.
    ///
    /// Errors: MalformedACLError, InvalidArgument (grantee), UnresolvableGrantByEmailAddress,
    /// AccessDenied (another owner).
    pub fn from_xml(
        body: &[u8],
        owner: &str,
        account_exists: impl Fn(&str) -> bool,
    ) -> S3Result<Acl> {
        let doc = parse_access_control_policy(body)?;
        if let Some(o) = doc.owner.as_deref().filter(|o| *o != owner) {
            return Err(s3_error!(
                AccessDenied,
                FORBIDDEN,
                "the ACL names owner {o}, but the owner is {owner}; an ACL cannot change it"
            ));
        }
        let mut acl = Acl {
            owner: owner.to_string(),
            grants: Vec::new(),
        };
        for g in doc.grants {
            let permission = Permission::parse(&g.permission).ok_or_else(|| {
                s3_error!(
                    MalformedACLError,
                    BAD_REQUEST,
                    "permission {:?} is not READ, WRITE, READ_ACP, WRITE_ACP or FULL_CONTROL",
                    g.permission
                )
            })?;
            let grantee = match (g.id, g.uri, g.email) {
                (Some(id), None, None) => account_grantee(&id, &account_exists)?,
                (None, Some(uri), None) => group_grantee(&uri)?,
                (None, None, Some(email)) => return Err(no_email(&email)),
                _ => {
                    return Err(s3_error!(
                        MalformedACLError,
                        BAD_REQUEST,
                        "each Grantee needs exactly one of ID, URI or EmailAddress"
                    ))
                }
            };
            acl.grants.push(Grant {
                grantee,
                permission,
            });
            check_grant_count(acl.grants.len())?;
        }
        Ok(acl)
    }
}

/// The headers that grant a permission at creation, and the permission each grants.
pub const GRANT_HEADERS: [(&str, Permission); 5] = [
    ("x-amz-grant-read", Permission::Read),
    ("x-amz-grant-write", Permission::Write),
    ("x-amz-grant-read-acp", Permission::ReadAcp),
    ("x-amz-grant-write-acp", Permission::WriteAcp),
    ("x-amz-grant-full-control", Permission::FullControl),
];

/// Whether an ACL asks for nothing a BucketOwnerEnforced bucket lacks: `owner` holds
/// FULL_CONTROL, and no one else anything (S3 accepts exactly that, or
/// `bucket-owner-full-control`, on a bucket whose ACLs are disabled).
pub fn is_owner_full_control(acl: &Acl, owner: &str) -> bool {
    acl.grants.iter().all(|g| {
        g.grantee == Grantee::Account(owner.to_string()) && g.permission == Permission::FullControl
    })
}

/// The bucket attribute holding a bucket's object ownership (S3's OwnershipControls).
pub const OWNERSHIP_ATTRIBUTE: &str = "ownership-controls";

/// Who owns the objects written to a bucket, and whether ACLs count (S3 User Guide,
/// "Controlling ownership of objects and disabling ACLs for your bucket").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Ownership {
    /// ACLs are disabled: the bucket owner owns every object and only policies grant access.
    BucketOwnerEnforced,
    /// An object written with the `bucket-owner-full-control` canned ACL is the bucket
    /// owner's; others are their writer's.
    BucketOwnerPreferred,
    /// The writer owns what it writes (Hoard's default; S3's before 2023).
    #[default]
    ObjectWriter,
}

impl Ownership {
    /// S3's name.
    pub fn name(self) -> &'static str {
        match self {
            Ownership::BucketOwnerEnforced => "BucketOwnerEnforced",
            Ownership::BucketOwnerPreferred => "BucketOwnerPreferred",
            Ownership::ObjectWriter => "ObjectWriter",
        }
    }

    /// Parses S3's name.
    ///
    /// Errors: InvalidArgument naming the value.
    pub fn parse(s: &str) -> S3Result<Ownership> {
        [
            Ownership::BucketOwnerEnforced,
            Ownership::BucketOwnerPreferred,
            Ownership::ObjectWriter,
        ]
        .into_iter()
        .find(|o| o.name() == s.trim())
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                BAD_REQUEST,
                "object ownership must be BucketOwnerEnforced, BucketOwnerPreferred or ObjectWriter, not {s:?}"
            )
        })
    }

    /// Whether ACLs count for access (all but BucketOwnerEnforced).
    pub fn acls_enabled(self) -> bool {
        self != Ownership::BucketOwnerEnforced
    }
}

/// The error for an ACL on a bucket whose ACLs are disabled.
pub fn acls_not_supported() -> crate::error::S3Error {
    s3_error!(
        AccessControlListNotSupported,
        BAD_REQUEST,
        "The bucket does not allow ACLs (its object ownership is BucketOwnerEnforced)"
    )
}

fn bad_grantee(item: &str) -> crate::error::S3Error {
    s3_error!(
        InvalidArgument,
        BAD_REQUEST,
        "grantee {item:?} must be id=\"ACCOUNT-ID\" or uri=\"GROUP-URI\""
    )
}

fn no_email(email: &str) -> crate::error::S3Error {
    s3_error!(
        UnresolvableGrantByEmailAddress,
        BAD_REQUEST,
        "accounts here have no e-mail addresses; grant to id=\"ACCOUNT-ID\" instead of {email}"
    )
}

fn account_grantee(id: &str, account_exists: &impl Fn(&str) -> bool) -> S3Result<Grantee> {
    if account_exists(id) {
        Ok(Grantee::Account(id.to_string()))
    } else {
        Err(s3_error!(
            InvalidArgument,
            BAD_REQUEST,
            "grantee ID {id} is not an account of this server (an ID is the 12-digit account ID)"
        ))
    }
}

fn group_grantee(uri: &str) -> S3Result<Grantee> {
    match uri {
        ALL_USERS_URI => Ok(Grantee::AllUsers),
        AUTHENTICATED_USERS_URI => Ok(Grantee::AuthenticatedUsers),
        other => Err(s3_error!(
            InvalidArgument,
            BAD_REQUEST,
            "group {other} is not one this server knows ({ALL_USERS_URI} or {AUTHENTICATED_USERS_URI})"
        )),
    }
}

/// Parses `<OwnershipControls><Rule><ObjectOwnership>X</ObjectOwnership></Rule>` (exactly one
/// rule): the ownership's name.
///
/// Errors: MalformedXML.
pub fn parse_ownership_controls(body: &[u8]) -> S3Result<String> {
    let mut values = Vec::new();
    walk(body, |node| {
        match node {
            Node::Text("OwnershipControls/Rule/ObjectOwnership", text) => values.push(text),
            Node::Text(path, _) => {
                return Err(malformed(format!(
                    "unknown element {path} in OwnershipControls"
                )))
            }
            _ => {}
        }
        Ok(())
    })?;
    match <[String; 1]>::try_from(values) {
        Ok([one]) => Ok(one),
        Err(_) => Err(malformed(
            "OwnershipControls takes exactly one Rule with an ObjectOwnership",
        )),
    }
}

/// A grant of an `AccessControlPolicy` document, as written.
#[derive(Debug, Default)]
pub struct RequestGrant {
    /// `Grantee/ID`.
    pub id: Option<String>,
    /// `Grantee/URI`.
    pub uri: Option<String>,
    /// `Grantee/EmailAddress`.
    pub email: Option<String>,
    /// `Permission`.
    pub permission: String,
}

/// An `AccessControlPolicy` document, as written.
#[derive(Debug, Default)]
pub struct RequestAcl {
    /// `Owner/ID`, if given.
    pub owner: Option<String>,
    /// The grants, in order.
    pub grants: Vec<RequestGrant>,
}

/// Parses `<AccessControlPolicy><Owner><ID/></Owner><AccessControlList><Grant><Grantee>
/// <ID/>|<URI/>|<EmailAddress/></Grantee><Permission/></Grant>...`.
pub fn parse_access_control_policy(body: &[u8]) -> S3Result<RequestAcl> {
    let mut doc = RequestAcl::default();
    let mut grant = RequestGrant::default();
    let mut seen_root = false;
    walk(body, |node| {
        const G: &str = "AccessControlPolicy/AccessControlList/Grant";
        match node {
            Node::Text("AccessControlPolicy/Owner/ID", t) => doc.owner = Some(t),
            Node::Text(p, t) if p == format!("{G}/Grantee/ID") => grant.id = Some(t),
            Node::Text(p, t) if p == format!("{G}/Grantee/URI") => grant.uri = Some(t),
            Node::Text(p, t) if p == format!("{G}/Grantee/EmailAddress") => grant.email = Some(t),
            Node::Text(p, t) if p == format!("{G}/Permission") => grant.permission = t,
            Node::End(G) => doc.grants.push(std::mem::take(&mut grant)),
            Node::End("AccessControlPolicy") => seen_root = true,
            _ => {}
        }
        Ok(())
    })?;
    if !seen_root {
        return Err(s3_error!(
            MalformedACLError,
            BAD_REQUEST,
            "the body is not an AccessControlPolicy document"
        ));
    }
    if doc.grants.len() > 100 {
        return Err(s3_error!(
            MalformedACLError,
            BAD_REQUEST,
            "an ACL holds at most 100 grants"
        ));
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "111111111111";
    const B: &str = "222222222222";

    #[test]
    fn canned_acls_grant_what_s3_documents() {
        let acl = Acl::canned("public-read", A, A).unwrap();
        assert!(acl.allows(None, Permission::Read, false));
        assert!(
            !acl.allows(None, Permission::Read, true),
            "IgnorePublicAcls"
        );
        assert!(!acl.allows(None, Permission::Write, false));
        assert!(acl.allows(Some(A), Permission::WriteAcp, false));
        let acl = Acl::canned("authenticated-read", A, A).unwrap();
        assert!(!acl.allows(None, Permission::Read, false));
        assert!(acl.allows(Some(B), Permission::Read, false));
        let acl = Acl::canned("bucket-owner-full-control", B, A).unwrap();
        assert!(acl.allows(Some(A), Permission::ReadAcp, false));
        assert_eq!(
            Acl::canned("bucket-owner-read", A, A).unwrap(),
            Acl::private(A)
        );
        assert_eq!(
            Acl::canned("log-delivery-write", A, A).unwrap_err().code,
            "InvalidArgument"
        );
    }

    #[test]
    fn grant_headers_and_xml_round_trip() {
        let headers = |name: &str| match name {
            "x-amz-grant-read" => Some(format!("uri=\"{ALL_USERS_URI}\", id=\"{B}\"")),
            "x-amz-grant-full-control" => Some(format!("id=\"{A}\"")),
            _ => None,
        };
        let exists = |id: &str| id == A || id == B;
        let acl = Acl::from_headers(headers, A, A, exists).unwrap().unwrap();
        assert_eq!(acl.grants.len(), 3);
        assert!(acl.allows(Some(B), Permission::Read, false));
        assert!(!acl.allows(Some(B), Permission::Write, false));
        let back = Acl::from_xml(&acl.to_xml(), A, exists).unwrap();
        assert_eq!(back, acl);
        // Another owner, an unknown account, an e-mail grantee: refused.
        assert_eq!(
            Acl::from_xml(&acl.to_xml(), B, exists).unwrap_err().code,
            "AccessDenied"
        );
        let unknown =
            |name: &str| (name == "x-amz-grant-read").then(|| "id=\"999999999999\"".to_string());
        assert_eq!(
            Acl::from_headers(unknown, A, A, exists).unwrap_err().code,
            "InvalidArgument"
        );
        let email =
            |name: &str| (name == "x-amz-grant-read").then(|| "emailAddress=\"a@b\"".to_string());
        assert_eq!(
            Acl::from_headers(email, A, A, exists).unwrap_err().code,
            "UnresolvableGrantByEmailAddress"
        );
        let both = |name: &str| match name {
            "x-amz-acl" => Some("private".to_string()),
            "x-amz-grant-read" => Some(format!("id=\"{B}\"")),
            _ => None,
        };
        assert_eq!(
            Acl::from_headers(both, A, A, exists).unwrap_err().code,
            "InvalidRequest"
        );
    }
}
