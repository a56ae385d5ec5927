//! IMAP (RFC 3501): the `* OK` greeting, `CAPABILITY` listing `STARTTLS`, then a tagged
//! `STARTTLS` answered `OK`. Untagged lines in between are read and passed over.

use super::dialogue::{Dialogue, quote};
use crate::Error;

pub(super) fn upgrade(d: &mut Dialogue<'_>) -> Result<(), Error> {
    let greeting = d.line()?;
    if starts_with(&greeting, "* PREAUTH") {
        return Err(d.not_offered(
            "it greets with PREAUTH (already logged in), where STARTTLS is not allowed".into(),
        ));
    }
    if !starts_with(&greeting, "* OK") {
        return Err(d.unexpected(&greeting, "* OK"));
    }
    d.send_line("CAPABILITY", "a CAPABILITY")?;
    let mut capabilities = Vec::new();
    loop {
        let line = d.line()?;
        if let Some(status) = line.strip_prefix("a ") {
            if !starts_with(status, "OK") {
                return Err(d.unexpected(&line, "a OK"));
            }
            break;
        }
        if starts_with(&line, "* CAPABILITY ") {
            capabilities.extend(line[13..].split_whitespace().map(str::to_string));
        }
    }
    if !capabilities
        .iter()
        .any(|c| c.eq_ignore_ascii_case("STARTTLS"))
    {
        return Err(d.not_offered(format!(
            "its CAPABILITY reply lists {}",
            quote(&capabilities.join(" "))
        )));
    }
    d.send_line("STARTTLS", "b STARTTLS")?;
    loop {
        let line = d.line()?;
        let Some(status) = line.strip_prefix("b ") else {
            continue;
        };
        if starts_with(status, "OK") {
            return Ok(());
        }
        if starts_with(status, "NO") || starts_with(status, "BAD") {
            return Err(d.refused(&line));
        }
        return Err(d.unexpected(&line, "b OK"));
    }
}

/// Whether `text` starts with `prefix`, ignoring ASCII case.
fn starts_with(text: &str, prefix: &str) -> bool {
    text.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}
