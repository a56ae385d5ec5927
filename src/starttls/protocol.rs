//! What STARTTLS talks about: the protocols ([`Protocol`]), what can go wrong in their
//! clear-text exchange ([`Problem`]), and how an error says it.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A protocol whose clear-text start can be upgraded to TLS on the same connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Protocol {
    /// SMTP (RFC 3207): `EHLO`, the `STARTTLS` keyword, `STARTTLS`, `220`.
    Smtp,
    /// LMTP (RFC 2033): as SMTP, with `LHLO`.
    Lmtp,
    /// IMAP (RFC 3501): `CAPABILITY` lists `STARTTLS`, then a tagged `STARTTLS`, `OK`.
    Imap,
    /// POP3 (RFC 2595): `CAPA` lists `STLS`, then `STLS`, `+OK`.
    Pop3,
    /// FTP (RFC 4217): `AUTH TLS`, `234`.
    Ftp,
    /// XMPP (RFC 6120): a stream header to the domain, `<starttls/>` in the stream features,
    /// then `<starttls/>`, `<proceed/>`.
    Xmpp,
    /// PostgreSQL: the 8-byte `SSLRequest`, answered `S`.
    Postgres,
}

impl Protocol {
    /// Every protocol, in the order of their names in messages.
    pub const ALL: [Protocol; 7] = [
        Protocol::Smtp,
        Protocol::Lmtp,
        Protocol::Imap,
        Protocol::Pop3,
        Protocol::Ftp,
        Protocol::Xmpp,
        Protocol::Postgres,
    ];

    /// The name as [`FromStr`] takes it: `smtp`, `lmtp`, `imap`, `pop3`, `ftp`, `xmpp`,
    /// `postgres`.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Smtp => "smtp",
            Protocol::Lmtp => "lmtp",
            Protocol::Imap => "imap",
            Protocol::Pop3 => "pop3",
            Protocol::Ftp => "ftp",
            Protocol::Xmpp => "xmpp",
            Protocol::Postgres => "postgres",
        }
    }

    /// The port the protocol's clear-text service listens on, where STARTTLS is offered:
    /// 587 (SMTP submission), 24, 143, 110, 21, 5222, 5432.
    pub fn default_port(self) -> u16 {
        match self {
            Protocol::Smtp => 587,
            Protocol::Lmtp => 24,
            Protocol::Imap => 143,
            Protocol::Pop3 => 110,
            Protocol::Ftp => 21,
            Protocol::Xmpp => 5222,
            Protocol::Postgres => 5432,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A protocol name that [`Protocol`] does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownProtocol(pub String);

impl fmt::Display for UnknownProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Protocol::ALL.iter().map(|p| p.name()).collect();
        write!(
            f,
            "unknown STARTTLS protocol {:?}: one of {}",
            self.0,
            names.join(", ")
        )
    }
}

impl std::error::Error for UnknownProtocol {}

impl FromStr for Protocol {
    type Err = UnknownProtocol;

    /// ```
    /// use gracetls::starttls::Protocol;
    /// assert_eq!("imap".parse::<Protocol>(), Ok(Protocol::Imap));
    /// assert_eq!("SMTP".parse::<Protocol>(), Ok(Protocol::Smtp));
    /// assert!("gopher".parse::<Protocol>().is_err());
    /// ```
    fn from_str(text: &str) -> Result<Protocol, UnknownProtocol> {
        Protocol::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(text))
            .ok_or_else(|| UnknownProtocol(text.to_string()))
    }
}

/// What went wrong in the clear-text exchange before TLS, in [`Error::Starttls`](crate::Error::Starttls).
#[derive(Debug)]
#[non_exhaustive]
pub enum Problem {
    /// The server does not offer the upgrade: `said` is what it offers instead, e.g. `its
    /// EHLO reply lists PIPELINING, SIZE 10240000, 8BITMIME`.
    NotOffered {
        /// What the server said, as a phrase.
        said: String,
    },
    /// The server offers the upgrade but refused it now (SMTP `454`, IMAP `NO`, POP3
    /// `-ERR`, XMPP `<failure/>`).
    Refused {
        /// The server's answer.
        reply: String,
    },
    /// The server answered something this step does not expect.
    Unexpected {
        /// The server's answer.
        reply: String,
        /// What the step expects, e.g. `250`.
        expected: &'static str,
    },
    /// The server closed the connection.
    Closed,
    /// The server's answer passed the bound on a line or on the whole exchange.
    TooLong {
        /// The bound, in bytes.
        limit: usize,
    },
    /// The server did not answer within the timeout.
    Timeout {
        /// The timeout that ran out.
        timeout: Duration,
        /// The last line the server sent, if any: of an answer it left unfinished, or else
        /// its last whole answer.
        last: Option<String>,
    },
    /// The exchange failed, and the server's greeting is another protocol's: `--starttls
    /// ftp` against an SMTP server, which greets with `220` too.
    OtherProtocol {
        /// The protocol the greeting belongs to.
        protocol: Protocol,
        /// The greeting.
        greeting: String,
    },
    /// The socket failed.
    Io(std::io::Error),
}

impl Protocol {
    /// The name messages use: `SMTP`, `PostgreSQL`.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Protocol::Smtp => "SMTP",
            Protocol::Lmtp => "LMTP",
            Protocol::Imap => "IMAP",
            Protocol::Pop3 => "POP3",
            Protocol::Ftp => "FTP",
            Protocol::Xmpp => "XMPP",
            Protocol::Postgres => "PostgreSQL",
        }
    }

    /// The protocol a server's first line says it speaks, where the line is plain about it:
    /// IMAP's `* OK`, POP3's `+OK`, XMPP's XML, and a `220` that names (E)SMTP, LMTP or FTP
    /// (`220 mail.example ESMTP Postfix`, `220 (vsFTPd 3.0.5)`). PostgreSQL does not greet.
    pub(crate) fn of_greeting(line: &str) -> Option<Protocol> {
        let upper = line.trim_start().to_ascii_uppercase();
        if upper.starts_with("* OK") || upper.starts_with("* PREAUTH") {
            return Some(Protocol::Imap);
        }
        if upper.starts_with("+OK") {
            return Some(Protocol::Pop3);
        }
        if upper.starts_with("<?XML") || upper.starts_with("<STREAM:") {
            return Some(Protocol::Xmpp);
        }
        if !(upper.starts_with("220") || upper.starts_with("120")) {
            return None;
        }
        let words: Vec<&str> = upper
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        let has = |word: &str| words.contains(&word);
        if has("LMTP") {
            Some(Protocol::Lmtp)
        } else if has("SMTP") || has("ESMTP") {
            Some(Protocol::Smtp)
        } else if words.iter().any(|w| w.contains("FTP")) {
            Some(Protocol::Ftp)
        } else {
            None
        }
    }

    /// What the upgrade is called in the protocol.
    pub(crate) fn upgrade_name(self) -> &'static str {
        match self {
            Protocol::Pop3 => "STLS",
            Protocol::Ftp => "AUTH TLS",
            Protocol::Postgres => "TLS",
            _ => "STARTTLS",
        }
    }
}

/// The message of [`Error::Starttls`](crate::Error::Starttls).
pub(crate) fn describe(
    f: &mut fmt::Formatter<'_>,
    target: &str,
    protocol: Protocol,
    step: &str,
    problem: &Problem,
) -> fmt::Result {
    let label = protocol.label();
    let during = if step == "greeting" {
        format!("the {label} greeting")
    } else {
        format!("{label} {step}")
    };
    match problem {
        Problem::NotOffered { said } => write!(
            f,
            "{target} does not offer {}: {}",
            protocol.upgrade_name(),
            one_line(said)
        ),
        Problem::Refused { reply } => {
            write!(f, "{target} refused {label} {step}: it answered {reply:?}")
        }
        Problem::Unexpected { reply, expected } if step == "greeting" => write!(
            f,
            "unexpected {label} greeting from {target}: {reply:?} (expected {expected})"
        ),
        Problem::Unexpected { reply, expected } => write!(
            f,
            "unexpected answer from {target} to {label} {step}: {reply:?} (expected {expected})"
        ),
        Problem::Closed => write!(
            f,
            "{target} closed the connection during {during}, before TLS"
        ),
        Problem::TooLong { limit } => write!(
            f,
            "{target} sent an answer longer than {limit} bytes during {during}, before TLS"
        ),
        Problem::Timeout { timeout, last } => {
            let within = crate::format::format_duration(*timeout);
            if step == "greeting" {
                write!(
                    f,
                    "STARTTLS timeout: {target} did not send {during} within {within}"
                )?;
            } else {
                write!(
                    f,
                    "STARTTLS timeout: {target} did not answer {during} within {within}"
                )?;
            }
            match last {
                Some(line) => write!(f, "; the last line it sent was {line:?}"),
                None if step == "greeting" => Ok(()),
                None => write!(f, "; it sent nothing"),
            }
        }
        Problem::OtherProtocol {
            protocol: other,
            greeting,
        } => write!(
            f,
            "{target} speaks {}, not {label}: it greeted with {greeting:?}",
            other.label()
        ),
        Problem::Io(_) => write!(f, "the connection failed during {during} with {target}"),
    }
}

/// `text` with its control characters escaped (`\r`, `\n`, `\u{1}`): a server's bytes never
/// break an error message into lines (found by the `starttls` fuzz target).
pub(crate) fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_debug().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}
