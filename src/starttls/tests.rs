//! The dialogue's bounds against scripted bytes on a loopback socket: what no real server
//! sends on purpose (endless lines, garbage, silence, bytes past the upgrade), which the
//! integration tests against Postfix and Dovecot cannot show.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use super::*;

/// A server that sends `replies[0]`, then for each later reply reads what the client sent
/// first (one message: each is one write); after the last it reads until the client closes.
/// Returns the client's socket.
fn scripted(replies: Vec<Vec<u8>>) -> TcpStream {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        let (socket, _) = listener.accept().unwrap();
        let mut reader = &socket;
        let mut message = [0u8; 4096];
        for (i, reply) in replies.iter().enumerate() {
            if i > 0 && reader.read(&mut message).unwrap_or(0) == 0 {
                return;
            }
            if (&socket).write_all(reply).is_err() {
                return;
            }
        }
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    TcpStream::connect(addr).unwrap()
}

fn negotiate(protocol: Protocol, replies: &[&[u8]]) -> (Result<Transcript, Error>, TcpStream) {
    let socket = scripted(replies.iter().map(|r| r.to_vec()).collect());
    let result =
        Starttls::new(protocol).negotiate(&socket, "localhost", Duration::from_millis(2000));
    (result, socket)
}

fn problem(result: Result<Transcript, Error>) -> (Problem, &'static str, String) {
    match result {
        Err(e @ Error::Starttls { .. }) => {
            let text = e.to_string();
            let Error::Starttls { problem, step, .. } = e else {
                unreachable!()
            };
            (problem, step, text)
        }
        other => panic!("expected Error::Starttls, got {other:?}"),
    }
}

#[test]
fn names_round_trip() {
    for p in Protocol::ALL {
        assert_eq!(p.to_string().parse::<Protocol>(), Ok(p));
    }
    let e = "x".parse::<Protocol>().unwrap_err().to_string();
    assert!(
        e.contains("smtp, lmtp, imap, pop3, ftp, xmpp, postgres"),
        "{e}"
    );
}

/// What the server sends after its go-ahead stays in the socket, for TLS.
#[test]
fn nothing_past_the_upgrade_is_read() {
    let cases: [(Protocol, &[&[u8]]); 7] = [
        (
            Protocol::Smtp,
            &[
                b"220 hi\r\n",
                b"250-hi\r\n250-SIZE 1\r\n250 STARTTLS\r\n",
                b"220 go\r\nAFTER",
            ],
        ),
        (
            Protocol::Lmtp,
            &[
                b"220 hi\r\n",
                b"250-hi\r\n250 starttls\r\n",
                b"220 go\r\nAFTER",
            ],
        ),
        (
            Protocol::Imap,
            &[
                b"* OK hi\r\n",
                b"* CAPABILITY IMAP4rev1 STARTTLS\r\na OK done\r\n",
                b"* NOTE untagged\r\nb OK go\r\nAFTER",
            ],
        ),
        (
            Protocol::Pop3,
            &[
                b"+OK hi\r\n",
                b"+OK\r\nTOP\r\nSTLS\r\n.\r\n",
                b"+OK go\r\nAFTER",
            ],
        ),
        (
            Protocol::Ftp,
            &[b"220-hi\r\nany text\r\n220 ready\r\n", b"234 go\r\nAFTER"],
        ),
        (
            Protocol::Xmpp,
            &[
                b"<?xml version='1.0'?><stream:stream from='localhost' version='1.0'>\
                  <stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'>\
                  <required/></starttls></stream:features>",
                b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>AFTER",
            ],
        ),
        (Protocol::Postgres, &[b"", b"SAFTER"]),
    ];
    for (protocol, replies) in cases {
        // PostgreSQL's client speaks first: the empty greeting is no bytes at all.
        let (result, mut socket) = negotiate(protocol, replies);
        let transcript = result.unwrap_or_else(|e| panic!("{protocol}: {e}"));
        assert!(!transcript.lines().is_empty());
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut after = [0u8; 5];
        socket.read_exact(&mut after).unwrap();
        assert_eq!(&after, b"AFTER", "{protocol}");
    }
}

#[test]
fn not_offered_names_what_is() {
    let (result, _s) = negotiate(
        Protocol::Smtp,
        &[
            b"220 hi\r\n",
            b"250-hi\r\n250-PIPELINING\r\n250 SIZE 10\r\n",
        ],
    );
    let (p, step, text) = problem(result);
    assert!(matches!(p, Problem::NotOffered { .. }));
    assert_eq!(step, "EHLO");
    assert!(
        text.ends_with("does not offer STARTTLS: its EHLO reply lists PIPELINING, SIZE 10"),
        "{text}"
    );
    let (result, _s) = negotiate(Protocol::Postgres, &[b"", b"N"]);
    let (p, _, text) = problem(result);
    assert!(matches!(p, Problem::NotOffered { .. }), "{text}");
}

#[test]
fn refusal_quotes_the_server() {
    let (result, _s) = negotiate(
        Protocol::Smtp,
        &[
            b"220 hi\r\n",
            b"250-hi\r\n250 STARTTLS\r\n",
            b"454 4.7.0 TLS not available due to local problem\r\n",
        ],
    );
    let (p, step, text) = problem(result);
    assert!(matches!(p, Problem::Refused { .. }));
    assert_eq!(step, "STARTTLS");
    assert!(
        text.ends_with(
            "refused SMTP STARTTLS: it answered \"454 4.7.0 TLS not available due to local problem\""
        ),
        "{text}"
    );
}

#[test]
fn a_line_without_end_is_bounded() {
    let long = vec![b'a'; 20_000];
    let (result, _s) = negotiate(Protocol::Imap, &[&long]);
    let (p, _, _) = problem(result);
    assert!(matches!(p, Problem::TooLong { limit: 8192 }), "{p:?}");
}

#[test]
fn an_endless_reply_is_bounded() {
    let endless: Vec<u8> = b"250-more\r\n".repeat(40_000);
    let (result, _s) = negotiate(Protocol::Smtp, &[b"220 hi\r\n", &endless]);
    let (p, step, _) = problem(result);
    assert!(matches!(p, Problem::TooLong { limit } if limit == dialogue::MAX_TOTAL));
    assert_eq!(step, "EHLO");
}

#[test]
fn silence_is_a_timeout_naming_the_step() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let socket = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let _held = listener.accept().unwrap();
    let result =
        Starttls::new(Protocol::Pop3).negotiate(&socket, "localhost", Duration::from_millis(200));
    let (p, step, text) = problem(result);
    assert!(matches!(p, Problem::Timeout { .. }));
    assert_eq!(step, "greeting");
    assert!(
        text.contains("did not send the POP3 greeting within 200ms"),
        "{text}"
    );
    // The caller's timeouts are back as they were.
    assert_eq!(socket.read_timeout().unwrap(), None);
}

#[test]
fn a_close_is_named() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let socket = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    drop(listener.accept().unwrap());
    let result =
        Starttls::new(Protocol::Smtp).negotiate(&socket, "localhost", Duration::from_secs(2));
    let (p, _, text) = problem(result);
    assert!(matches!(p, Problem::Closed), "{text}");
}

/// Odd bytes in every protocol's first answer: an error, never a panic.
#[test]
fn garbage_is_an_error_not_a_panic() {
    let inputs: [&[u8]; 9] = [
        b"\xff\xfe\x00\r\n",
        b"2\r\n",
        b"22\n",
        b"220",
        b"\r\n",
        b"220-\xc3\r\n999 x\r\n",
        b"<<<>>>",
        b"* \xe2\x82\r\n",
        b"+\r\n",
    ];
    for protocol in Protocol::ALL {
        for input in inputs {
            let socket = scripted(vec![input.to_vec(), b"x\r\n".to_vec()]);
            let result =
                Starttls::new(protocol).negotiate(&socket, "localhost", Duration::from_millis(100));
            assert!(result.is_err(), "{protocol} took {input:?}");
        }
    }
}

/// Found by the `starttls` fuzz target: XMPP stream features holding CR and LF made a
/// "does not offer" message of several lines.
#[test]
fn a_server_cannot_break_the_message_into_lines() {
    let (result, _s) = negotiate(
        Protocol::Xmpp,
        &[
            b"",
            b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
              xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>\
              <stream:features>\r\n+OK\r\nSTLS\r\n\x01</stream:features>",
        ],
    );
    let (p, _, text) = problem(result);
    assert!(matches!(p, Problem::NotOffered { .. }), "{text}");
    assert!(!text.contains(['\r', '\n', '\u{1}']), "{text:?}");
    assert!(text.contains("+OK\\r\\nSTLS\\r\\n\\u{1}"), "{text:?}");
}

#[test]
fn greetings_name_their_protocol() {
    let cases = [
        (
            "220 localhost ESMTP Exim 4.97 Mon, 07 Dec 2026",
            Some(Protocol::Smtp),
        ),
        (
            "220 mail.example ESMTP Postfix (Debian/GNU)",
            Some(Protocol::Smtp),
        ),
        ("220 host LMTP server ready", Some(Protocol::Lmtp)),
        ("220 (vsFTPd 3.0.5)", Some(Protocol::Ftp)),
        (
            "220 ProFTPD Server (Debian) [::ffff:127.0.0.1]",
            Some(Protocol::Ftp),
        ),
        (
            "* OK [CAPABILITY IMAP4rev1 STARTTLS] Dovecot ready.",
            Some(Protocol::Imap),
        ),
        ("+OK Dovecot ready.", Some(Protocol::Pop3)),
        ("<?xml version='1.0'?><stream:stream", Some(Protocol::Xmpp)),
        ("220 mail.example ready", None),
        ("500 what?", None),
    ];
    for (line, want) in cases {
        assert_eq!(Protocol::of_greeting(line), want, "{line}");
    }
}

/// Both greet with 220: the failure names the protocol the greeting belongs to.
#[test]
fn ftp_against_an_smtp_greeting_names_smtp() {
    let (result, _s) = negotiate(
        Protocol::Ftp,
        &[
            b"220 localhost ESMTP Exim 4.97\r\n",
            b"500 unrecognized command\r\n",
        ],
    );
    let (p, _, text) = problem(result);
    assert!(
        matches!(
            p,
            Problem::OtherProtocol {
                protocol: Protocol::Smtp,
                ..
            }
        ),
        "{p:?}"
    );
    assert!(
        text.contains("speaks SMTP, not FTP: it greeted with \"220 localhost ESMTP Exim 4.97\""),
        "{text}"
    );
}

/// A timeout quotes the last line the server sent, whole or not.
#[test]
fn a_timeout_quotes_the_last_line() {
    let (result, _s) = negotiate(
        Protocol::Smtp,
        &[b"220 hi\r\n", b"250-mail.example\r\n250-SIZE"],
    );
    let (p, step, text) = problem(result);
    assert!(matches!(p, Problem::Timeout { .. }), "{p:?}");
    assert_eq!(step, "EHLO");
    assert!(
        text.ends_with("within 2s; the last line it sent was \"250-SIZE\""),
        "{text}"
    );
}

/// A greeting that cannot start XML ends an XMPP exchange at once, quoted.
#[test]
fn xmpp_fails_at_once_on_a_line_protocol() {
    let started = std::time::Instant::now();
    let (result, _s) = negotiate(Protocol::Xmpp, &[b"  hello there\r\n"]);
    let (p, step, text) = problem(result);
    assert!(matches!(p, Problem::Unexpected { .. }), "{p:?}");
    assert_eq!(step, "stream features");
    assert!(text.contains("\"hello there\""), "{text}");
    assert!(started.elapsed() < Duration::from_secs(1), "{text}");
}

/// A server that never answers the XMPP stream header: the timeout says it sent nothing.
#[test]
fn silence_after_our_first_words_says_nothing_was_sent() {
    let (result, _s) = negotiate(Protocol::Xmpp, &[]);
    let (p, step, text) = problem(result);
    assert!(matches!(p, Problem::Timeout { last: None, .. }), "{p:?}");
    assert_eq!(step, "stream features");
    assert!(
        text.ends_with("did not answer XMPP stream features within 2s; it sent nothing"),
        "{text}"
    );
}

/// Endless white space before the XMPP stream is bounded like any answer.
#[test]
fn endless_white_space_before_xml_is_bounded() {
    let blanks = vec![b' '; dialogue::MAX_TOTAL + 1];
    let (result, _s) = negotiate(Protocol::Xmpp, &[&blanks]);
    let (p, _, _) = problem(result);
    assert!(matches!(p, Problem::TooLong { .. }), "{p:?}");
}
