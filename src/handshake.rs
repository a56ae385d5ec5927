//! The TLS handshake over the in-memory transport, bounded by the connect deadline, and how
//! its failures become errors a person can act on.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use log::debug;
use native_tls::{HandshakeError, TlsConnector, TlsStream};

use crate::Error;
use crate::error::tls_reason;
use crate::transport::MemoryTransport;

pub(crate) fn handshake(
    connector: &TlsConnector,
    name: &str,
    socket: &mut TcpStream,
    deadline: Instant,
    target: &str,
    timeout: impl Fn() -> Error,
) -> Result<TlsStream<MemoryTransport>, Error> {
    let io_error = |op, source| Error::Io {
        target: target.to_string(),
        op,
        source,
    };
    let mut buf = vec![0u8; 16 * 1024];
    let (transport, spill) = MemoryTransport::spilling();
    let mut result = connector.connect(name, transport);
    loop {
        let mut mid = match result {
            Ok(mut tls) => {
                let out = tls.get_mut().take_outbound();
                tls.get_mut().end_spill();
                socket
                    .write_all(&out)
                    .map_err(|e| io_error("writing to", e))?;
                return Ok(tls);
            }
            Err(HandshakeError::Failure(e)) => {
                // Tell the server why (the alert OpenSSL just wrote, e.g. `unknown CA`),
                // best effort and bounded: the error below is what matters.
                let alert = spill.take();
                if !alert.is_empty() {
                    let bound = deadline
                        .saturating_duration_since(Instant::now())
                        .max(Duration::from_millis(100));
                    if socket.set_write_timeout(Some(bound)).is_ok() {
                        let sent = socket.write_all(&alert);
                        debug!("handshake failed; alert to the server: {sent:?}");
                    }
                }
                return Err(classify_handshake_error(target, &e.to_string()));
            }
            Err(HandshakeError::WouldBlock(mid)) => mid,
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(timeout());
        }
        let is_timeout = |e: &io::Error| {
            matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            )
        };
        let out = mid.get_mut().take_outbound();
        if !out.is_empty() {
            socket
                .set_write_timeout(Some(remaining))
                .map_err(|e| io_error("writing to", e))?;
            socket.write_all(&out).map_err(|e| {
                if is_timeout(&e) {
                    timeout()
                } else {
                    io_error("writing to", e)
                }
            })?;
        }
        if mid.get_ref().is_eof() {
            return Err(Error::Handshake {
                target: target.to_string(),
                reason: "the server closed the connection during the handshake".into(),
            });
        }
        socket
            .set_read_timeout(Some(remaining))
            .map_err(|e| io_error("reading from", e))?;
        let n = loop {
            match socket.read(&mut buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_timeout(&e) => return Err(timeout()),
                Err(e) => return Err(io_error("reading from", e)),
                Ok(n) => break n,
            }
        };
        if n == 0 {
            mid.get_mut().feed_eof();
        } else {
            mid.get_mut().feed(&buf[..n]);
        }
        result = mid.handshake();
    }
}

fn classify_handshake_error(target: &str, text: &str) -> Error {
    let (reason, detail) = tls_reason(text);
    let target = target.to_string();
    if reason.contains("certificate verify failed") {
        return Error::Certificate {
            target,
            reason: detail.unwrap_or(reason),
        };
    }
    if [
        "wrong version number",
        "packet length too long",
        "record layer failure",
        "unknown protocol",
    ]
    .iter()
    .any(|r| reason.contains(r))
    {
        return Error::NotTls { target };
    }
    let reason = if reason == "unexpected EOF" {
        "the server closed the connection during the handshake".to_string()
    } else {
        reason
    };
    Error::Handshake { target, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_errors_are_classified() {
        let e = classify_handshake_error(
            "h:1",
            "error:0A000086:SSL routines:tls_post_process_server_certificate:certificate verify failed:ssl/statem/statem_clnt.c:1890: (Hostname mismatch)",
        );
        assert!(
            matches!(e, Error::Certificate { ref reason, .. } if reason == "Hostname mismatch"),
            "{e:?}"
        );
        let e = classify_handshake_error(
            "h:1",
            "error:0A00010B:SSL routines:ssl3_get_record:wrong version number:ssl/record/ssl3_record.c:354:",
        );
        assert!(matches!(e, Error::NotTls { .. }), "{e:?}");
    }
}
