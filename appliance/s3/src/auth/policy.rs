//! Bucket policies: the JSON grammar of the IAM policy reference (AWS IAM User Guide, "IAM JSON
//! policy elements reference"), for bucket policies as Amazon S3 evaluates them (S3 User
//! Guide, "Bucket policies for Amazon S3" and "Policy evaluation logic").
//!
//! A policy is `{"Version": "2012-10-17", "Statement": [...]}`; each statement has `Effect`
//! (`Allow` or `Deny`), `Principal` or `NotPrincipal`, `Action` or `NotAction`, `Resource` or
//! `NotResource`, and optional `Condition`s, all ANDed (values within one condition key ORed).
//!
//! - Principals: `"*"` or `{"AWS": "*"}` (everyone, anonymous callers included), an account
//!   (`"123456789012"`, `arn:aws:iam::123456789012:root`, `{"CanonicalUser": "1234..."}`), or
//!   one user of an account (`arn:aws:iam::123456789012:user/alice`).
//! - Actions: `s3:GetObject`, with `*` and `?` wildcards, case-insensitive (`s3:Get*`, `s3:*`).
//! - Resources: `arn:aws:s3:::bucket` and `arn:aws:s3:::bucket/key-pattern`, with `*` and `?`;
//!   every resource must lie in the policy's bucket.
//! - Condition operators: `StringEquals`, `StringNotEquals`, `StringEqualsIgnoreCase`,
//!   `StringNotEqualsIgnoreCase`, `StringLike`, `StringNotLike`, `IpAddress`,
//!   `NotIpAddress`, `Bool`, `DateEquals`, `DateNotEquals`, `DateLessThan`,
//!   `DateLessThanEquals`, `DateGreaterThan`, `DateGreaterThanEquals`, `NumericEquals`,
//!   `NumericNotEquals`, `NumericLessThan`, `NumericLessThanEquals`, `NumericGreaterThan`,
//!   `NumericGreaterThanEquals`, each also with `...IfExists`, and `Null`; `ForAnyValue:` and
//!   `ForAllValues:` before any of them for keys of several values. Keys: `aws:SourceIp`,
//!   `aws:SecureTransport`, `aws:CurrentTime`, `aws:EpochTime`, `aws:PrincipalAccount`,
//!   `aws:username`, `aws:UserAgent`, `aws:Referer`; `s3:prefix`, `s3:delimiter`,
//!   `s3:max-keys` (listings); `s3:signatureversion`, `s3:authType`, `s3:signatureAge` (ms),
//!   `s3:x-amz-content-sha256`, `s3:TlsVersion` (every action); `s3:versionid` (the
//!   `...Version` actions); `s3:x-amz-acl` and `s3:x-amz-grant-*` (the ACL-setting actions);
//!   `s3:x-amz-copy-source`, `s3:x-amz-metadata-directive` and the `s3:x-amz-server-side-
//!   encryption*` keys (PutObject); `s3:object-lock-*` (PutObject, PutObjectRetention,
//!   PutObjectLegalHold); `s3:RequestObjectTag/<key>` and `s3:RequestObjectTagKeys` (PutObject,
//!   PutObjectTagging); `s3:ExistingObjectTag/<key>` (the object reads, tagging and ACL
//!   actions). A key applies only to the actions the S3 User Guide lists it for; for others it
//!   is absent. An unknown operator or key is refused when the policy is put
//!   (`MalformedPolicy`), so nothing is silently ignored.
//!
//! A key absent from the request (`s3:prefix` on a GetObject, `aws:username` of an
//! anonymous caller) matches no value: a positive operator is false, a negated one
//! (`StringNotEquals`, `NotIpAddress`, ...) true, and `...IfExists` true.
//!
//! Must not import `ops`, `request`, `state`, `body` or `server`, nor `auth::access` or
//! `auth::acl` (policies are evaluated on their own).

use std::net::IpAddr;

use serde_json::Value;

use crate::error::{S3Error, S3Result};
use crate::s3_error;

/// The bucket attribute holding a bucket's policy (the JSON as put).
pub const BUCKET_POLICY_ATTRIBUTE: &str = "policy";
/// Largest policy document (S3: 20 KB).
pub const MAX_POLICY_BYTES: usize = 20 * 1024;

/// What a policy says of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// A statement denies it: nothing else can allow it.
    Deny,
    /// A statement allows it (and none denies it).
    Allow,
    /// No statement applies.
    NotApplicable,
}

/// The request as conditions and matching see it.
#[derive(Clone, Debug, Default)]
pub struct RequestContext<'a> {
    /// The caller's account (`None`: anonymous).
    pub account: Option<&'a str>,
    /// The caller's user name within the account.
    pub user: Option<&'a str>,
    /// The action, as policies name it (`s3:GetObject`).
    pub action: &'a str,
    /// The resource: `bucket` or `bucket/key`.
    pub resource: &'a str,
    /// The client's address.
    pub source_ip: Option<IpAddr>,
    /// Whether the request came over TLS.
    pub secure_transport: bool,
    /// Request time, Unix seconds.
    pub now_secs: u64,
    /// `prefix` of a listing.
    pub prefix: Option<&'a str>,
    /// `delimiter` of a listing.
    pub delimiter: Option<&'a str>,
    /// `max-keys` of a listing.
    pub max_keys: Option<&'a str>,
    /// `User-Agent`.
    pub user_agent: Option<&'a str>,
    /// `Referer`.
    pub referer: Option<&'a str>,
    /// The request's headers (`s3:x-amz-acl`, `s3:x-amz-copy-source`, ...).
    pub headers: Option<&'a axum::http::HeaderMap>,
    /// `versionId` of the request (`s3:versionid`).
    pub version_id: Option<&'a str>,
    /// `AWS` or `AWS4-HMAC-SHA256` (`s3:signatureversion`); none when anonymous.
    pub signature_version: Option<&'a str>,
    /// `REST-HEADER`, `REST-QUERY-STRING` or `POST` (`s3:authType`).
    pub auth_type: Option<&'a str>,
    /// Milliseconds since the request was signed (`s3:signatureAge`).
    pub signature_age_ms: Option<u64>,
    /// `1.2` or `1.3` over TLS (`s3:TlsVersion`).
    pub tls_version: Option<&'a str>,
    /// The tags of the object the request acts on (`s3:ExistingObjectTag/<key>`), when the
    /// policy needs them and the object exists.
    pub existing_tags: Option<&'a [(String, String)]>,
    /// The tags the request sets (`s3:RequestObjectTag/<key>`, `s3:RequestObjectTagKeys`).
    pub request_tags: Option<&'a [(String, String)]>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Who {
    Anyone,
    Account(String),
    User(String, String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    StringEquals,
    StringNotEquals,
    StringEqualsIgnoreCase,
    StringNotEqualsIgnoreCase,
    StringLike,
    StringNotLike,
    IpAddress,
    NotIpAddress,
    Bool,
    Date(Cmp),
    Numeric(Cmp),
    Null,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Cmp::Eq => a == b,
            Cmp::Ne => a != b,
            Cmp::Lt => a < b,
            Cmp::Le => a <= b,
            Cmp::Gt => a > b,
            Cmp::Ge => a >= b,
        }
    }
}

impl Op {
    fn parse(name: &str) -> Option<(Op, bool)> {
        let (base, if_exists) = match name.strip_suffix("IfExists") {
            Some(b) => (b, true),
            None => (name, false),
        };
        let cmp = |s: &str| -> Option<Cmp> {
            Some(match s {
                "Equals" => Cmp::Eq,
                "NotEquals" => Cmp::Ne,
                "LessThan" => Cmp::Lt,
                "LessThanEquals" => Cmp::Le,
                "GreaterThan" => Cmp::Gt,
                "GreaterThanEquals" => Cmp::Ge,
                _ => return None,
            })
        };
        let op = match base {
            "StringEquals" => Op::StringEquals,
            "StringNotEquals" => Op::StringNotEquals,
            "StringEqualsIgnoreCase" => Op::StringEqualsIgnoreCase,
            "StringNotEqualsIgnoreCase" => Op::StringNotEqualsIgnoreCase,
            "StringLike" => Op::StringLike,
            "StringNotLike" => Op::StringNotLike,
            "IpAddress" => Op::IpAddress,
            "NotIpAddress" => Op::NotIpAddress,
            "Bool" => Op::Bool,
            "Null" if !if_exists => Op::Null,
            d if d.starts_with("Date") => Op::Date(cmp(&d[4..])?),
            n if n.starts_with("Numeric") => Op::Numeric(cmp(&n[7..])?),
            _ => return None,
        };
        Some((op, if_exists))
    }

    /// Negated operators hold when the key is absent.
    fn negated(self) -> bool {
        matches!(
            self,
            Op::StringNotEquals
                | Op::StringNotEqualsIgnoreCase
                | Op::StringNotLike
                | Op::NotIpAddress
                | Op::Date(Cmp::Ne)
                | Op::Numeric(Cmp::Ne)
        )
    }
}

/// Condition keys Hoard knows (lower-case; keys are case-insensitive), each with the actions
/// it applies to (`*`: every action; S3 User Guide, "Amazon S3 condition key examples", and the
/// Service Authorization Reference's table of S3 actions and their condition keys). For any
/// other action the key is absent from the request.
const KEYS: &[(&str, &[&str])] = &[
    ("aws:sourceip", ANY),
    ("aws:securetransport", ANY),
    ("aws:currenttime", ANY),
    ("aws:epochtime", ANY),
    ("aws:principalaccount", ANY),
    ("aws:username", ANY),
    ("aws:useragent", ANY),
    ("aws:referer", ANY),
    ("s3:prefix", LISTING),
    ("s3:delimiter", LISTING),
    ("s3:max-keys", LISTING),
    ("s3:signatureversion", ANY),
    ("s3:authtype", ANY),
    ("s3:signatureage", ANY),
    ("s3:x-amz-content-sha256", ANY),
    ("s3:tlsversion", ANY),
    ("s3:versionid", VERSIONED),
    ("s3:x-amz-acl", ACL_SETTING),
    ("s3:x-amz-grant-read", ACL_SETTING),
    ("s3:x-amz-grant-write", ACL_SETTING),
    ("s3:x-amz-grant-read-acp", ACL_SETTING),
    ("s3:x-amz-grant-write-acp", ACL_SETTING),
    ("s3:x-amz-grant-full-control", ACL_SETTING),
    ("s3:x-amz-copy-source", PUT_OBJECT),
    ("s3:x-amz-metadata-directive", PUT_OBJECT),
    ("s3:x-amz-server-side-encryption", PUT_OBJECT),
    ("s3:x-amz-server-side-encryption-aws-kms-key-id", PUT_OBJECT),
    (
        "s3:x-amz-server-side-encryption-customer-algorithm",
        PUT_OBJECT,
    ),
    ("s3:object-lock-mode", LOCK_SETTING),
    ("s3:object-lock-retain-until-date", LOCK_SETTING),
    ("s3:object-lock-remaining-retention-days", LOCK_SETTING),
    (
        "s3:object-lock-legal-hold",
        &["s3:putobject", "s3:putobjectlegalhold"],
    ),
    ("s3:requestobjecttagkeys", TAG_SETTING),
    ("s3:requestobjecttag/", TAG_SETTING),
    ("s3:existingobjecttag/", EXISTING_TAGS),
];

const ANY: &[&str] = &["*"];
const LISTING: &[&str] = &["s3:listbucket", "s3:listbucketversions"];
const VERSIONED: &[&str] = &[
    "s3:getobjectversion",
    "s3:deleteobjectversion",
    "s3:getobjectversiontagging",
    "s3:putobjectversiontagging",
    "s3:deleteobjectversiontagging",
    "s3:getobjectversionacl",
    "s3:putobjectversionacl",
    "s3:getobjectversionattributes",
];
const ACL_SETTING: &[&str] = &[
    "s3:putobject",
    "s3:putobjectacl",
    "s3:putobjectversionacl",
    "s3:putbucketacl",
    "s3:createbucket",
];
const PUT_OBJECT: &[&str] = &["s3:putobject"];
const LOCK_SETTING: &[&str] = &["s3:putobject", "s3:putobjectretention"];
const TAG_SETTING: &[&str] = &[
    "s3:putobject",
    "s3:putobjecttagging",
    "s3:putobjectversiontagging",
];
const EXISTING_TAGS: &[&str] = &[
    "s3:getobject",
    "s3:getobjectversion",
    "s3:getobjecttagging",
    "s3:getobjectversiontagging",
    "s3:putobjecttagging",
    "s3:putobjectversiontagging",
    "s3:deleteobjecttagging",
    "s3:deleteobjectversiontagging",
    "s3:getobjectacl",
    "s3:getobjectversionacl",
    "s3:putobjectacl",
    "s3:putobjectversionacl",
];

/// How a condition treats a key with several values (`s3:RequestObjectTagKeys`): IAM's
/// `ForAnyValue:` and `ForAllValues:` qualifiers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SetOp {
    /// No qualifier: the key's one value (or, for a key of several, any of them).
    Single,
    /// At least one of the request's values matches.
    ForAnyValue,
    /// Every value of the request matches (none at all does too).
    ForAllValues,
}

#[derive(Clone, Debug)]
struct Condition {
    op: Op,
    if_exists: bool,
    set: SetOp,
    /// The key, lower-case; for the tag keys, their prefix (`s3:existingobjecttag/`).
    key: &'static str,
    /// The tag a tag key names (case-sensitive, as tags are).
    tag: Option<String>,
    /// The actions the key applies to.
    actions: &'static [&'static str],
    values: Vec<String>,
}

#[derive(Clone, Debug)]
struct Statement {
    allow: bool,
    principals: Vec<Who>,
    not_principal: bool,
    actions: Vec<String>,
    not_action: bool,
    resources: Vec<String>,
    not_resource: bool,
    conditions: Vec<Condition>,
}

/// A parsed, validated bucket policy.
#[derive(Clone, Debug)]
pub struct Policy {
    statements: Vec<Statement>,
}

fn malformed(msg: impl std::fmt::Display) -> S3Error {
    s3_error!(MalformedPolicy, BAD_REQUEST, "{msg}")
}

/// A JSON value that may be one string or a list of them, as strings.
fn strings(v: &Value, what: &str) -> S3Result<Vec<String>> {
    let one = |v: &Value| match v {
        Value::String(s) => Ok(s.clone()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(malformed(format!(
            "{what} must be a string or a list of strings"
        ))),
    };
    match v {
        Value::Array(a) if !a.is_empty() => a.iter().map(one).collect(),
        Value::Array(_) => Err(malformed(format!("{what} must not be empty"))),
        v => Ok(vec![one(v)?]),
    }
}

fn parse_who(s: &str) -> S3Result<Who> {
    if s == "*" {
        return Ok(Who::Anyone);
    }
    if super::principals::is_account_id(s) {
        return Ok(Who::Account(s.to_string()));
    }
    if let Some(rest) = s.strip_prefix("arn:aws:iam::") {
        if let Some((account, tail)) = rest.split_once(':') {
            if super::principals::is_account_id(account) {
                if tail == "root" {
                    return Ok(Who::Account(account.to_string()));
                }
                if let Some(user) = tail.strip_prefix("user/").filter(|u| !u.is_empty()) {
                    return Ok(Who::User(account.to_string(), user.to_string()));
                }
            }
        }
    }
    Err(malformed(format!(
        "Invalid principal in policy: {s:?} (use \"*\", an account ID, arn:aws:iam::ACCOUNT:root or arn:aws:iam::ACCOUNT:user/NAME)"
    )))
}

fn parse_principal(v: &Value) -> S3Result<Vec<Who>> {
    match v {
        Value::String(s) if s == "*" => Ok(vec![Who::Anyone]),
        Value::Object(map) => {
            let mut out = Vec::new();
            for (kind, v) in map {
                if kind != "AWS" && kind != "CanonicalUser" {
                    return Err(malformed(format!(
                        "Invalid principal in policy: principal type {kind:?} (AWS or CanonicalUser)"
                    )));
                }
                for s in strings(v, "Principal")? {
                    out.push(parse_who(&s)?);
                }
            }
            if out.is_empty() {
                return Err(malformed("Invalid principal in policy: empty"));
            }
            Ok(out)
        }
        _ => Err(malformed(
            "Invalid principal in policy: Principal must be \"*\" or {\"AWS\": ...}",
        )),
    }
}

/// Matches `text` against `pattern` with `*` (any run) and `?` (any one character).
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// Parses an ISO 8601 time (`2026-11-26T07:00:00Z`, with optional fraction or offset-free
/// date `2026-11-26`) or a number of Unix seconds.
fn parse_time(s: &str) -> Option<f64> {
    if let Ok(n) = s.parse::<f64>() {
        return Some(n);
    }
    let date = s.get(..10)?;
    let (y, m, d) = (
        date.get(0..4)?.parse::<i64>().ok()?,
        date.get(5..7)?.parse::<u32>().ok()?,
        date.get(8..10)?.parse::<u32>().ok()?,
    );
    if date.as_bytes()[4] != b'-' || date.as_bytes()[7] != b'-' || !(1..=12).contains(&m) {
        return None;
    }
    let days = crate::protocol::dates::days_from_civil(y, m, d);
    let mut secs = days * 86_400;
    if s.len() > 10 {
        let t = s.get(11..)?.trim_end_matches('Z');
        let hms = t.get(..8)?;
        let (h, mi, se) = (
            hms.get(0..2)?.parse::<i64>().ok()?,
            hms.get(3..5)?.parse::<i64>().ok()?,
            hms.get(6..8)?.parse::<i64>().ok()?,
        );
        secs += h * 3600 + mi * 60 + se;
    }
    Some(secs as f64)
}

/// Parses `a.b.c.d/len`, `a.b.c.d`, or IPv6 forms.
fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a.parse::<IpAddr>().ok()?, Some(l.parse::<u8>().ok()?)),
        None => (s.parse::<IpAddr>().ok()?, None),
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = len.unwrap_or(max);
    (len <= max).then_some((addr, len))
}

fn in_cidr(ip: IpAddr, (net, len): (IpAddr, u8)) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

impl Condition {
    fn check_values(&self) -> S3Result<()> {
        for v in &self.values {
            let ok = match self.op {
                Op::IpAddress | Op::NotIpAddress => parse_cidr(v).is_some(),
                Op::Bool | Op::Null => {
                    v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false")
                }
                Op::Date(_) => parse_time(v).is_some(),
                Op::Numeric(_) => v.parse::<f64>().is_ok(),
                _ => true,
            };
            if !ok {
                return Err(malformed(format!(
                    "condition value {v:?} does not fit {:?} on {}",
                    self.op, self.key
                )));
            }
        }
        Ok(())
    }

    /// The request's values of the key (none: the key is absent from this request).
    fn request_values<'a>(
        &self,
        cx: &RequestContext<'a>,
    ) -> Option<Vec<std::borrow::Cow<'a, str>>> {
        use std::borrow::Cow;
        let action = cx.action.to_ascii_lowercase();
        if !self.actions.iter().any(|a| *a == "*" || *a == action) {
            return None;
        }
        let header = |name: &str| {
            cx.headers
                .and_then(|h| h.get(name))
                .and_then(|v| v.to_str().ok())
                .map(Cow::Borrowed)
        };
        let one = |v: Option<Cow<'a, str>>| v.map(|v| vec![v]);
        match self.key {
            "aws:sourceip" => one(cx.source_ip.map(|i| Cow::Owned(i.to_string()))),
            "aws:securetransport" => one(Some(Cow::Borrowed(match cx.secure_transport {
                true => "true",
                false => "false",
            }))),
            "aws:currenttime" | "aws:epochtime" => one(Some(Cow::Owned(cx.now_secs.to_string()))),
            "aws:principalaccount" => one(cx.account.map(Cow::Borrowed)),
            "aws:username" => one(cx.user.map(Cow::Borrowed)),
            "aws:useragent" => one(cx.user_agent.map(Cow::Borrowed)),
            "aws:referer" => one(cx.referer.map(Cow::Borrowed)),
            "s3:prefix" => one(cx.prefix.map(Cow::Borrowed)),
            "s3:delimiter" => one(cx.delimiter.map(Cow::Borrowed)),
            "s3:max-keys" => one(cx.max_keys.map(Cow::Borrowed)),
            "s3:signatureversion" => one(cx.signature_version.map(Cow::Borrowed)),
            "s3:authtype" => one(cx.auth_type.map(Cow::Borrowed)),
            "s3:signatureage" => one(cx.signature_age_ms.map(|ms| Cow::Owned(ms.to_string()))),
            "s3:tlsversion" => one(cx.tls_version.map(Cow::Borrowed)),
            "s3:versionid" => one(cx.version_id.map(Cow::Borrowed)),
            "s3:object-lock-remaining-retention-days" => None,
            "s3:existingobjecttag/" => {
                let tag = self.tag.as_deref()?;
                one(cx
                    .existing_tags?
                    .iter()
                    .find(|(k, _)| k == tag)
                    .map(|(_, v)| Cow::Borrowed(v.as_str())))
            }
            "s3:requestobjecttag/" => {
                let tag = self.tag.as_deref()?;
                one(cx
                    .request_tags?
                    .iter()
                    .find(|(k, _)| k == tag)
                    .map(|(_, v)| Cow::Borrowed(v.as_str())))
            }
            "s3:requestobjecttagkeys" => Some(
                cx.request_tags?
                    .iter()
                    .map(|(k, _)| Cow::Borrowed(k.as_str()))
                    .collect(),
            ),
            key => {
                // The request-header keys: `s3:x-amz-acl` is the header `x-amz-acl`, and the
                // object-lock keys are `x-amz-object-lock-*`.
                let name = key.strip_prefix("s3:")?;
                let name = match name.strip_prefix("object-lock-") {
                    Some(rest) => format!("x-amz-object-lock-{rest}"),
                    None => name.to_string(),
                };
                one(header(&name))
            }
        }
    }

    fn holds(&self, cx: &RequestContext<'_>) -> bool {
        let values = self.request_values(cx);
        if self.op == Op::Null {
            // Null: true means "the key is absent".
            let absent = values.as_ref().is_none_or(Vec::is_empty);
            return self
                .values
                .iter()
                .any(|v| v.eq_ignore_ascii_case("true") == absent);
        }
        let values = match values {
            Some(v) if !v.is_empty() => v,
            // ForAllValues over no values holds (IAM: vacuously).
            _ if self.set == SetOp::ForAllValues => return true,
            _ => return self.if_exists || self.op.negated(),
        };
        match self.set {
            SetOp::ForAllValues => values.iter().all(|v| self.holds_for(v)),
            SetOp::Single | SetOp::ForAnyValue => values.iter().any(|v| self.holds_for(v)),
        }
    }

    /// Whether the operator holds for one request value.
    fn holds_for(&self, value: &str) -> bool {
        let any = |f: &dyn Fn(&str) -> bool| self.values.iter().any(|v| f(v));
        match self.op {
            Op::StringEquals => any(&|v| v == value),
            Op::StringNotEquals => !any(&|v| v == value),
            Op::StringEqualsIgnoreCase => any(&|v| v.eq_ignore_ascii_case(value)),
            Op::StringNotEqualsIgnoreCase => !any(&|v| v.eq_ignore_ascii_case(value)),
            Op::StringLike => any(&|v| glob(v, value)),
            Op::StringNotLike => !any(&|v| glob(v, value)),
            Op::IpAddress | Op::NotIpAddress => {
                let inside = value.parse::<IpAddr>().is_ok_and(|ip| {
                    self.values
                        .iter()
                        .filter_map(|v| parse_cidr(v))
                        .any(|net| in_cidr(ip, net))
                });
                inside == (self.op == Op::IpAddress)
            }
            Op::Bool => any(&|v| v.eq_ignore_ascii_case(value)),
            Op::Date(cmp) | Op::Numeric(cmp) => {
                let Some(have) = value.parse::<f64>().ok() else {
                    return false;
                };
                let held = |v: &str| {
                    let want = match self.op {
                        Op::Date(_) => parse_time(v),
                        _ => v.parse::<f64>().ok(),
                    };
                    want.is_some_and(|w| cmp.holds(have, w))
                };
                if cmp == Cmp::Ne {
                    self.values.iter().all(|v| held(v))
                } else {
                    any(&held)
                }
            }
            Op::Null => unreachable!("handled above"),
        }
    }

    /// Whether this condition pins the statement to known callers, so that it is not public
    /// (S3 User Guide, "The meaning of public": only fixed values restrict). Two keys do:
    ///
    /// - `aws:SourceIp` with `IpAddress` over CIDR blocks that together cover at most a /8 of
    ///   IPv4 (2^24 addresses) or a /32 of IPv6 (2^96): `0.0.0.0/1` + `128.0.0.0/1` is
    ///   everyone, split in two;
    /// - `aws:PrincipalAccount` with `StringEquals` over values with no wildcard.
    ///
    /// An `...IfExists` operator never restricts: a request without the key passes it.
    fn restricts_callers(&self) -> bool {
        if self.if_exists {
            return false;
        }
        match (self.op, self.key) {
            (Op::IpAddress, "aws:sourceip") => {
                let (mut v4, mut v6) = (0u128, 0u128);
                for (net, len) in self.values.iter().filter_map(|v| parse_cidr(v)) {
                    match net {
                        IpAddr::V4(_) => v4 = v4.saturating_add(1u128 << (32 - len)),
                        IpAddr::V6(_) if len == 0 => v6 = u128::MAX,
                        IpAddr::V6(_) => v6 = v6.saturating_add(1u128 << (128 - len)),
                    }
                }
                !self.values.is_empty() && v4 <= 1 << 24 && v6 <= 1 << 96
            }
            (Op::StringEquals, "aws:principalaccount") => {
                !self.values.is_empty()
                    && !self
                        .values
                        .iter()
                        .any(|v| v.contains('*') || v.contains('?') || v.contains("${"))
            }
            _ => false,
        }
    }
}

impl Statement {
    fn parse(v: &Value, bucket: &str) -> S3Result<Statement> {
        let Value::Object(map) = v else {
            return Err(malformed("each Statement must be an object"));
        };
        for key in map.keys() {
            if ![
                "Sid",
                "Effect",
                "Principal",
                "NotPrincipal",
                "Action",
                "NotAction",
                "Resource",
                "NotResource",
                "Condition",
            ]
            .contains(&key.as_str())
            {
                return Err(malformed(format!("Unknown field {key} in a Statement")));
            }
        }
        let allow = match map.get("Effect").and_then(Value::as_str) {
            Some("Allow") => true,
            Some("Deny") => false,
            _ => return Err(malformed("each Statement needs Effect Allow or Deny")),
        };
        let either = |a: &str, b: &str| -> S3Result<(&Value, bool)> {
            match (map.get(a), map.get(b)) {
                (Some(v), None) => Ok((v, false)),
                (None, Some(v)) => Ok((v, true)),
                _ => Err(malformed(format!(
                    "each Statement needs exactly one of {a} and {b}"
                ))),
            }
        };
        let (p, not_principal) = either("Principal", "NotPrincipal")?;
        let principals = parse_principal(p)?;
        let (a, not_action) = either("Action", "NotAction")?;
        let actions: Vec<String> = strings(a, "Action")?
            .into_iter()
            .map(|s| s.to_ascii_lowercase())
            .collect();
        for action in &actions {
            if action != "*" && !action.starts_with("s3:") {
                return Err(malformed(format!("Policy has invalid action: {action}")));
            }
        }
        let (r, not_resource) = either("Resource", "NotResource")?;
        let mut resources = Vec::new();
        for s in strings(r, "Resource")? {
            let rest = if s == "*" {
                "*"
            } else {
                s.strip_prefix("arn:aws:s3:::").ok_or_else(|| {
                    malformed(format!(
                        "Policy has invalid resource: {s} (arn:aws:s3:::BUCKET/...)"
                    ))
                })?
            };
            let (b, _) = rest.split_once('/').unwrap_or((rest, ""));
            if rest != "*" && !glob(b, bucket) {
                return Err(malformed(format!(
                    "Policy has invalid resource: {s} is not in bucket {bucket}"
                )));
            }
            resources.push(rest.to_string());
        }
        let mut conditions = Vec::new();
        if let Some(c) = map.get("Condition") {
            let Value::Object(ops) = c else {
                return Err(malformed("Condition must be an object"));
            };
            for (op_name, keys) in ops {
                let (set, base_name) = match op_name.split_once(':') {
                    Some(("ForAnyValue", rest)) => (SetOp::ForAnyValue, rest),
                    Some(("ForAllValues", rest)) => (SetOp::ForAllValues, rest),
                    _ => (SetOp::Single, op_name.as_str()),
                };
                let (op, if_exists) = Op::parse(base_name)
                    .ok_or_else(|| malformed(format!("Unknown condition operator {op_name}")))?;
                let Value::Object(keys) = keys else {
                    return Err(malformed(format!("{op_name} must map keys to values")));
                };
                for (key, values) in keys {
                    let lower = key.to_ascii_lowercase();
                    let (name, actions, tag) = KEYS
                        .iter()
                        .find_map(|(k, actions)| match k.strip_suffix('/') {
                            // A tag key: the prefix, then the tag's own (case-kept) name.
                            Some(_) => lower
                                .strip_prefix(k)
                                .filter(|t| !t.is_empty())
                                .map(|_| (*k, *actions, Some(key[k.len()..].to_string()))),
                            None => (**k == lower).then_some((*k, *actions, None)),
                        })
                        .ok_or_else(|| {
                            let known: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
                            malformed(format!(
                                "Policy has an invalid condition key: {key} (known: {})",
                                known.join(", ")
                            ))
                        })?;
                    let c = Condition {
                        op,
                        if_exists,
                        set,
                        key: name,
                        tag,
                        actions,
                        values: strings(values, key)?,
                    };
                    c.check_values()?;
                    conditions.push(c);
                }
            }
        }
        Ok(Statement {
            allow,
            principals,
            not_principal,
            actions,
            not_action,
            resources,
            not_resource,
            conditions,
        })
    }

    /// Whether the statement names the caller and the action (whatever the resource and
    /// the conditions).
    fn names(&self, cx: &RequestContext<'_>) -> bool {
        let who = self.principals.iter().any(|w| match w {
            Who::Anyone => true,
            Who::Account(a) => cx.account == Some(a.as_str()),
            Who::User(a, u) => cx.account == Some(a.as_str()) && cx.user == Some(u.as_str()),
        });
        let action = cx.action.to_ascii_lowercase();
        let what = self.actions.iter().any(|p| glob(p, &action));
        who != self.not_principal && what != self.not_action
    }

    fn applies(&self, cx: &RequestContext<'_>) -> bool {
        let on = self.resources.iter().any(|p| glob(p, cx.resource));
        self.names(cx) && on != self.not_resource && self.conditions.iter().all(|c| c.holds(cx))
    }

    fn is_public(&self) -> bool {
        let anyone = self.principals.contains(&Who::Anyone) != self.not_principal;
        self.allow && anyone && !self.conditions.iter().any(Condition::restricts_callers)
    }
}

impl Policy {
    /// Parses and validates a policy for `bucket`.
    ///
    /// Errors: MalformedPolicy naming what is wrong (not JSON, a missing or unknown
    /// element, a resource outside the bucket, an unknown condition operator or key).
    pub fn parse(text: &[u8], bucket: &str) -> S3Result<Policy> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(malformed(format!(
                "Policies must be at most {MAX_POLICY_BYTES} bytes; this one is {}",
                text.len()
            )));
        }
        let doc: Value = serde_json::from_slice(text)
            .map_err(|e| malformed(format!("Policies must be valid JSON: {e}")))?;
        let Value::Object(map) = &doc else {
            return Err(malformed("a policy must be a JSON object"));
        };
        if let Some(v) = map.get("Version") {
            if v != "2012-10-17" && v != "2008-10-17" {
                return Err(malformed(format!(
                    "Version {v} is not 2012-10-17 or 2008-10-17"
                )));
            }
        }
        let statements = match map.get("Statement") {
            Some(Value::Array(a)) if !a.is_empty() => a
                .iter()
                .map(|s| Statement::parse(s, bucket))
                .collect::<S3Result<Vec<_>>>()?,
            Some(s @ Value::Object(_)) => vec![Statement::parse(s, bucket)?],
            _ => return Err(malformed("a policy needs a non-empty Statement")),
        };
        Ok(Policy { statements })
    }

    /// What the policy says of a request: Deny if any statement denies it, else Allow if any
    /// allows it. `public_allows` false (a public access block's RestrictPublicBuckets)
    /// makes public statements allow nothing.
    pub fn decide(&self, cx: &RequestContext<'_>, public_allows: bool) -> Decision {
        let mut decision = Decision::NotApplicable;
        for s in &self.statements {
            if !s.applies(cx) {
                continue;
            }
            if !s.allow {
                return Decision::Deny;
            }
            if public_allows || !s.is_public() {
                decision = Decision::Allow;
            }
        }
        decision
    }

    /// Whether some statement could allow the caller `cx.action` on some resource of the
    /// bucket, whatever the resource and conditions (`public_allows` as in [`Self::decide`]):
    /// a request decided key by key (DeleteObjects) is refused before its body is read when
    /// this is false and nothing else grants the action.
    pub fn may_allow(&self, cx: &RequestContext<'_>, public_allows: bool) -> bool {
        self.statements
            .iter()
            .any(|s| s.allow && s.names(cx) && (public_allows || !s.is_public()))
    }

    /// Whether a condition reads the tags of the object acted on (`s3:ExistingObjectTag/...`):
    /// the caller then loads them before deciding.
    pub fn uses_existing_tags(&self) -> bool {
        self.uses_key("s3:existingobjecttag/")
    }

    /// Whether a condition reads the tags the request sets (`s3:RequestObjectTag/...`,
    /// `s3:RequestObjectTagKeys`).
    pub fn uses_request_tags(&self) -> bool {
        self.uses_key("s3:requestobjecttag/") || self.uses_key("s3:requestobjecttagkeys")
    }

    fn uses_key(&self, key: &str) -> bool {
        self.statements
            .iter()
            .any(|s| s.conditions.iter().any(|c| c.key == key))
    }

    /// Whether it allows anyone at all (S3's PolicyStatus `IsPublic`): an Allow to `*` not
    /// pinned to source addresses or a principal account by a condition.
    pub fn is_public(&self) -> bool {
        self.statements.iter().any(Statement::is_public)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx<'a>(account: Option<&'a str>, action: &'a str, resource: &'a str) -> RequestContext<'a> {
        RequestContext {
            account,
            user: account.map(|_| "alice"),
            action,
            resource,
            source_ip: Some("10.1.2.3".parse().unwrap()),
            secure_transport: false,
            now_secs: 1_795_700_000,
            prefix: None,
            delimiter: None,
            max_keys: None,
            user_agent: None,
            referer: None,
            ..Default::default()
        }
    }

    #[test]
    fn public_means_what_s3_says() {
        let public = |condition: &str| {
            let text = format!(
                r#"{{"Statement":[{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*","Condition":{condition}}}]}}"#
            );
            Policy::parse(text.as_bytes(), "b").unwrap().is_public()
        };
        assert!(public(
            r#"{"IpAddress":{"aws:SourceIp":["0.0.0.0/1","128.0.0.0/1"]}}"#
        ));
        assert!(public(
            r#"{"IpAddress":{"aws:SourceIp":["::/1","8000::/1"]}}"#
        ));
        assert!(public(r#"{"IpAddress":{"aws:SourceIp":"0.0.0.0/0"}}"#));
        assert!(public(
            r#"{"IpAddressIfExists":{"aws:SourceIp":"10.0.0.0/24"}}"#
        ));
        assert!(public(
            r#"{"StringEqualsIfExists":{"aws:PrincipalAccount":"111122223333"}}"#
        ));
        assert!(public(
            r#"{"StringEquals":{"aws:PrincipalAccount":"1111*"}}"#
        ));
        assert!(public(
            r#"{"StringLike":{"aws:PrincipalAccount":"111122223333"}}"#
        ));
        assert!(!public(r#"{"IpAddress":{"aws:SourceIp":["10.0.0.0/8"]}}"#));
        assert!(!public(
            r#"{"IpAddress":{"aws:SourceIp":["192.0.2.0/24","2001:db8::/32"]}}"#
        ));
        assert!(!public(
            r#"{"StringEquals":{"aws:PrincipalAccount":"111122223333"}}"#
        ));
    }

    #[test]
    fn globs_match_as_iam_does() {
        assert!(glob("s3:get*", "s3:getobject"));
        assert!(glob("b/*", "b/a/b/c"));
        assert!(glob("b/?.txt", "b/a.txt"));
        assert!(!glob("b/?.txt", "b/ab.txt"));
        assert!(glob("*", ""));
        assert!(!glob("b/x*", "b/y"));
    }

    #[test]
    fn deny_wins_and_conditions_hold() {
        let p = Policy::parse(
            br#"{"Version":"2012-10-17","Statement":[
              {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::222222222222:root"},
               "Action":["s3:GetObject","s3:ListBucket"],
               "Resource":["arn:aws:s3:::b","arn:aws:s3:::b/*"]},
              {"Effect":"Deny","Principal":"*","Action":"s3:GetObject",
               "Resource":"arn:aws:s3:::b/secret/*"},
              {"Effect":"Allow","Principal":"*","Action":"s3:GetObject",
               "Resource":"arn:aws:s3:::b/lan/*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}},
              {"Effect":"Allow","Principal":"*","Action":"s3:ListBucket","Resource":"arn:aws:s3:::b",
               "Condition":{"StringLike":{"s3:prefix":"pub/*"},"Bool":{"aws:SecureTransport":"false"},
                            "DateLessThan":{"aws:CurrentTime":"2030-01-01T00:00:00Z"}}}]}"#,
            "b",
        )
        .unwrap();
        let other = Some("222222222222");
        assert_eq!(
            p.decide(&cx(other, "s3:GetObject", "b/x"), true),
            Decision::Allow
        );
        assert_eq!(
            p.decide(&cx(other, "s3:GetObject", "b/secret/x"), true),
            Decision::Deny
        );
        assert_eq!(
            p.decide(&cx(other, "s3:PutObject", "b/x"), true),
            Decision::NotApplicable
        );
        assert_eq!(
            p.decide(&cx(Some("333333333333"), "s3:GetObject", "b/x"), true),
            Decision::NotApplicable
        );
        assert_eq!(
            p.decide(&cx(None, "s3:GetObject", "b/lan/x"), true),
            Decision::Allow
        );
        let mut far = cx(None, "s3:GetObject", "b/lan/x");
        far.source_ip = Some("192.168.0.1".parse().unwrap());
        assert_eq!(p.decide(&far, true), Decision::NotApplicable);
        let mut list = cx(None, "s3:ListBucket", "b");
        assert_eq!(
            p.decide(&list, true),
            Decision::NotApplicable,
            "no prefix: StringLike is false"
        );
        list.prefix = Some("pub/2026");
        assert_eq!(p.decide(&list, true), Decision::Allow);
        assert_eq!(
            p.decide(&list, false),
            Decision::NotApplicable,
            "RestrictPublicBuckets"
        );
        list.now_secs = parse_time("2031-01-01").unwrap() as u64;
        assert_eq!(p.decide(&list, true), Decision::NotApplicable);
        assert!(p.is_public());
    }

    #[test]
    fn malformed_policies_are_refused_with_a_reason() {
        for (doc, needle) in [
            (&b"{"[..], "valid JSON"),
            (br#"{"Statement":[]}"#, "Statement"),
            (br#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::other/*"}]}"#, "invalid resource"),
            (br#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"ec2:Run","Resource":"*"}]}"#, "invalid action"),
            (br#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*","Condition":{"Foo":{"aws:SourceIp":"1.2.3.4"}}}]}"#, "operator"),
            (br#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*","Condition":{"IpAddress":{"aws:Nope":"1.2.3.4"}}}]}"#, "condition key"),
            (br#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"not-an-ip"}}}]}"#, "does not fit"),
            (br#"{"Statement":[{"Effect":"Maybe","Principal":"*","Action":"s3:*","Resource":"*"}]}"#, "Effect"),
            (br#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"bob"},"Action":"s3:*","Resource":"*"}]}"#, "principal"),
        ] {
            let e = Policy::parse(doc, "b").unwrap_err();
            assert_eq!(e.code, "MalformedPolicy");
            assert!(e.message.contains(needle), "{needle}: {}", e.message);
        }
        let lan_only = Policy::parse(
            br#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*","Condition":{"IpAddress":{"aws:SourceIp":["10.0.0.0/8"]}}}]}"#,
            "b",
        )
        .unwrap();
        assert!(!lan_only.is_public());
    }
}
#[cfg(test)]
mod request_keys {
    use super::*;

    fn policy(condition: &str) -> Policy {
        let doc = format!(
            r#"{{"Statement":[{{"Effect":"Allow","Principal":{{"AWS":"111122223333"}},"Action":"s3:*","Resource":"arn:aws:s3:::keys/*","Condition":{condition}}}]}}"#
        );
        Policy::parse(doc.as_bytes(), "keys").unwrap()
    }

    fn cx<'a>(action: &'a str) -> RequestContext<'a> {
        RequestContext {
            account: Some("111122223333"),
            action,
            resource: "keys/k",
            ..Default::default()
        }
    }

    /// The keys the script tests cannot send easily: the signature's age, the TLS version,
    /// and a key on an action it does not apply to (absent there).
    #[test]
    fn signature_age_tls_version_and_applicability() {
        let young = policy(r#"{"NumericLessThan":{"s3:signatureAge":"600000"}}"#);
        let fresh = RequestContext {
            signature_age_ms: Some(5_000),
            ..cx("s3:GetObject")
        };
        let stale = RequestContext {
            signature_age_ms: Some(900_000),
            ..cx("s3:GetObject")
        };
        assert_eq!(young.decide(&fresh, true), Decision::Allow);
        assert_eq!(young.decide(&stale, true), Decision::NotApplicable);
        let tls = policy(r#"{"NumericGreaterThanEquals":{"s3:TlsVersion":"1.2"}}"#);
        let over13 = RequestContext {
            tls_version: Some("1.3"),
            ..cx("s3:GetObject")
        };
        assert_eq!(tls.decide(&over13, true), Decision::Allow);
        assert_eq!(
            tls.decide(&cx("s3:GetObject"), true),
            Decision::NotApplicable,
            "plain HTTP"
        );
        // s3:x-amz-acl applies to PutObject, not GetObject: there it is absent.
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("x-amz-acl", "private".parse().unwrap());
        let acl = policy(r#"{"StringEquals":{"s3:x-amz-acl":"private"}}"#);
        let put = RequestContext {
            headers: Some(&headers),
            ..cx("s3:PutObject")
        };
        let get = RequestContext {
            headers: Some(&headers),
            ..cx("s3:GetObject")
        };
        assert_eq!(acl.decide(&put, true), Decision::Allow);
        assert_eq!(acl.decide(&get, true), Decision::NotApplicable);
        // Tag keys keep their case; ForAllValues over no tags holds.
        let tags = vec![("Project".to_string(), "blue".to_string())];
        let tagged = policy(r#"{"StringEquals":{"s3:RequestObjectTag/Project":"blue"}}"#);
        let with = RequestContext {
            request_tags: Some(&tags),
            ..cx("s3:PutObject")
        };
        assert_eq!(tagged.decide(&with, true), Decision::Allow);
        let keys =
            policy(r#"{"ForAllValues:StringEquals":{"s3:RequestObjectTagKeys":["Project"]}}"#);
        assert_eq!(keys.decide(&with, true), Decision::Allow);
        assert_eq!(keys.decide(&cx("s3:PutObject"), true), Decision::Allow);
        assert!(Policy::parse(
            br#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*","Condition":{"StringEquals":{"s3:ExistingObjectTag/":"x"}}}]}"#,
            "keys"
        )
        .is_err(), "a tag key needs a tag name");
    }
}
