//! The TLS handshake over the in-memory transport, bounded by the connect deadline, and how
//! its failures become errors a person can act on: the handshake messages that travel in the
//! clear are watched on the way (a server that asks for a client certificate), and a rejected
//! certificate is diagnosed (see [`crate::diagnose`]).

pub(crate) mod exchange;

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use log::debug;
use native_tls::{HandshakeError, TlsStream};

use crate::config::Connector;
use crate::diagnose::Redial;
use crate::error::{Alert, CertificateError};
use crate::openssl_text::{self, Cause, Failure};
use crate::record::Clear;
use crate::transport::MemoryTransport;
use crate::{Error, diagnose};
use exchange::{Exchange, Stop};

pub(crate) fn handshake(
    connector: &Connector,
    name: &str,
    socket: &mut TcpStream,
    deadline: Instant,
    target: &str,
    timeout: impl Fn() -> Error,
    redial: Option<Redial<'_>>,
) -> Result<TlsStream<MemoryTransport>, Error> {
    let io_error = |op, source| Error::Io {
        target: target.to_string(),
        op,
        source,
    };
    // Asked now: once the server has closed, the socket may no longer know.
    let peer = match redial {
        Some(Redial::Same) => socket.peer_addr().ok().map(Redial::Direct),
        other => other,
    };
    let fail = |stop| match stop {
        Stop::TimedOut => timeout(),
        Stop::Io(op, source) => io_error(op, source),
    };
    let mut exchange = Exchange::new(socket, deadline);
    let (transport, spill) = MemoryTransport::spilling();
    let mut seen = Seen::default();
    let mut result = connector.tls.connect(name, transport);
    loop {
        let mut mid = match result {
            Ok(mut tls) => {
                let out = tls.get_mut().take_outbound();
                tls.get_mut().end_spill();
                exchange.send(&out).map_err(fail)?;
                return Ok(tls);
            }
            Err(HandshakeError::Failure(e)) => {
                let socket = exchange.socket();
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
                // Then our FIN: this connection is over, and a server that waits for the
                // client's end before it accepts the next connection (s_server waits about half
                // a second, measured) must not hold up the diagnosis below.
                let _ = socket.shutdown(Shutdown::Write);
                let failure = openssl_text::read_error(&e);
                let reported = match failure.cause {
                    Cause::Verify { code, .. } => code,
                    _ => None,
                };
                let mut error = classify_handshake_error(target, name, failure, &seen);
                if let (Error::Certificate { error, .. }, Some(code)) = (&mut error, reported) {
                    let found = peer.and_then(|addr| {
                        diagnose::diagnose(&connector.diagnosis, addr, name, deadline, code)
                    });
                    if let Some(found) = found {
                        **error = found;
                    }
                }
                return Err(error);
            }
            Err(HandshakeError::WouldBlock(mid)) => mid,
        };
        if exchange.remaining().is_none() {
            return Err(timeout());
        }
        let out = mid.get_mut().take_outbound();
        seen.ours.feed(&out);
        exchange.send(&out).map_err(fail)?;
        if mid.get_ref().is_eof() {
            return Err(Error::Handshake {
                target: target.to_string(),
                reason: "the server closed the connection during the handshake".into(),
                alert: seen.theirs.alert,
            });
        }
        let data = exchange.receive().map_err(fail)?;
        if data.is_empty() {
            mid.get_mut().feed_eof();
        } else {
            seen.theirs.feed(data);
            mid.get_mut().feed(data);
        }
        result = mid.handshake();
    }
}

/// The handshake messages each side sent in the clear.
#[derive(Default)]
struct Seen {
    ours: Clear,
    theirs: Clear,
}

impl Seen {
    /// The server asked for a client certificate (TLS 1.2: its CertificateRequest is in the
    /// clear) and ours was empty.
    fn client_certificate_missing(&self) -> bool {
        const CERTIFICATE: u8 = 11;
        const CERTIFICATE_REQUEST: u8 = 13;
        self.theirs
            .messages
            .iter()
            .any(|&(t, _)| t == CERTIFICATE_REQUEST)
            && self.ours.messages.contains(&(CERTIFICATE, 0))
    }
}

/// The error a failed handshake ends with: what OpenSSL's text says, and what the records in
/// the clear showed (an alert the server sent, a certificate request left unanswered).
fn classify_handshake_error(target: &str, name: &str, failure: Failure, seen: &Seen) -> Error {
    let target = target.to_string();
    let alert = seen.theirs.alert.or(match failure.cause {
        Cause::Alert(alert) => Some(alert),
        _ => None,
    });
    match (failure.cause, alert) {
        (Cause::Verify { code, detail }, _) => Error::Certificate {
            target,
            error: Box::new(CertificateError::from_verify(code, &detail, name)),
        },
        (_, Some(alert))
            if alert == Alert::CertificateRequired || seen.client_certificate_missing() =>
        {
            Error::ClientCertificateRequired { target, alert }
        }
        (_, Some(alert)) => Error::Handshake {
            target,
            reason: failure.reason,
            alert: Some(alert),
        },
        (Cause::NotTls, None) => Error::NotTls { target },
        (Cause::Eof, None) => Error::Handshake {
            target,
            reason: "the server closed the connection during the handshake".into(),
            alert: None,
        },
        (_, None) => Error::Handshake {
            target,
            reason: failure.reason,
            alert: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(text: &str, seen: &Seen) -> Error {
        classify_handshake_error("h:1", "h", openssl_text::read(text), seen)
    }

    #[test]
    fn handshake_errors_are_classified() {
        let seen = Seen::default();
        let e = classify(
            "error:0A000086:SSL routines:tls_post_process_server_certificate:certificate verify failed:ssl/statem/statem_clnt.c:1890: (Hostname mismatch)",
            &seen,
        );
        assert!(
            matches!(e.certificate_error(), Some(CertificateError::NameMismatch { expected, .. }) if expected == "h"),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "certificate of h:1 does not match the name h (hostname mismatch)"
        );
        let e = classify(
            "error:0A00010B:SSL routines:ssl3_get_record:wrong version number:ssl/record/ssl3_record.c:354:",
            &seen,
        );
        assert!(matches!(e, Error::NotTls { .. }), "{e:?}");
    }

    /// An alert in the clear is read from its record, whatever OpenSSL's text says; a
    /// warning is not the end of anything.
    #[test]
    fn an_alert_in_the_clear_is_read_from_its_record() {
        let mut seen = Seen::default();
        seen.theirs.feed(&[21, 3, 3, 0, 2, 1, 112]);
        assert_eq!(seen.theirs.alert, None);
        seen.theirs.feed(&[21, 3, 3, 0, 2, 2]);
        seen.theirs.feed(&[70]);
        let e = classify("some words of a newer OpenSSL", &seen);
        assert_eq!(e.alert(), Some(Alert::ProtocolVersion));
        assert_eq!(e.kind(), crate::ErrorKind::AlertReceived);
    }

    /// A TLS 1.2 server that asks for a client certificate, gets an empty one, and fails the
    /// handshake: records split at odd places, as TCP may deliver them.
    #[test]
    fn a_missing_client_certificate_is_recognized() {
        let record = |kind: u8, body: &[u8]| {
            let mut r = vec![kind, 3, 3];
            r.extend_from_slice(&(body.len() as u16).to_be_bytes());
            r.extend_from_slice(body);
            r
        };
        let message = |kind: u8, body: &[u8]| {
            let mut m = vec![kind];
            m.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
            m.extend_from_slice(body);
            m
        };
        let mut server_flight = message(2, &[7; 70]); // ServerHello
        server_flight.extend(message(11, &[0, 0, 3, 0, 0, 0])); // Certificate
        server_flight.extend(message(13, &[1, 1, 0, 0])); // CertificateRequest
        server_flight.extend(message(14, &[])); // ServerHelloDone
        let (first, second) = server_flight.split_at(50);
        let mut theirs = record(22, first);
        theirs.extend(record(22, second));
        let mut ours = record(22, &message(11, &[0, 0, 0])); // an empty Certificate
        ours.extend(record(20, &[1])); // ChangeCipherSpec: the rest is encrypted
        ours.extend(record(22, &message(11, &[0, 0, 9])));
        let mut seen = Seen::default();
        for chunk in theirs.chunks(7) {
            seen.theirs.feed(chunk);
        }
        seen.ours.feed(&ours);
        assert!(seen.client_certificate_missing());
        let e = classify(
            "error:0A000410:SSL routines:ssl3_read_bytes:sslv3 alert handshake failure:ssl/record/rec_layer_s3.c:1605:SSL alert number 40",
            &seen,
        );
        assert!(
            matches!(
                e,
                Error::ClientCertificateRequired {
                    alert: Alert::HandshakeFailure,
                    ..
                }
            ),
            "{e:?}"
        );
    }
}
