//! PostgreSQL: the `SSLRequest` (length 8, code 80877103), answered by one byte: `S` to start
//! TLS, `N` for a server without it. Nothing after that byte is read: a server that sent
//! more before the handshake would be injecting data (CVE-2021-23222), and it stays for TLS
//! to reject.

use super::dialogue::Dialogue;
use crate::Error;

/// Length 8, then the code 80877103 (1234 << 16 | 5679), both big-endian.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

pub(super) fn upgrade(d: &mut Dialogue<'_>) -> Result<(), Error> {
    d.send(
        "SSLRequest",
        &SSL_REQUEST,
        "SSLRequest (length 8, code 80877103)",
    )?;
    match d.byte()? {
        b'S' => Ok(()),
        b'N' => Err(d.not_offered(
            "it answered N to the SSLRequest: TLS is off on that server (ssl = off)".into(),
        )),
        b'E' => Err(d.unexpected(
            "E, an error message (a server too old for SSLRequest?)",
            "S or N",
        )),
        other => Err(d.unexpected(&(other as char).to_string(), "S or N")),
    }
}
