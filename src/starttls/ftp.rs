//! FTP (RFC 4217): the `220` greeting (after any `120` "wait"), `AUTH TLS`, `234`.

use super::dialogue::{Dialogue, quote};
use super::smtp::reply;
use crate::Error;

/// `120` "ready in a few minutes" replies taken before the greeting proper.
const MAX_WAITS: usize = 4;

pub(super) fn upgrade(d: &mut Dialogue<'_>) -> Result<(), Error> {
    let mut greeting = reply(d, "220", true)?;
    for _ in 0..MAX_WAITS {
        if greeting.code != 120 {
            break;
        }
        greeting = reply(d, "220", true)?;
    }
    if greeting.code != 220 {
        return Err(d.unexpected(&greeting.last, "220"));
    }
    d.send_line("AUTH TLS", "AUTH TLS")?;
    let answer = reply(d, "234", true)?;
    match answer.code {
        234 => Ok(()),
        // Not understood, bad syntax, not implemented, or not for this parameter: no TLS
        // here. vsftpd without TLS (`ssl_enable=NO`) answers 530 "Please login with USER and
        // PASS", as to any command it does not take before a login.
        500 | 501 | 502 | 504 | 530 => Err(d.not_offered(format!(
            "it answered AUTH TLS with {:?}",
            quote(&answer.last)
        ))),
        400..=599 => Err(d.refused(&answer.last)),
        _ => Err(d.unexpected(&answer.last, "234")),
    }
}
