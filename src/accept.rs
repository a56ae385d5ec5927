//! The server side of a [`Stream`]: [`Stream::accept`] runs the TLS handshake as a server over
//! the same in-memory transport the client uses, bounded by the handshake timeout, and hands
//! back a `Stream` with the client's whole contract (reads, writes, the close and its
//! report). Only the handshake differs; everything after it is the client's code.

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use log::debug;

use crate::error::Operation;
use crate::format::format_duration;
use crate::handshake::exchange::{Exchange, Stop};
use crate::openssl_text::{self, Cause};
use crate::record::HelloScan;
use crate::server_config::ServerConfig;
use crate::server_config::acceptor::{Acceptor, Step};
use crate::tls::TlsStream;
use crate::transport::MemoryTransport;
use crate::{Error, Stream};

impl Stream {
    /// Runs the TLS handshake as the server on a connection a `TcpListener` accepted, within
    /// [`ServerConfig::with_handshake_timeout`], and gives the connection as a `Stream` with the
    /// same contract as a client's: `Read` and `Write` on `&Stream`, `read` returns `Ok(0)`
    /// after the client's close_notify and fails with `UnexpectedEof` when the client's TCP
    /// stream ended without it, [`close`](Stream::close) from any thread within the close
    /// timeout with a [`CloseReport`](crate::CloseReport), `Drop` closes, `try_clone` and
    /// the timeouts. [`target`](Stream::target) names the client (`client ADDRESS`), and
    /// [`Session::peer_certificate`](crate::Session::peer_certificate) is the client's
    /// certificate when [`ServerConfig::with_client_ca_file`] asked for one.
    ///
    /// A client that does not speak TLS, fails the handshake or stalls in it is
    /// [`Error::Handshake`], naming the client and what happened; the socket is then shut.
    /// The read and write timeouts the socket had are replaced by the configuration's.
    ///
    /// ```no_run
    /// use std::io::{BufRead, BufReader, Write};
    /// use std::net::TcpListener;
    /// use gracetls::{ServerConfig, Stream};
    ///
    /// let config = ServerConfig::new().with_identity("cert.pem", "key.pem");
    /// let listener = TcpListener::bind("127.0.0.1:4433")?;
    /// let (socket, _) = listener.accept()?;
    /// let stream = Stream::accept(&config, socket)?;
    /// let mut line = String::new();
    /// BufReader::new(&stream).read_line(&mut line)?; // a line from the client
    /// (&stream).write_all(line.as_bytes())?; // echoed back
    /// let report = stream.close(); // close_notify, bounded by the close timeout
    /// println!("{}", report.outcome().name());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn accept(config: &ServerConfig, socket: TcpStream) -> Result<Stream, Error> {
        let started = Instant::now();
        let target = socket
            .peer_addr()
            .map_or_else(|_| "client".to_string(), |addr| format!("client {addr}"));
        let acceptor = config.acceptor()?;
        let mut socket = socket;
        let timeout = config.handshake_timeout();
        // Small writes (a line, a close_notify) must not wait for delayed ACKs.
        let _ = socket.set_nodelay(true);
        let result = server_handshake(&acceptor, &mut socket, started + timeout, &target, timeout);
        let tls = match result {
            Ok(tls) => tls,
            Err(e) => {
                let _ = socket.shutdown(Shutdown::Both);
                return Err(e);
            }
        };
        let io_error = |source| Error::Io {
            target: target.clone(),
            op: Operation::SetUp,
            source,
        };
        socket.set_read_timeout(None).map_err(io_error)?;
        socket.set_write_timeout(None).map_err(io_error)?;
        let settings = config.stream_settings();
        Ok(Stream::new(
            &settings,
            crate::dial::dialed(target, socket, tls, started),
        ))
    }
}

/// The handshake as the server, its messages carried between the socket and the in-memory
/// transport by this thread, each socket call bounded by what is left of `deadline`.
fn server_handshake(
    acceptor: &Acceptor,
    socket: &mut TcpStream,
    deadline: Instant,
    target: &str,
    timeout: Duration,
) -> Result<TlsStream<MemoryTransport>, Error> {
    let io_error = |op, source| Error::Io {
        target: target.to_string(),
        op,
        source,
    };
    let timed_out = || Error::Handshake {
        target: target.to_string(),
        reason: format!(
            "the client did not complete the handshake within {}",
            format_duration(timeout)
        ),
        alert: None,
    };
    let fail = |stop| match stop {
        Stop::TimedOut => timed_out(),
        Stop::Io(op, source) => io_error(op, source),
    };
    let mut exchange = Exchange::new(socket, deadline);
    // What was negotiated is in our own ServerHello.
    let mut hello = HelloScan::default();
    let (transport, spill) = MemoryTransport::spilling();
    let mut result = acceptor.start(transport);
    loop {
        let mut mid = match result {
            Step::Done(mut tls) => {
                let out = tls.get_mut().take_outbound();
                hello.feed(&out);
                tls.get_mut().end_spill();
                tls.get_mut().set_hello(hello);
                exchange.send(&out).map_err(fail)?;
                return Ok(tls);
            }
            Step::Failed(text) => {
                // Tell the client why (the alert OpenSSL just wrote), best effort and
                // briefly: the error is what matters.
                let alert = spill.take();
                let socket = exchange.socket();
                if !alert.is_empty()
                    && socket
                        .set_write_timeout(Some(Duration::from_millis(100)))
                        .is_ok()
                {
                    let sent = socket.write_all(&alert);
                    debug!("handshake with {target} failed; alert sent: {sent:?}");
                }
                return Err(classify(target, &text));
            }
            Step::Again(mid) => mid,
        };
        if exchange.remaining().is_none() {
            return Err(timed_out());
        }
        let out = mid.transport().take_outbound();
        hello.feed(&out);
        exchange.send(&out).map_err(fail)?;
        if mid.transport().is_eof() {
            return Err(Error::Handshake {
                target: target.to_string(),
                reason: "the client closed the connection during the handshake".into(),
                alert: None,
            });
        }
        let data = exchange.receive().map_err(fail)?;
        if data.is_empty() {
            mid.transport().feed_eof();
        } else {
            mid.transport().feed(data);
        }
        result = mid.resume();
    }
}

/// A failed handshake in words about the client, from what OpenSSL's text says
/// ([`openssl_text`](crate::openssl_text) reads it).
fn classify(target: &str, text: &str) -> Error {
    let failure = openssl_text::read(text);
    let reason = failure.reason;
    let (reason, alert) = match failure.cause {
        Cause::NoCertificate => (
            format!("the client sent no certificate, and one is required ({reason})"),
            None,
        ),
        Cause::Verify { detail, .. } => (
            format!("the client's certificate was refused ({detail})"),
            None,
        ),
        Cause::NoCommonVersion => (
            format!("no TLS version in common with the client ({reason})"),
            None,
        ),
        Cause::NotTls => (format!("the client does not speak TLS ({reason})"), None),
        Cause::Eof => (
            "the client closed the connection during the handshake".to_string(),
            None,
        ),
        Cause::Alert(alert) => (reason, Some(alert)),
        Cause::Other => (reason, None),
    };
    Error::Handshake {
        target: target.to_string(),
        reason,
        alert,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_named_as_not_tls() {
        let e = classify(
            "client 127.0.0.1:9",
            "error:0A00009B:SSL routines:ssl3_get_record:http request:ssl/record/ssl3_record.c:340:",
        );
        assert_eq!(
            e.to_string(),
            Error::Handshake {
                target: "client 127.0.0.1:9".into(),
                reason: "the client does not speak TLS (http request)".into(),
                alert: None,
            }
            .to_string()
        );
    }
}
