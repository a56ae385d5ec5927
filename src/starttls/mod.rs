//! STARTTLS: the clear-text exchange that asks a server to start TLS on a connection that
//! began without it (SMTP, LMTP, IMAP, POP3, FTP, XMPP, PostgreSQL), up to the point where
//! the next bytes on the socket are the TLS handshake.
//!
//! The exchange reads the socket only up to the end of each of the server's answers (it
//! peeks first, then takes exactly what it has looked at), so nothing past the upgrade is
//! taken from the socket: the TLS handshake that follows finds the socket as the server
//! left it. Every answer is bounded in length and the whole exchange in time, so no server
//! can make it hang or grow without bound.
//!
//! [`Stream::connect_starttls`](crate::Stream::connect_starttls) does it all within the
//! connect timeout; [`Starttls::negotiate`] is the exchange alone, on a socket the caller
//! has, to be followed by [`Stream::from_tcp`](crate::Stream::from_tcp).

mod dialogue;
mod ftp;
mod imap;
mod pop3;
mod postgres;
mod protocol;
mod smtp;
mod xmpp;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::Error;

use dialogue::Dialogue;
// For `Error`'s message.
pub(crate) use protocol::describe;
pub use protocol::{Problem, Protocol, UnknownProtocol};

/// How a connection is upgraded to TLS: the protocol, and the names it sends in clear.
///
/// ```
/// use gracetls::starttls::{Protocol, Starttls};
///
/// let starttls = Starttls::new(Protocol::Smtp).with_client_name("client.example.org");
/// assert_eq!(starttls.protocol(), Protocol::Smtp);
/// ```
#[derive(Debug, Clone)]
pub struct Starttls {
    protocol: Protocol,
    client_name: String,
    domain: Option<String>,
}

/// What was said in clear before the upgrade, one line per message: `C: ` for ours, `S: `
/// for the server's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transcript {
    lines: Vec<String>,
}

impl Transcript {
    /// The lines, in order.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }
}

impl Starttls {
    /// An upgrade for `protocol`, with the defaults below.
    pub fn new(protocol: Protocol) -> Starttls {
        Starttls {
            protocol,
            client_name: "localhost".into(),
            domain: None,
        }
    }

    /// The protocol.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The name SMTP's `EHLO` and LMTP's `LHLO` give for this client. Default: `localhost`.
    pub fn with_client_name(mut self, name: impl Into<String>) -> Starttls {
        self.client_name = name.into();
        self
    }

    /// The domain XMPP's stream header is addressed to (its `to`). Default: the server
    /// name given to [`negotiate`](Self::negotiate) (for
    /// [`Stream::connect_starttls`](crate::Stream::connect_starttls), the
    /// [`Config::with_servername`](crate::Config::with_servername) or the target's host).
    pub fn with_domain(mut self, domain: impl Into<String>) -> Starttls {
        self.domain = Some(domain.into());
        self
    }

    /// Runs the clear-text exchange on `socket` up to the upgrade, within `timeout`. When it
    /// returns `Ok`, the server waits for our TLS ClientHello: pass the socket to
    /// [`Stream::from_tcp`](crate::Stream::from_tcp). `server_name` names the server in
    /// messages (with the socket's peer address) and is XMPP's domain unless
    /// [`with_domain`](Self::with_domain) says otherwise. The socket's read and write timeouts are as
    /// the caller set them when this returns.
    ///
    /// Errors: [`Error::Starttls`] when the server does not offer the upgrade, refuses it,
    /// answers something else, closes, sends an answer too long, or does not answer within
    /// `timeout`.
    ///
    /// ```no_run
    /// use std::net::TcpStream;
    /// use std::time::Duration;
    /// use gracetls::starttls::{Protocol, Starttls};
    /// use gracetls::{Config, Stream};
    ///
    /// let socket = TcpStream::connect("mail.example.com:587")?;
    /// Starttls::new(Protocol::Smtp).negotiate(&socket, "mail.example.com", Duration::from_secs(10))?;
    /// let stream = Stream::from_tcp(&Config::new(), socket, "mail.example.com")?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn negotiate(
        &self,
        socket: &TcpStream,
        server_name: &str,
        timeout: Duration,
    ) -> Result<Transcript, Error> {
        let target = socket.peer_addr().map_or_else(
            |_| server_name.to_string(),
            |addr| format!("{server_name} ({addr})"),
        );
        self.negotiate_until(
            socket,
            server_name,
            &target,
            Instant::now() + timeout,
            timeout,
        )
    }

    /// [`negotiate`](Self::negotiate) before `deadline`; `timeout` is what messages call it.
    pub(crate) fn negotiate_until(
        &self,
        socket: &TcpStream,
        server_name: &str,
        target: &str,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Transcript, Error> {
        let saved = (socket.read_timeout(), socket.write_timeout());
        let mut d = Dialogue::new(socket, target, self.protocol, deadline, timeout);
        let result = match self.protocol {
            Protocol::Smtp => smtp::upgrade(&mut d, "EHLO", &self.client_name),
            Protocol::Lmtp => smtp::upgrade(&mut d, "LHLO", &self.client_name),
            Protocol::Imap => imap::upgrade(&mut d),
            Protocol::Pop3 => pop3::upgrade(&mut d),
            Protocol::Ftp => ftp::upgrade(&mut d),
            Protocol::Xmpp => xmpp::upgrade(&mut d, self.domain.as_deref().unwrap_or(server_name)),
            Protocol::Postgres => postgres::upgrade(&mut d),
        };
        if let (Ok(read), Ok(write)) = saved {
            let _ = socket.set_read_timeout(read);
            let _ = socket.set_write_timeout(write);
        }
        match result {
            Ok(()) => Ok(d.into_transcript()),
            Err(e) => Err(self.other_protocol(&d).unwrap_or(e)),
        }
    }

    /// When the exchange failed: the error to give instead if the server greeted in another
    /// protocol, which explains the failure better than the step that failed.
    fn other_protocol(&self, d: &Dialogue<'_>) -> Option<Error> {
        let greeting = d.first_server_line()?;
        let protocol = Protocol::of_greeting(&greeting).filter(|p| *p != self.protocol)?;
        Some(d.fail(Problem::OtherProtocol { protocol, greeting }))
    }
}

#[cfg(test)]
mod tests;
