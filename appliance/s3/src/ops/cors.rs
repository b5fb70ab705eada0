//! Cross-origin resource sharing (S3 User Guide, "Using cross-origin resource sharing
//! (CORS)"; API Reference, PutBucketCors): `?cors` GET/PUT/DELETE with the
//! `CORSConfiguration` document, preflight `OPTIONS` answered per rule, and CORS headers on
//! the actual requests (signed, presigned or anonymous, and their error answers too, so a
//! page can read why it was refused).
//!
//! A rule matches a request when one of its `AllowedOrigin`s matches the `Origin` (`*`
//! wildcards), one of its `AllowedMethod`s is the method (the requested one for a preflight),
//! and, for a preflight, every header in `Access-Control-Request-Headers` matches one of its
//! `AllowedHeader`s (case-insensitive, `*` wildcards). The first matching rule answers.
//!
//! Must not import `server` or the other operation files.

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use crate::auth::policy::glob;
use crate::engine::blocking;
use crate::error::S3Result;
use crate::request::Ctx;
use crate::response::{bad_header, xml_response};
use crate::s3_error;
use crate::xml::XmlBuilder;
use crate::xml::{malformed, walk, Node};

/// The bucket attribute holding the CORS configuration (JSON).
pub const CORS_ATTRIBUTE: &str = "cors";
/// Most rules in one configuration (S3: 100).
pub const MAX_RULES: usize = 100;
const METHODS: &[&str] = &["GET", "PUT", "POST", "DELETE", "HEAD"];

/// One `CORSRule`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorsRule {
    /// `ID`.
    pub id: Option<String>,
    /// `AllowedOrigin`s.
    pub allowed_origins: Vec<String>,
    /// `AllowedMethod`s.
    pub allowed_methods: Vec<String>,
    /// `AllowedHeader`s (lower-case).
    pub allowed_headers: Vec<String>,
    /// `ExposeHeader`s.
    pub expose_headers: Vec<String>,
    /// `MaxAgeSeconds`.
    pub max_age_seconds: Option<u64>,
}

/// A bucket's CORS configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorsConfig {
    /// Rules, in order.
    pub rules: Vec<CorsRule>,
}

impl CorsRule {
    fn matches(&self, origin: &str, method: &str, headers: &[String]) -> bool {
        self.allowed_origins.iter().any(|o| glob(o, origin))
            && self.allowed_methods.iter().any(|m| m == method)
            && headers
                .iter()
                .all(|h| self.allowed_headers.iter().any(|a| glob(a, h)))
    }

    /// The headers of an answer to `origin` (a preflight also names what it asked for).
    fn answer(&self, origin: &str, preflight: Option<(&str, &[String])>) -> Vec<(String, String)> {
        let wildcard = self.allowed_origins.iter().any(|o| o == "*");
        let mut h = vec![
            (
                "access-control-allow-origin".to_string(),
                if wildcard {
                    "*".into()
                } else {
                    origin.to_string()
                },
            ),
            (
                "access-control-allow-methods".to_string(),
                self.allowed_methods.join(", "),
            ),
            (
                "vary".to_string(),
                "Origin, Access-Control-Request-Headers, Access-Control-Request-Method".into(),
            ),
        ];
        if !wildcard {
            h.push(("access-control-allow-credentials".into(), "true".into()));
        }
        if !self.expose_headers.is_empty() {
            h.push((
                "access-control-expose-headers".into(),
                self.expose_headers.join(", "),
            ));
        }
        if let Some(age) = self.max_age_seconds {
            h.push(("access-control-max-age".into(), age.to_string()));
        }
        if let Some((_, requested)) = preflight {
            if !requested.is_empty() {
                h.push(("access-control-allow-headers".into(), requested.join(", ")));
            }
        }
        h
    }
}

impl CorsConfig {
    /// Parses and validates a `CORSConfiguration` document.
    ///
    /// Errors: MalformedXML; InvalidRequest for an unsupported method, a rule without an
    /// origin or a method, more than one `*` in an origin or header, or too many rules.
    pub fn from_xml(body: &[u8]) -> S3Result<CorsConfig> {
        let rules = parse_cors(body)?;
        if rules.is_empty() || rules.len() > MAX_RULES {
            return Err(s3_error!(
                InvalidRequest,
                BAD_REQUEST,
                "a CORS configuration holds 1 to {MAX_RULES} rules, not {}",
                rules.len()
            ));
        }
        let mut config = CorsConfig::default();
        for r in rules {
            if r.allowed_origins.is_empty() || r.allowed_methods.is_empty() {
                return Err(s3_error!(
                    InvalidRequest,
                    BAD_REQUEST,
                    "each CORSRule needs at least one AllowedOrigin and one AllowedMethod"
                ));
            }
            if let Some(m) = r
                .allowed_methods
                .iter()
                .find(|m| !METHODS.contains(&m.as_str()))
            {
                return Err(s3_error!(
                    InvalidRequest,
                    BAD_REQUEST,
                    "Found unsupported HTTP method in CORS config. Unsupported method is {m}"
                ));
            }
            for v in r.allowed_origins.iter().chain(&r.allowed_headers) {
                if v.matches('*').count() > 1 {
                    return Err(s3_error!(
                        InvalidRequest,
                        BAD_REQUEST,
                        "AllowedOrigin and AllowedHeader may contain at most one wildcard: {v}"
                    ));
                }
            }
            config.rules.push(CorsRule {
                allowed_headers: r
                    .allowed_headers
                    .iter()
                    .map(|h| h.to_ascii_lowercase())
                    .collect(),
                ..r
            });
        }
        Ok(config)
    }

    /// The `CORSConfiguration` document.
    pub fn to_xml(&self) -> Vec<u8> {
        let mut x = XmlBuilder::new("CORSConfiguration");
        for r in &self.rules {
            x.open("CORSRule");
            x.opt("ID", r.id.as_deref());
            for (tag, values) in [
                ("AllowedHeader", &r.allowed_headers),
                ("AllowedMethod", &r.allowed_methods),
                ("AllowedOrigin", &r.allowed_origins),
                ("ExposeHeader", &r.expose_headers),
            ] {
                for v in values {
                    x.elem(tag, v);
                }
            }
            x.opt("MaxAgeSeconds", r.max_age_seconds.map(|a| a.to_string()));
            x.close("CORSRule");
        }
        x.finish("CORSConfiguration")
    }

    /// The first rule matching.
    fn rule(&self, origin: &str, method: &str, headers: &[String]) -> Option<&CorsRule> {
        self.rules
            .iter()
            .find(|r| r.matches(origin, method, headers))
    }

    /// From the bucket's attributes, if it has a configuration.
    ///
    /// Errors: InternalError for a stored configuration that does not parse.
    pub fn of(attributes: &[(String, Vec<u8>)]) -> S3Result<Option<CorsConfig>> {
        attributes
            .iter()
            .find(|(n, _)| n == CORS_ATTRIBUTE)
            .map(|(_, v)| {
                serde_json::from_slice(v).map_err(|e| {
                    s3_error!(
                        InternalError,
                        INTERNAL_SERVER_ERROR,
                        "a stored CORS configuration does not parse: {e}"
                    )
                })
            })
            .transpose()
    }
}

/// The CORS headers for an actual (not preflight) request: none without an `Origin` or a
/// matching rule.
pub fn actual_request_headers(
    config: Option<&CorsConfig>,
    origin: Option<&str>,
    method: &str,
) -> Vec<(String, String)> {
    match (config, origin) {
        (Some(c), Some(origin)) => c
            .rule(origin, method, &[])
            .map(|r| r.answer(origin, None))
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// Answers a preflight `OPTIONS` request on a bucket or object.
///
/// Errors: 403 AccessForbidden (no configuration, or no rule matches), BadRequest without
/// `Origin` or `Access-Control-Request-Method`.
pub async fn preflight(ctx: Ctx) -> S3Result<Response> {
    let origin = ctx.header("origin").map(str::to_string);
    let method = ctx
        .header("access-control-request-method")
        .map(str::to_string);
    let (Some(origin), Some(method)) = (origin, method) else {
        return Err(s3_error!(
            BadRequest,
            BAD_REQUEST,
            "a CORS preflight needs the Origin and Access-Control-Request-Method headers"
        ));
    };
    let requested: Vec<String> = ctx
        .header("access-control-request-headers")
        .unwrap_or("")
        .split(',')
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect();
    let store = ctx.state.store.clone();
    let bucket = ctx.bucket().to_string();
    let (_, attributes) = blocking(move || store.bucket_attributes(&bucket)).await?;
    let Some(config) = CorsConfig::of(&attributes)? else {
        return Err(s3_error!(
            AccessForbidden,
            FORBIDDEN,
            "CORSResponse: CORS is not enabled for bucket {}",
            ctx.bucket()
        ));
    };
    let Some(rule) = config.rule(&origin, &method, &requested) else {
        return Err(s3_error!(
            AccessForbidden,
            FORBIDDEN,
            "CORSResponse: this CORS request is not allowed: no rule of bucket {} allows origin {origin}, method {method} and headers [{}]",
            ctx.bucket(),
            requested.join(", ")
        ));
    };
    let mut resp = Response::builder().status(StatusCode::OK);
    for (name, value) in rule.answer(&origin, Some((&method, &requested))) {
        resp = resp.header(name, value);
    }
    resp.body(Body::empty()).map_err(bad_header)
}

/// `GET /<bucket>?cors` (404 NoSuchCORSConfiguration when unset).
pub async fn get(ctx: Ctx) -> S3Result<Response> {
    let store = ctx.state.store.clone();
    let bucket = ctx.bucket().to_string();
    let (_, attributes) = blocking(move || store.bucket_attributes(&bucket)).await?;
    match CorsConfig::of(&attributes)? {
        Some(c) => xml_response(c.to_xml()),
        None => Err(s3_error!(
            NoSuchCORSConfiguration,
            NOT_FOUND,
            "bucket {} has no CORS configuration",
            ctx.bucket()
        )),
    }
}

/// `PUT /<bucket>?cors`.
pub async fn put(mut ctx: Ctx) -> S3Result<Response> {
    let body = ctx.small_body(64 * 1024).await?;
    let config = CorsConfig::from_xml(&body)?;
    let value = serde_json::to_vec(&config).expect("a CORS configuration serialises");
    let store = ctx.state.store.clone();
    let bucket = ctx.bucket().to_string();
    blocking(move || store.set_bucket_attribute(&bucket, CORS_ATTRIBUTE, Some(&value))).await?;
    Response::builder()
        .status(StatusCode::OK)
        .body(Body::empty())
        .map_err(bad_header)
}

/// `DELETE /<bucket>?cors`.
pub async fn delete(ctx: Ctx) -> S3Result<Response> {
    let store = ctx.state.store.clone();
    let bucket = ctx.bucket().to_string();
    blocking(move || store.set_bucket_attribute(&bucket, CORS_ATTRIBUTE, None)).await?;
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(Body::empty())
        .map_err(bad_header)
}

/// Parses `<CORSConfiguration><CORSRule>...` into rules, as written.
pub fn parse_cors(body: &[u8]) -> S3Result<Vec<crate::ops::cors::CorsRule>> {
    let mut rules = Vec::new();
    let mut rule = crate::ops::cors::CorsRule::default();
    let mut seen_root = false;
    walk(body, |node| {
        const R: &str = "CORSConfiguration/CORSRule/";
        match node {
            Node::Text(path, text) if path.starts_with(R) => match &path[R.len()..] {
                "ID" => rule.id = Some(text),
                "AllowedOrigin" => rule.allowed_origins.push(text),
                "AllowedMethod" => rule.allowed_methods.push(text),
                "AllowedHeader" => rule.allowed_headers.push(text),
                "ExposeHeader" => rule.expose_headers.push(text),
                "MaxAgeSeconds" => {
                    rule.max_age_seconds = Some(text.trim().parse().map_err(|_| {
                        malformed(format!("MaxAgeSeconds {text:?} is not a number"))
                    })?)
                }
                other => return Err(malformed(format!("unknown element {other} in a CORSRule"))),
            },
            Node::End("CORSConfiguration/CORSRule") => rules.push(std::mem::take(&mut rule)),
            Node::End("CORSConfiguration") => seen_root = true,
            _ => {}
        }
        Ok(())
    })?;
    if !seen_root {
        return Err(malformed("the body is not a CORSConfiguration document"));
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_origins_methods_and_headers() {
        let c = CorsConfig::from_xml(
            br#"<CORSConfiguration><CORSRule><AllowedOrigin>http://*.example.com</AllowedOrigin>
            <AllowedMethod>PUT</AllowedMethod><AllowedMethod>POST</AllowedMethod>
            <AllowedHeader>x-amz-*</AllowedHeader><AllowedHeader>Content-Type</AllowedHeader>
            <ExposeHeader>ETag</ExposeHeader><MaxAgeSeconds>3000</MaxAgeSeconds></CORSRule>
            <CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod></CORSRule>
            </CORSConfiguration>"#,
        )
        .unwrap();
        let h = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(c
            .rule(
                "http://www.example.com",
                "PUT",
                &h(&["x-amz-meta-a", "content-type"])
            )
            .is_some());
        assert!(c
            .rule("http://www.example.com", "PUT", &h(&["authorization"]))
            .is_none());
        assert!(c.rule("http://evil.com", "PUT", &[]).is_none());
        let any = c.rule("http://evil.com", "GET", &[]).unwrap();
        assert_eq!(any.answer("http://evil.com", None)[0].1, "*");
        assert_eq!(CorsConfig::from_xml(&c.to_xml()).unwrap(), c);
        let bad = CorsConfig::from_xml(
            b"<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>PATCH</AllowedMethod></CORSRule></CORSConfiguration>",
        );
        assert!(bad.unwrap_err().message.contains("PATCH"));
    }
}
