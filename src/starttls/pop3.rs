//! POP3 (RFC 2595, RFC 2449): the `+OK` greeting, `CAPA` listing `STLS`, then `STLS` and its
//! `+OK`. A server without `CAPA` (`-ERR`) is asked for `STLS` all the same.

use super::dialogue::{Dialogue, quote};
use crate::Error;

pub(super) fn upgrade(d: &mut Dialogue<'_>) -> Result<(), Error> {
    let greeting = d.line()?;
    if !greeting.starts_with("+OK") {
        return Err(d.unexpected(&greeting, "+OK"));
    }
    d.send_line("CAPA", "CAPA")?;
    let first = d.line()?;
    let capabilities = if first.starts_with("+OK") {
        let mut capabilities = Vec::new();
        loop {
            let line = d.line()?;
            if line == "." {
                break;
            }
            capabilities.push(line);
        }
        Some(capabilities)
    } else if first.starts_with("-ERR") {
        None
    } else {
        return Err(d.unexpected(&first, "+OK"));
    };
    if let Some(capabilities) = &capabilities {
        let has = capabilities.iter().any(|c| {
            c.split_whitespace()
                .next()
                .is_some_and(|w| w.eq_ignore_ascii_case("STLS"))
        });
        if !has {
            return Err(d.not_offered(format!(
                "its CAPA reply lists {}",
                quote(&capabilities.join(", "))
            )));
        }
    }
    d.send_line("STLS", "STLS")?;
    let answer = d.line()?;
    if answer.starts_with("+OK") {
        return Ok(());
    }
    match (answer.starts_with("-ERR"), capabilities) {
        (true, None) => Err(d.not_offered(format!(
            "it answers neither CAPA nor STLS (STLS: {:?})",
            quote(&answer)
        ))),
        (true, Some(_)) => Err(d.refused(&answer)),
        (false, _) => Err(d.unexpected(&answer, "+OK")),
    }
}
