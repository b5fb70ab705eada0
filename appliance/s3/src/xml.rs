//! S3 XML: response documents written with quick-xml, and the request documents we parse
//! (CompleteMultipartUpload, Delete, versioning, ACL, CORS, tagging, lifecycle, public access
//! block), with size limits. Text in request documents is data and kept byte for byte (see
//! [`walk`]).

use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::{Reader, Writer};

use crate::error::S3Result;
use crate::s3_error;

/// The S3 XML namespace.
pub const S3_NAMESPACE: &str = "http://s3.amazonaws.com/doc/2006-03-01/";
/// Largest XML request body accepted (S3 allows 10,000 parts in a Complete request).
pub const MAX_XML_REQUEST_BYTES: usize = 2 << 20;

/// Builds one XML document.
pub struct XmlBuilder {
    writer: Writer<Vec<u8>>,
}

impl XmlBuilder {
    /// Starts a document whose root element is `root` in the S3 namespace.
    pub fn new(root: &str) -> Self {
        let mut writer = Writer::new(Vec::new());
        writer
            .write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))
            .expect("write to Vec");
        let mut start = BytesStart::new(root);
        start.push_attribute(("xmlns", S3_NAMESPACE));
        writer
            .write_event(Event::Start(start))
            .expect("write to Vec");
        XmlBuilder { writer }
    }

    /// Starts a document whose root has no namespace (Error).
    pub fn bare(root: &str) -> Self {
        let mut writer = Writer::new(Vec::new());
        writer
            .write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))
            .expect("write to Vec");
        writer
            .write_event(Event::Start(BytesStart::new(root)))
            .expect("write to Vec");
        XmlBuilder { writer }
    }

    /// Opens a child element.
    pub fn open(&mut self, name: &str) -> &mut Self {
        self.writer
            .write_event(Event::Start(BytesStart::new(name)))
            .expect("write to Vec");
        self
    }

    /// Opens a child element with attributes.
    pub fn open_with(&mut self, name: &str, attributes: &[(&str, &str)]) -> &mut Self {
        let mut start = BytesStart::new(name);
        for a in attributes {
            start.push_attribute(*a);
        }
        self.writer
            .write_event(Event::Start(start))
            .expect("write to Vec");
        self
    }

    /// Closes a child element.
    pub fn close(&mut self, name: &str) -> &mut Self {
        self.writer
            .write_event(Event::End(BytesEnd::new(name)))
            .expect("write to Vec");
        self
    }

    /// Writes `<name>text</name>` (escaped).
    pub fn elem(&mut self, name: &str, text: impl AsRef<str>) -> &mut Self {
        self.open(name);
        self.writer
            .write_event(Event::Text(text_event(text.as_ref())))
            .expect("write to Vec");
        self.close(name)
    }

    /// Writes escaped text into the open element.
    pub fn elem_text(&mut self, text: &str) -> &mut Self {
        self.writer
            .write_event(Event::Text(text_event(text)))
            .expect("write to Vec");
        self
    }

    /// Writes the element only if `text` is present.
    pub fn opt(&mut self, name: &str, text: Option<impl AsRef<str>>) -> &mut Self {
        if let Some(t) = text {
            self.elem(name, t);
        }
        self
    }

    /// Closes the root `root` and returns the document.
    pub fn finish(mut self, root: &str) -> Vec<u8> {
        self.close(root);
        self.writer.into_inner()
    }
}

/// Element text, escaped so that a parser reads back exactly `text`: markup characters as
/// entities, and a carriage return as `&#13;` (XML 1.0 section 2.11: a parser turns a literal CR
/// into LF, so a key ending in CR would read back as one ending in LF).
fn text_event(text: &str) -> BytesText<'_> {
    let escaped = quick_xml::escape::escape(text);
    if escaped.contains('\r') {
        BytesText::from_escaped(escaped.replace('\r', "&#13;"))
    } else {
        BytesText::from_escaped(escaped)
    }
}

/// Writes a `Checksum<ALGORITHM>` element for each stored checksum, then `ChecksumType` if
/// given (CompleteMultipartUpload, CopyObject and GetObjectAttributes answers).
pub fn checksum_elems(
    x: &mut XmlBuilder,
    checksums: &[(String, String)],
    checksum_type: Option<&str>,
) {
    for (algorithm, value) in checksums {
        x.elem(&format!("Checksum{algorithm}"), value);
    }
    if let Some(t) = checksum_type {
        x.elem("ChecksumType", t);
    }
}

/// A part named in a CompleteMultipartUpload request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestPart {
    /// PartNumber.
    pub part_number: u32,
    /// ETag.
    pub etag: String,
    /// `Checksum<ALGORITHM>` elements: (algorithm as S3 names it, base64 value).
    pub checksums: Vec<(String, String)>,
}

fn malformed(detail: impl std::fmt::Display) -> crate::error::S3Error {
    s3_error!(
        MalformedXML,
        BAD_REQUEST,
        "the XML you provided was not well-formed or did not validate: {detail}"
    )
}

/// What [`walk`] reports: a text node or the end of an element, with its path (element names
/// from the root, joined by '/').
enum Node<'a> {
    Text(&'a str, String),
    End(&'a str),
}

/// Whether `c` may appear in an XML 1.0 document (section 2.2, "Characters"): of the C0
/// controls only tab, newline and carriage return; a character reference cannot name the
/// others either.
pub fn is_xml_char(c: char) -> bool {
    !matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}')
}

/// Walks an XML document, reporting the text of each leaf element and every element end.
///
/// Text is data, kept byte for byte (XML 1.0 trims nothing from element content: a key
/// `" a "` is that key): only whitespace between the children of an element is layout and
/// dropped. Text beside child elements, and characters XML 1.0 does not allow (`&#1;` too),
/// are refused.
fn walk(body: &[u8], mut visit: impl FnMut(Node<'_>) -> S3Result<()>) -> S3Result<()> {
    if body.len() > MAX_XML_REQUEST_BYTES {
        return Err(malformed(format!(
            "document larger than {MAX_XML_REQUEST_BYTES} bytes"
        )));
    }
    let mut reader = Reader::from_reader(body);
    reader.config_mut().trim_text(false);
    // The open elements: name, text so far, whether a child element was seen.
    let mut open: Vec<(String, String, bool)> = Vec::new();
    let path_of = |open: &[(String, String, bool)]| {
        open.iter()
            .map(|(n, _, _)| n.as_str())
            .collect::<Vec<_>>()
            .join("/")
    };
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf).map_err(malformed)? {
            Event::Start(e) => {
                if open.len() > 8 {
                    return Err(malformed("nesting too deep"));
                }
                if let Some(parent) = open.last_mut() {
                    parent.2 = true;
                }
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                open.push((name, String::new(), false));
            }
            Event::End(_) => {
                let path = path_of(&open);
                let (name, text, has_children) = open.pop().expect("quick-xml matches ends");
                match (has_children, text.trim().is_empty()) {
                    (false, _) if !text.is_empty() => visit(Node::Text(&path, text))?,
                    (true, false) => {
                        return Err(malformed(format!("text beside the elements of {name}")))
                    }
                    _ => {}
                }
                visit(Node::End(&path))?;
            }
            Event::Empty(e) => {
                if let Some(parent) = open.last_mut() {
                    parent.2 = true;
                }
                let mut p = path_of(&open);
                p.push('/');
                p.push_str(&String::from_utf8_lossy(e.local_name().as_ref()));
                visit(Node::End(&p))?;
            }
            Event::Text(t) => {
                let text = t.unescape().map_err(malformed)?;
                append_text(&mut open, &text)?;
            }
            Event::CData(t) => {
                let text = std::str::from_utf8(&t).map_err(malformed)?.to_string();
                append_text(&mut open, &text)?;
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !open.is_empty() {
        return Err(malformed("document ended inside an element"));
    }
    Ok(())
}

/// Adds text to the innermost open element (whitespace outside the root is layout).
///
/// Errors: MalformedXML for text outside the root or a character XML 1.0 does not allow.
fn append_text(open: &mut [(String, String, bool)], text: &str) -> S3Result<()> {
    if let Some(c) = text.chars().find(|c| !is_xml_char(*c)) {
        return Err(malformed(format!(
            "the character U+{:04X} is not allowed in XML 1.0",
            c as u32
        )));
    }
    match open.last_mut() {
        Some((_, t, _)) => t.push_str(text),
        None if text.trim().is_empty() => {}
        None => return Err(malformed("text outside the root element")),
    }
    Ok(())
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

/// Parses `<CreateBucketConfiguration><LocationConstraint/></CreateBucketConfiguration>`: the
/// location constraint, if any (S3 API Reference, CreateBucket).
///
/// Errors: MalformedXML for another root; NotImplemented naming any other element (a
/// directory bucket's `Location` and `Bucket`, `Tags`), which Hoard does not implement.
pub fn parse_create_bucket_configuration(body: &[u8]) -> S3Result<Option<String>> {
    let mut constraint = None;
    let mut refused = None;
    walk(body, |node| {
        match node {
            Node::Text("CreateBucketConfiguration/LocationConstraint", text) => {
                constraint = Some(text)
            }
            Node::End(
                "CreateBucketConfiguration" | "CreateBucketConfiguration/LocationConstraint",
            ) => {}
            Node::End(path) if !path.starts_with("CreateBucketConfiguration") => {
                return Err(malformed(format!(
                    "a CreateBucket body is CreateBucketConfiguration, not {path}"
                )))
            }
            Node::Text(path, _) | Node::End(path) => {
                refused.get_or_insert_with(|| path.to_string());
            }
        }
        Ok(())
    })?;
    if let Some(path) = refused {
        return Err(crate::s3_error!(
            NotImplemented,
            NOT_IMPLEMENTED,
            "the CreateBucket element {path} is not implemented (directory buckets and bucket tags at creation)"
        ));
    }
    Ok(constraint)
}

/// Parses `<CompleteMultipartUpload><Part><PartNumber/><ETag/>...</Part>...`.
pub fn parse_complete_multipart(body: &[u8]) -> S3Result<Vec<RequestPart>> {
    let mut parts = Vec::new();
    let mut number: Option<u32> = None;
    let mut etag: Option<String> = None;
    let mut checksums = Vec::new();
    walk(body, |node| {
        match node {
            Node::Text(path, text) if path.starts_with("CompleteMultipartUpload/Part/Checksum") => {
                let algorithm = &path["CompleteMultipartUpload/Part/Checksum".len()..];
                // ChecksumType is not a checksum.
                if algorithm != "Type" {
                    checksums.push((algorithm.to_string(), text));
                }
            }
            Node::Text("CompleteMultipartUpload/Part/PartNumber", text) => {
                number = Some(
                    text.trim()
                        .parse()
                        .map_err(|_| malformed(format!("PartNumber {text:?} is not a number")))?,
                )
            }
            Node::Text("CompleteMultipartUpload/Part/ETag", text) => etag = Some(text),
            Node::End("CompleteMultipartUpload/Part") => match (number.take(), etag.take()) {
                (Some(part_number), Some(etag)) => parts.push(RequestPart {
                    part_number,
                    etag,
                    checksums: std::mem::take(&mut checksums),
                }),
                _ => return Err(malformed("each Part needs PartNumber and ETag")),
            },
            _ => {}
        }
        Ok(())
    })?;
    // The schema requires at least one Part (S3 answers MalformedXML).
    if parts.is_empty() {
        return Err(malformed(
            "CompleteMultipartUpload must name at least one Part",
        ));
    }
    Ok(parts)
}

/// Parses `<Delete><Quiet/>?<Object><Key/><VersionId/>?</Object>...</Delete>`; returns
/// ((key, version ID as sent), quiet).
///
/// Errors: MalformedXML for an Object without a Key, or more than 1000.
#[allow(clippy::type_complexity)]
pub fn parse_delete(body: &[u8]) -> S3Result<(Vec<(String, Option<String>)>, bool)> {
    let mut keys = Vec::new();
    let mut quiet = false;
    let (mut key, mut version) = (None, None);
    walk(body, |node| {
        match node {
            Node::Text("Delete/Object/Key", text) => key = Some(text),
            Node::Text("Delete/Object/VersionId", text) => version = Some(text),
            Node::End("Delete/Object") => match key.take() {
                Some(k) => keys.push((k, version.take())),
                None => return Err(malformed("each Object needs a Key")),
            },
            Node::Text("Delete/Quiet", text) => quiet = text.eq_ignore_ascii_case("true"),
            _ => {}
        }
        Ok(())
    })?;
    if keys.len() > 1000 {
        return Err(malformed("at most 1000 keys per Delete request"));
    }
    Ok((keys, quiet))
}

/// Parses `<VersioningConfiguration><Status>Enabled|Suspended</Status>
/// <MfaDelete/>?</VersioningConfiguration>` (PutBucketVersioning).
///
/// Errors: MalformedXML without a Status or with another one; NotImplemented for MFA delete.
pub fn parse_versioning(body: &[u8]) -> S3Result<hoard::Versioning> {
    let mut status = None;
    let mut mfa = None;
    walk(body, |node| {
        match node {
            Node::Text("VersioningConfiguration/Status", text) => status = Some(text),
            Node::Text("VersioningConfiguration/MfaDelete", text) => mfa = Some(text),
            _ => {}
        }
        Ok(())
    })?;
    if mfa.as_deref() == Some("Enabled") {
        return Err(crate::s3_error!(
            NotImplemented,
            NOT_IMPLEMENTED,
            "MFA delete is not supported"
        ));
    }
    match status.as_deref() {
        Some("Enabled") => Ok(hoard::Versioning::Enabled),
        Some("Suspended") => Ok(hoard::Versioning::Suspended),
        Some(other) => Err(malformed(format!(
            "versioning Status must be Enabled or Suspended, not {other:?}"
        ))),
        None => Err(malformed("VersioningConfiguration needs a Status")),
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

/// Parses `<Tagging><TagSet><Tag><Key/><Value/></Tag>...` into (key, value) pairs.
pub fn parse_tagging(body: &[u8]) -> S3Result<Vec<(String, String)>> {
    let mut tags = Vec::new();
    let (mut key, mut value) = (None, None);
    let mut seen_root = false;
    walk(body, |node| {
        match node {
            Node::Text("Tagging/TagSet/Tag/Key", t) => key = Some(t),
            Node::Text("Tagging/TagSet/Tag/Value", t) => value = Some(t),
            Node::End("Tagging/TagSet/Tag/Value") if value.is_none() => value = Some(String::new()),
            Node::End("Tagging/TagSet/Tag") => match key.take() {
                Some(k) => tags.push((k, value.take().unwrap_or_default())),
                None => return Err(malformed("each Tag needs a Key")),
            },
            Node::End("Tagging") => seen_root = true,
            _ => {}
        }
        Ok(())
    })?;
    if !seen_root {
        return Err(malformed("the body is not a Tagging document"));
    }
    Ok(tags)
}

/// Parses `<LifecycleConfiguration><Rule>...` into rules, as written (validated by
/// `Lifecycle::from_xml`).
pub fn parse_lifecycle(body: &[u8]) -> S3Result<Vec<crate::lifecycle::Rule>> {
    let mut rules = Vec::new();
    let mut rule = crate::lifecycle::Rule::default();
    let mut status: Option<String> = None;
    let mut tag: (Option<String>, Option<String>) = (None, None);
    let mut seen_root = false;
    let mut saw_filter = false;
    let number = |t: &str, what: &str| {
        t.trim()
            .parse::<u64>()
            .map_err(|_| malformed(format!("{what} {t:?} is not a whole number")))
    };
    walk(body, |node| {
        const R: &str = "LifecycleConfiguration/Rule/";
        match node {
            Node::Text(path, text) if path.starts_with(R) => {
                let p = &path[R.len()..];
                if p == "Prefix" {
                    rule.filter.rule_level_prefix = true;
                }
                let p = p
                    .strip_prefix("Filter/And/")
                    .or_else(|| p.strip_prefix("Filter/"))
                    .unwrap_or(p);
                match p {
                    "ID" => rule.id = text,
                    "Status" => status = Some(text),
                    "Prefix" => rule.filter.prefix = text,
                    "Tag/Key" => tag.0 = Some(text),
                    "Tag/Value" => tag.1 = Some(text),
                    "ObjectSizeGreaterThan" => {
                        rule.filter.size_greater_than = Some(number(&text, p)?)
                    }
                    "ObjectSizeLessThan" => rule.filter.size_less_than = Some(number(&text, p)?),
                    "Expiration/Days" => rule.expiration_days = Some(number(&text, p)?),
                    "Expiration/Date" => {
                        let secs = crate::auth::parse_amz_date(&format!(
                            "{}T000000Z",
                            text.get(..10).unwrap_or("").replace('-', "")
                        ))
                        .ok_or_else(|| malformed(format!("Date {text:?} is not an ISO 8601 date")))?;
                        if text.len() > 10 && !text[10..].starts_with("T00:00:00") {
                            return Err(s3_error!(
                                InvalidArgument,
                                BAD_REQUEST,
                                "an expiration Date must be at midnight UTC, not {text}"
                            ));
                        }
                        rule.expiration_date_secs = Some(secs);
                    }
                    "Expiration/ExpiredObjectDeleteMarker" => {
                        rule.expired_object_delete_marker = text.eq_ignore_ascii_case("true")
                    }
                    "NoncurrentVersionExpiration/NoncurrentDays" => {
                        rule.noncurrent_days = Some(number(&text, p)?)
                    }
                    "NoncurrentVersionExpiration/NewerNoncurrentVersions" => {
                        rule.newer_noncurrent_versions = Some(number(&text, p)?)
                    }
                    "AbortIncompleteMultipartUpload/DaysAfterInitiation" => {
                        rule.abort_upload_days = Some(number(&text, p)?)
                    }
                    t if t.starts_with("Transition") || t.starts_with("NoncurrentVersionTransition") => {
                        return Err(s3_error!(
                            InvalidArgument,
                            BAD_REQUEST,
                            "lifecycle transitions are not supported: this server has one storage class"
                        ))
                    }
                    other => return Err(malformed(format!("unknown element {other} in a lifecycle Rule"))),
                }
            }
            Node::End(p)
                if p.ends_with("/Tag") && p.starts_with("LifecycleConfiguration/Rule/") =>
            {
                match (tag.0.take(), tag.1.take()) {
                    (Some(k), v) => rule.filter.tags.push((k, v.unwrap_or_default())),
                    _ => return Err(malformed("each Tag needs a Key")),
                }
            }
            Node::End("LifecycleConfiguration/Rule/Prefix") => rule.filter.rule_level_prefix = true,
            Node::End("LifecycleConfiguration/Rule/Filter") => saw_filter = true,
            Node::End("LifecycleConfiguration/Rule") => {
                if std::mem::take(&mut saw_filter) && rule.filter.rule_level_prefix {
                    return Err(malformed(
                        "a lifecycle Rule takes a Prefix or a Filter, not both",
                    ));
                }
                let mut r = std::mem::take(&mut rule);
                match status.take().as_deref() {
                    Some("Enabled") => r.enabled = true,
                    Some("Disabled") => r.enabled = false,
                    _ => return Err(malformed("each Rule needs Status Enabled or Disabled")),
                }
                if r.id.is_empty() {
                    r.id = format!("rule-{}", rules.len() + 1);
                }
                rules.push(r);
            }
            Node::End("LifecycleConfiguration") => seen_root = true,
            _ => {}
        }
        Ok(())
    })?;
    if !seen_root {
        return Err(malformed(
            "the body is not a LifecycleConfiguration document",
        ));
    }
    Ok(rules)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_request_parses_and_rejects_garbage() {
        let body = br#"<?xml version="1.0"?><CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Part><ETag>"a&amp;b"</ETag><PartNumber>1</PartNumber><ChecksumCRC32>x</ChecksumCRC32></Part><Part><PartNumber>2</PartNumber><ETag>c</ETag></Part></CompleteMultipartUpload>"#;
        let parts = parse_complete_multipart(body).unwrap();
        assert_eq!(
            parts,
            vec![
                RequestPart {
                    part_number: 1,
                    etag: "\"a&b\"".into(),
                    checksums: vec![("CRC32".into(), "x".into())],
                },
                RequestPart {
                    part_number: 2,
                    etag: "c".into(),
                    checksums: vec![],
                }
            ]
        );
        assert_eq!(
            parse_complete_multipart(b"<CompleteMultipartUpload><Part>")
                .unwrap_err()
                .code,
            "MalformedXML"
        );
        assert_eq!(parse_complete_multipart(b"<CompleteMultipartUpload><Part><PartNumber>x</PartNumber></Part></CompleteMultipartUpload>").unwrap_err().code, "MalformedXML");
    }

    #[test]
    fn text_is_kept_byte_for_byte() {
        let body = b"<Delete>\n  <Object><Key> </Key></Object>\n  <Object><Key>_ </Key></Object>\n  <Object><Key> a </Key></Object><Object><Key>\t</Key></Object><Object><Key>x\n</Key></Object><Object><Key>&#32;b&#9;</Key></Object><Object><Key><![CDATA[ c ]]></Key></Object>\n</Delete>";
        let (keys, _) = parse_delete(body).unwrap();
        let keys: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, [" ", "_ ", " a ", "\t", "x\n", " b\t", " c "]);
        let tags = parse_tagging(
            b"<Tagging><TagSet><Tag><Key> sp </Key><Value>  v  </Value></Tag></TagSet></Tagging>",
        )
        .unwrap();
        assert_eq!(tags, [(" sp ".to_string(), "  v  ".to_string())]);
        for bad in [
            &b"<Delete><Object><Key>&#1;</Key></Object></Delete>"[..],
            b"<Delete><Object><Key>a\x01</Key></Object></Delete>",
            b"<Delete>stray<Object><Key>a</Key></Object></Delete>",
        ] {
            assert_eq!(parse_delete(bad).unwrap_err().code, "MalformedXML");
        }
    }

    #[test]
    fn builder_escapes() {
        let mut x = XmlBuilder::new("R");
        x.elem("Key", "a<b&c");
        let s = String::from_utf8(x.finish("R")).unwrap();
        assert!(s.contains("<Key>a&lt;b&amp;c</Key>"), "{s}");
    }
}
