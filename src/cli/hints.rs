//! What to do about an error, in the command line's words: each hint names the option that
//! helps. The library's messages say what went wrong; only the command knows its flags.

use std::borrow::Cow;
use std::io;

use gracetls::error::{
    Alert, CertificateError, ChainEnd, Operation, ProxyRefusal, SetupInput, SetupProblem,
};
use gracetls::starttls::{Problem, Protocol};
use gracetls::{Error, ErrorKind};

/// One short sentence on what to do about `error`, for a person at the terminal.
pub(crate) fn hint(error: &Error) -> Option<Cow<'static, str>> {
    if let Some(hint) = naming_hint(error) {
        return Some(Cow::Owned(hint));
    }
    fixed_hint(error).map(Cow::Borrowed)
}

/// The hints that name something the error holds: a CA, the protocol a server speaks.
fn naming_hint(error: &Error) -> Option<String> {
    match error {
        Error::Certificate { error, .. } => match &**error {
            CertificateError::UnknownIssuer(Some(ChainEnd { issuer, .. })) => Some(format!(
                "if \"{issuer}\" is a CA you trust (a private CA), pass its certificate with --ca-file PEM; if it is an intermediate CA, the server must send it too"
            )),
            CertificateError::IncompleteChain { issuer, .. } => Some(format!(
                "\"{issuer}\" is most likely an intermediate CA, which the server must send with its own certificate (tell its administrator); if it is a CA you trust, fetch it from there and pass it with --ca-file PEM"
            )),
            CertificateError::CaFileHoldsLeaf { issuer, .. } => Some(format!(
                "pass the certificate of the CA \"{issuer}\" with --ca-file PEM instead"
            )),
            _ => None,
        },
        Error::Starttls {
            problem: Problem::OtherProtocol { protocol, .. },
            ..
        } => Some(format!(
            "to talk to that server, use --starttls {}; otherwise check the port",
            protocol.name()
        )),
        _ => None,
    }
}

fn fixed_hint(error: &Error) -> Option<&'static str> {
    match error {
        Error::InvalidTarget { .. } => Some("give HOST[:PORT], e.g. example.com:443 or [::1]:8443"),
        Error::Resolve { .. } => Some("check the host name"),
        Error::Connect { source, .. } if source.kind() == io::ErrorKind::ConnectionRefused => {
            Some("is the server running and listening on that port?")
        }
        Error::Connect { .. } => Some("check the address and the network"),
        Error::ConnectTimeout { .. } => Some(
            "the server did not answer in time; check that it speaks TLS, or raise --connect-timeout",
        ),
        Error::Certificate { error, .. } => Some(certificate_hint(error)),
        _ if error.kind() == ErrorKind::ClientCertificateRequired => {
            Some("pass a client certificate and its key with --cert PEM --key PEM")
        }
        Error::KeyMismatch { .. } => {
            Some("pass the key that was made with that certificate (--cert and --key)")
        }
        Error::Handshake {
            alert: Some(Alert::NoApplicationProtocol),
            ..
        } => Some("the server speaks none of the --alpn protocols; check --alpn"),
        Error::Handshake {
            alert: Some(Alert::ProtocolVersion),
            ..
        } => Some("the server speaks no TLS version in --tls-min..--tls-max; check them"),
        Error::Handshake { .. } => {
            Some("check --tls-min/--tls-max, --alpn and client certificate options")
        }
        Error::NotTls { .. } => Some(
            "check the port: the server there does not speak TLS (if it starts in clear, use --starttls PROTO)",
        ),
        Error::Starttls {
            protocol: Protocol::Xmpp,
            problem: Problem::Unexpected { .. },
            ..
        } => Some(
            "the stream was addressed to --servername, or else to HOST: give the server's XMPP domain with --servername",
        ),
        Error::Starttls {
            target, problem, ..
        } => Some(starttls_hint(target, problem)),
        // The reason already gives the command that converts the file.
        Error::Setup {
            problem: SetupProblem::Convert,
            ..
        } => None,
        Error::Setup { input, problem, .. } => Some(setup_hint(*input, *problem)),
        Error::Io { .. } => {
            Some("the server or the network dropped the connection; see the server's log")
        }
        Error::Tls { alert: Some(_), .. } => {
            Some("the alert is the server's reason for ending the connection; its log says more")
        }
        Error::Tls { .. } => Some(
            "the server sent bytes that are not valid TLS for this session; see the server's log",
        ),
        Error::InvalidProxy { .. } => Some(
            "give --proxy http://HOST:PORT or socks5://HOST:PORT (USER:PASSWORD@ before HOST if needed)",
        ),
        Error::ProxyRefused { refusal, kind, .. } => proxy_hint(*refusal, *kind),
        Error::Proxy {
            op: Operation::Connect,
            ..
        } => Some("is the proxy running, and are --proxy's host and port right?"),
        Error::Proxy { source, .. } if source.kind() == io::ErrorKind::TimedOut => Some(
            "check that --proxy names the proxy's protocol (http:// or socks5://) and port, or raise --connect-timeout",
        ),
        Error::Proxy { .. } => Some(
            "check that --proxy names the proxy's protocol (http:// or socks5://) and port; see the proxy's log",
        ),
        Error::Closed => None,
        Error::Thread { .. } => Some("the system is out of threads or memory; see ulimit -u"),
        _ => None,
    }
}

fn proxy_hint(refusal: ProxyRefusal, kind: gracetls::ProxyKind) -> Option<&'static str> {
    match (refusal, kind) {
        // The reason already says how to give credentials.
        (ProxyRefusal::CredentialsRequired, _) => None,
        (ProxyRefusal::CredentialsRefused, _) => {
            Some("check the user name and password in --proxy (%-encode '@', ':' and '%' in them)")
        }
        (ProxyRefusal::TargetUnreachable, _) => Some(
            "the proxy could not reach the server: is it running, and is the target right as the proxy sees it?",
        ),
        (_, gracetls::ProxyKind::Http) => Some(
            "see the proxy's log and its rules (HTTP proxies often allow CONNECT to port 443 only)",
        ),
        _ => Some("see the proxy's log and its rules"),
    }
}

/// What to do about a file option that cannot be used.
fn setup_hint(input: SetupInput, problem: SetupProblem) -> &'static str {
    let unreadable = problem == SetupProblem::Unreadable;
    match input {
        SetupInput::CaFile if unreadable => "check the path given to --ca-file",
        SetupInput::CaFile => {
            "pass a PEM file that holds the certificate of the CA that issued the server's, with --ca-file"
        }
        SetupInput::ClientCertificate | SetupInput::ClientKey | SetupInput::ClientIdentity
            if unreadable =>
        {
            "check the paths given to --cert and --key"
        }
        SetupInput::ClientCertificate | SetupInput::ClientKey | SetupInput::ClientIdentity => {
            "pass the client certificate and its private key as PEM files, with --cert and --key"
        }
        _ => "check the options that name files: --ca-file, --cert and --key",
    }
}

fn certificate_hint(error: &CertificateError) -> &'static str {
    match error {
        CertificateError::NotYetValid(_) => {
            "check this machine's clock, or wait until the certificate's start date"
        }
        CertificateError::Expired(_) => {
            "the server's certificate must be renewed; if the dates look wrong, check this machine's clock"
        }
        CertificateError::NameMismatch { .. } => {
            "connect by a name the certificate holds, or set --servername to one of them"
        }
        CertificateError::UntrustedRoot { root: Some(_) }
        | CertificateError::SelfSigned { subject: Some(_) } => {
            "if you trust it, pass it with --ca-file PEM; or --insecure to skip verification (unsafe)"
        }
        CertificateError::ChainTooLong => {
            "the server must send a shorter chain; --ca-file does not help, only --insecure would accept it (unsafe)"
        }
        CertificateError::UnknownIssuer(Some(_))
        | CertificateError::IncompleteChain { .. }
        | CertificateError::CaFileHoldsLeaf { .. } => "see the certificate's details above",
        _ => "pass the issuing CA with --ca-file PEM, or --insecure to skip verification (unsafe)",
    }
}

/// Ports where TLS starts at once, with no clear-text exchange: SMTPS (submissions), IMAPS,
/// POP3S, FTPS, XMPP over TLS.
const IMPLICIT_TLS_PORTS: [&str; 5] = ["465", "993", "995", "990", "5223"];

fn starttls_hint(target: &str, problem: &Problem) -> &'static str {
    let implicit = target
        .rsplit_once(':')
        .is_some_and(|(_, port)| IMPLICIT_TLS_PORTS.contains(&port));
    match problem {
        Problem::NotOffered { .. } | Problem::Timeout { .. } | Problem::Unexpected { .. }
            if implicit =>
        {
            "that port speaks TLS from the start (465, 993, 995, 990, 5223): drop --starttls"
        }
        Problem::NotOffered { .. } => {
            "check the port (465, 993 and 995 are TLS from the start: drop --starttls there); otherwise the server has no TLS set up"
        }
        Problem::Refused { .. } => {
            "the server offers TLS but cannot start it now; see its log, or try again later"
        }
        Problem::Unexpected { .. } | Problem::Closed => {
            "check that the server on that port speaks the protocol given to --starttls"
        }
        Problem::Timeout { .. } => {
            "check the port and --starttls PROTO (a TLS port waits for us to speak first), or raise --connect-timeout"
        }
        _ => "the server or the network dropped the connection; see the server's log",
    }
}

/// Prints `error` as one line on stderr, with its hint.
pub(crate) fn print_error(e: &Error) {
    let e_text = gracetls::unversioned::with_causes(e);
    match hint(e) {
        Some(hint) => eprintln!("gracetls: error: {e_text}; {hint}"),
        None => eprintln!("gracetls: error: {e_text}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn refused_connection_asks_whether_the_server_runs() {
        let e = Error::Connect {
            target: "127.0.0.1:9".into(),
            source: io::ErrorKind::ConnectionRefused.into(),
        };
        assert!(hint(&e).is_some_and(|h| h.contains("listening")));
    }

    #[test]
    fn expired_certificate_does_not_suggest_a_ca_file() {
        let e = Error::Certificate {
            target: "h:1".into(),
            error: Box::new(CertificateError::Expired(None)),
        };
        assert!(!hint(&e).unwrap_or_default().contains("--ca-file"));
        assert!(hint(&e).unwrap_or_default().contains("renewed"));
    }

    #[test]
    fn an_alert_is_not_called_invalid_tls() {
        for alert in [Alert::InternalError, Alert::Unknown(247)] {
            let e = Error::Tls {
                target: "h:1".into(),
                reason: "any words".into(),
                alert: Some(alert),
            };
            let h = hint(&e).unwrap_or_default();
            assert!(h.contains("alert") && !h.contains("not valid TLS"), "{h}");
        }
    }

    #[test]
    fn a_chain_too_long_does_not_suggest_a_ca_file() {
        let e = Error::Certificate {
            target: "h:1".into(),
            error: Box::new(CertificateError::ChainTooLong),
        };
        assert!(hint(&e).unwrap_or_default().contains("shorter chain"));
    }

    #[test]
    fn certificate_required_names_cert_and_key() {
        let e = Error::Tls {
            target: "h:1".into(),
            reason: "any words".into(),
            alert: Some(Alert::CertificateRequired),
        };
        assert!(hint(&e).unwrap_or_default().contains("--cert"));
    }

    #[test]
    fn proxy_and_file_hints_come_from_their_values() {
        let refused = |refusal| Error::ProxyRefused {
            kind: gracetls::ProxyKind::Socks5,
            proxy: "p:1080".into(),
            target: "h:1".into(),
            refusal,
            reason: "any words".into(),
        };
        assert_eq!(hint(&refused(ProxyRefusal::CredentialsRequired)), None);
        let h = hint(&refused(ProxyRefusal::TargetUnreachable)).unwrap_or_default();
        assert!(h.contains("could not reach"), "{h}");
        let h = hint(&refused(ProxyRefusal::CredentialsRefused)).unwrap_or_default();
        assert!(h.contains("user name and password"), "{h}");
        let setup = |input, problem| Error::Setup {
            what: "any words".into(),
            reason: "any words".into(),
            input,
            problem,
        };
        assert_eq!(
            hint(&setup(SetupInput::ClientKey, SetupProblem::Convert)),
            None
        );
        let h = hint(&setup(SetupInput::CaFile, SetupProblem::Unreadable)).unwrap_or_default();
        assert_eq!(h, "check the path given to --ca-file");
    }

    #[test]
    fn starttls_on_an_implicit_tls_port_says_drop_it() {
        let e = |target: &str, problem| Error::Starttls {
            target: target.into(),
            protocol: Protocol::Smtp,
            step: "greeting",
            problem,
        };
        let timeout = || Problem::Timeout {
            timeout: Duration::from_secs(10),
            last: None,
        };
        assert!(
            hint(&e("mail.example:465", timeout())).is_some_and(|h| h.contains("drop --starttls"))
        );
        assert!(
            !hint(&e("mail.example:587", timeout())).is_some_and(|h| h.contains("drop --starttls"))
        );
        let refused = Problem::Refused {
            reply: "454 4.7.0 TLS not available".into(),
        };
        assert!(hint(&e("mail.example:25", refused)).is_some_and(|h| h.contains("see its log")));
    }
}
