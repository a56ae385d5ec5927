//! SMTP (RFC 3207) and LMTP (RFC 2033): the `220` greeting, `EHLO` (LMTP: `LHLO`) whose `250`
//! reply must list `STARTTLS`, then `STARTTLS` and its `220`.

use super::dialogue::{Dialogue, quote};
use crate::Error;

/// A numeric reply (SMTP, LMTP, FTP): its code and the text of each line after the code.
pub(super) struct Reply {
    pub(super) code: u16,
    pub(super) lines: Vec<String>,
    /// The last line, whole, for messages.
    pub(super) last: String,
}

/// Reads one numeric reply. In SMTP every line carries the code, `-` after it on all but the
/// last; in FTP (`any_middle`) the lines between the first and the last (`CODE `) may be
/// anything.
pub(super) fn reply(
    d: &mut Dialogue<'_>,
    expected: &'static str,
    any_middle: bool,
) -> Result<Reply, Error> {
    let mut code = None;
    let mut lines = Vec::new();
    loop {
        let line = d.line()?;
        let parsed = line
            .get(..3)
            .and_then(|c| c.parse::<u16>().ok())
            .filter(|_| line.as_bytes()[..3].iter().all(u8::is_ascii_digit));
        let sep = line.as_bytes().get(3).copied();
        match (code, parsed) {
            (None, None) => return Err(d.unexpected(&line, expected)),
            (None, Some(c)) => code = Some(c),
            (Some(first), Some(c)) if c == first => {}
            (Some(_), _) if any_middle => {
                lines.push(line);
                continue;
            }
            (Some(_), _) => return Err(d.unexpected(&line, expected)),
        }
        let text = line.get(4..).unwrap_or_default().to_string();
        let last = matches!(sep, None | Some(b' '));
        if !last && sep != Some(b'-') {
            return Err(d.unexpected(&line, expected));
        }
        lines.push(text);
        if last {
            return Ok(Reply {
                code: code.unwrap_or_default(),
                lines,
                last: line,
            });
        }
    }
}

pub(super) fn upgrade(
    d: &mut Dialogue<'_>,
    hello: &'static str,
    client_name: &str,
) -> Result<(), Error> {
    let greeting = reply(d, "220", false)?;
    if greeting.code != 220 {
        return Err(d.unexpected(&greeting.last, "220"));
    }
    d.send_line(hello, &format!("{hello} {client_name}"))?;
    let offers = reply(d, "250", false)?;
    if offers.code != 250 {
        return Err(d.unexpected(&offers.last, "250"));
    }
    // The first line is the server's name; each later one starts with a keyword.
    let keywords = &offers.lines[1..];
    let has = keywords.iter().any(|k| {
        k.split_whitespace()
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case("STARTTLS"))
    });
    if !has {
        let said = if keywords.is_empty() {
            format!("its {hello} reply lists no extensions")
        } else {
            format!("its {hello} reply lists {}", quote(&keywords.join(", ")))
        };
        return Err(d.not_offered(said));
    }
    d.send_line("STARTTLS", "STARTTLS")?;
    let answer = reply(d, "220", false)?;
    match answer.code {
        220 => Ok(()),
        400..=599 => Err(d.refused(&answer.last)),
        _ => Err(d.unexpected(&answer.last, "220")),
    }
}
