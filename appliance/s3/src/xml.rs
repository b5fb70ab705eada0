//! S3 XML, the helpers every document shares: [`XmlBuilder`] writes a response document
//! (quick-xml), [`walk`] reads a request document (size and depth limits, text kept byte for
//! byte) and [`malformed`] is its one error. Each document's type, parser and writer live
//! with what owns it (ACLs in `auth::acl`, CORS in `ops::cors`, tags in `protocol::tags`,
//! lifecycle rules in `lifecycle`, ...), so a new document touches no shared file.
//!
//! Must not import anything of this crate but `error`: it knows no document, operation or
//! principal.

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

/// MalformedXML, with what was wrong.
pub fn malformed(detail: impl std::fmt::Display) -> crate::error::S3Error {
    s3_error!(
        MalformedXML,
        BAD_REQUEST,
        "the XML you provided was not well-formed or did not validate: {detail}"
    )
}

/// What [`walk`] reports: a text node or the end of an element, with its path (element names
/// from the root, joined by '/').
pub enum Node<'a> {
    /// The text of a leaf element: (path, text).
    Text(&'a str, String),
    /// The end of an element (also of an empty one), by path.
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
pub fn walk(body: &[u8], mut visit: impl FnMut(Node<'_>) -> S3Result<()>) -> S3Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Leaf texts of a document, in order.
    fn texts(body: &[u8]) -> S3Result<Vec<String>> {
        let mut out = Vec::new();
        walk(body, |node| {
            if let Node::Text(_, t) = node {
                out.push(t);
            }
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn text_is_kept_byte_for_byte() {
        let body = b"<Delete>\n  <Object><Key> </Key></Object>\n  <Object><Key>_ </Key></Object>\n  <Object><Key> a </Key></Object><Object><Key>\t</Key></Object><Object><Key>x\n</Key></Object><Object><Key>&#32;b&#9;</Key></Object><Object><Key><![CDATA[ c ]]></Key></Object>\n</Delete>";
        assert_eq!(
            texts(body).unwrap(),
            [" ", "_ ", " a ", "\t", "x\n", " b\t", " c "]
        );
        for bad in [
            &b"<Delete><Object><Key>&#1;</Key></Object></Delete>"[..],
            b"<Delete><Object><Key>a\x01</Key></Object></Delete>",
            b"<Delete>stray<Object><Key>a</Key></Object></Delete>",
        ] {
            assert_eq!(texts(bad).unwrap_err().code, "MalformedXML");
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
