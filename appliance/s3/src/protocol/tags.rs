//! An object's or a bucket's tag set as data (S3 User Guide, "Categorizing your storage
//! using tags"): its limits, its URL-query encoding (`x-amz-tagging`, the stored header) and
//! its `Tagging` document. Read by the tagging operations, the policy condition keys
//! (`s3:ExistingObjectTag`) and the lifecycle worker's tag filters.
//!
//! Must not import anything of this crate above `error`, `xml` and the rest of `protocol`.

use crate::error::{S3Error, S3Result};
use crate::s3_error;
use crate::xml::{malformed, walk, Node, XmlBuilder};

/// The stored object header holding an object's tags.
pub const OBJECT_TAGGING_HEADER: &str = "x-hoard-tagging";

/// The bucket attribute holding a bucket's tags.
pub const BUCKET_TAGGING_ATTRIBUTE: &str = "tagging";

/// Most tags on an object.
pub const MAX_OBJECT_TAGS: usize = 10;

/// Most tags on a bucket.
pub const MAX_BUCKET_TAGS: usize = 50;

/// A tag set, in order.
pub type TagSet = Vec<(String, String)>;

pub(crate) fn invalid(detail: impl std::fmt::Display) -> S3Error {
    s3_error!(InvalidTag, BAD_REQUEST, "{detail}")
}

/// Checks a tag set against S3's limits (`max` tags).
///
/// Errors: InvalidTag naming the tag; BadRequest for too many tags.
pub fn check(tags: &TagSet, max: usize) -> S3Result<()> {
    if tags.len() > max {
        return Err(s3_error!(
            BadRequest,
            BAD_REQUEST,
            "at most {max} tags, not {}",
            tags.len()
        ));
    }
    for (i, (k, v)) in tags.iter().enumerate() {
        if k.is_empty() || k.chars().count() > 128 {
            return Err(invalid(format!(
                "tag key {k:?} must be 1 to 128 characters"
            )));
        }
        if v.chars().count() > 256 {
            return Err(invalid(format!(
                "the value of tag {k:?} is longer than 256 characters"
            )));
        }
        if k.to_ascii_lowercase().starts_with("aws:") {
            return Err(invalid(format!(
                "tag key {k:?}: the aws: prefix is reserved"
            )));
        }
        if tags[..i].iter().any(|(other, _)| other == k) {
            return Err(invalid(format!("tag key {k:?} appears twice")));
        }
    }
    Ok(())
}

/// Encodes a tag set as a URL query (`k1=v1&k2=v2`), as `x-amz-tagging` carries it.
pub fn encode(tags: &TagSet) -> String {
    let enc = |s: &str| crate::protocol::uri::uri_encode(s, false);
    tags.iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Decodes `x-amz-tagging` (a URL query, form-encoded: `+` is a space).
///
/// Errors: InvalidArgument for bad percent-encoding.
pub fn decode(query: &str) -> S3Result<TagSet> {
    crate::protocol::uri::parse_query(&query.replace('+', "%20"))
}

/// The tags an object's stored headers hold.
pub fn of_headers(headers: &[(String, String)]) -> S3Result<TagSet> {
    match headers.iter().find(|(n, _)| n == OBJECT_TAGGING_HEADER) {
        Some((_, v)) => decode(v),
        None => Ok(Vec::new()),
    }
}

pub fn tagging_xml(tags: &TagSet) -> Vec<u8> {
    let mut x = XmlBuilder::new("Tagging");
    x.open("TagSet");
    for (k, v) in tags {
        x.open("Tag").elem("Key", k).elem("Value", v).close("Tag");
    }
    x.close("TagSet");
    x.finish("Tagging")
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

/// The tags the stored headers hold; none when they cannot be read (the lifecycle worker's
/// filters and the policy's `s3:ExistingObjectTag` see an unreadable set as empty).
pub fn stored(headers: &[(String, String)]) -> TagSet {
    of_headers(headers).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagging_documents_keep_their_text() {
        let tags = parse_tagging(
            b"<Tagging><TagSet><Tag><Key> sp </Key><Value>  v  </Value></Tag></TagSet></Tagging>",
        )
        .unwrap();
        assert_eq!(tags, [(" sp ".to_string(), "  v  ".to_string())]);
        assert_eq!(decode(&encode(&tags)).unwrap(), tags);
        assert_eq!(parse_tagging(b"<Other/>").unwrap_err().code, "MalformedXML");
    }
}
