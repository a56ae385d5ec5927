//! XMPP (RFC 6120): our stream header to the domain, the server's stream features, which must
//! hold `<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'>`, then `<starttls/>` and the
//! server's `<proceed/>`.
//!
//! The server's XML is read a tag at a time (up to each `>`) and only looked at for these
//! few elements: enough to follow the exchange without an XML parser, and nothing past
//! `<proceed/>` is read.

use super::dialogue::{Dialogue, quote};
use crate::Error;

const TLS_NS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
/// Tags of a `<stream:error>` read to say what it was.
const MAX_ERROR_TAGS: usize = 8;

pub(super) fn upgrade(d: &mut Dialogue<'_>, domain: &str) -> Result<(), Error> {
    let header = format!(
        "<?xml version='1.0'?><stream:stream to='{}' version='1.0' xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams'>",
        escape(domain)
    );
    d.send("stream header", header.as_bytes(), &header)?;
    d.step("stream features");
    d.expect_xml("<stream:stream>")?;
    let mut features = String::new();
    loop {
        let tag = d.until(b'>')?;
        let tag = tag.trim();
        if tag.contains("<stream:error") {
            let mut error = tag.to_string();
            for _ in 0..MAX_ERROR_TAGS {
                if error.contains("</stream:error>") {
                    break;
                }
                error.push_str(d.until(b'>')?.trim());
            }
            return Err(d.unexpected(&error, "<stream:features>"));
        }
        if tag.contains("</stream:stream>") {
            return Err(d.unexpected(tag, "<stream:features>"));
        }
        if !features.is_empty() || tag.contains("<stream:features") {
            features.push_str(tag);
        }
        let empty = tag.contains("<stream:features") && tag.ends_with("/>");
        if empty || features.ends_with("</stream:features>") {
            break;
        }
    }
    if !(features.contains("<starttls") && features.contains(TLS_NS)) {
        return Err(d.not_offered(format!("its stream features are {}", quote(&features))));
    }
    let starttls = format!("<starttls xmlns='{TLS_NS}'/>");
    d.send("starttls", starttls.as_bytes(), &starttls)?;
    let answer = d.until(b'>')?;
    let answer = answer.trim();
    if answer.starts_with("<proceed") {
        if !answer.ends_with("/>") {
            // `<proceed ...></proceed>`: its end tag comes before TLS.
            let end = d.until(b'>')?;
            if end.trim() != "</proceed>" {
                return Err(d.unexpected(end.trim(), "</proceed>"));
            }
        }
        return Ok(());
    }
    if answer.starts_with("<failure") {
        return Err(d.refused(answer));
    }
    Err(d.unexpected(answer, "<proceed/>"))
}

/// `text` as an XML attribute value between single quotes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}
