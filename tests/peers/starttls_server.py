#!/usr/bin/env python3
"""A minimal SMTP-like server that upgrades to TLS with STARTTLS, for gracetls's
`Stream::from_tcp` tests.

It binds 127.0.0.1:0, prints `LISTENING <port>`, serves exactly ONE
connection and exits. Every line it prints is flushed at once. Lines:

  LISTENING <port>          the listening socket is ready
  PLAIN <line>              a command read in clear (EHLO, STARTTLS)
  HANDSHAKE <version>       the TLS handshake on the same socket completed
  ECHO <n>                  n plaintext bytes read over TLS and echoed back
  VERDICT <what> [detail]   how the connection ended (exactly one per run)

The dialogue, in clear, then over TLS:

  S: 220 localhost ESMTP starttls_server
  C: EHLO <name>
  S: 250-localhost
  S: 250 STARTTLS
  C: STARTTLS
  S: 220 2.0.0 Ready to start TLS
  ... TLS handshake on the same socket ...
  then everything the client sends is echoed until its close_notify.

Verdicts (as in tls_peer.py):
  client_close_notify              the client sent close_notify; we answered it
  client_eof_without_close_notify  the client's TCP FIN came without close_notify
  protocol_error <detail>          the clear-text dialogue went wrong
  handshake_error <err>            the TLS handshake failed
  error <err>                      anything else
"""

import argparse
import socket
import ssl
import sys


def say(*words):
    print(*words, flush=True)


def read_line(conn):
    """One CRLF-terminated line, read a byte at a time: nothing after it is taken
    from the socket, so the client's ClientHello stays for the TLS layer."""
    line = b""
    while not line.endswith(b"\r\n"):
        b = conn.recv(1)
        if not b:
            return None
        line += b
        if len(line) > 1000:
            return None
    return line[:-2].decode("ascii", "replace")


def dialogue(conn):
    """The clear-text part; True once the client asked for STARTTLS."""
    conn.sendall(b"220 localhost ESMTP starttls_server\r\n")
    line = read_line(conn)
    say("PLAIN", line)
    if line is None or not line.upper().startswith("EHLO "):
        say("VERDICT protocol_error expected EHLO, got", repr(line))
        return False
    conn.sendall(b"250-localhost\r\n250 STARTTLS\r\n")
    line = read_line(conn)
    say("PLAIN", line)
    if line is None or line.upper() != "STARTTLS":
        say("VERDICT protocol_error expected STARTTLS, got", repr(line))
        return False
    conn.sendall(b"220 2.0.0 Ready to start TLS\r\n")
    return True


def is_eof_error(e):
    if isinstance(e, ssl.SSLEOFError):
        return True
    return "UNEXPECTED_EOF" in str(e) or "EOF occurred" in str(e)


def echo(tls):
    while True:
        try:
            data = tls.recv(65536)
        except ssl.SSLError as e:
            if is_eof_error(e):
                say("VERDICT client_eof_without_close_notify")
            else:
                say("VERDICT error", e)
            return
        if not data:
            try:
                tls.unwrap()
            except (ssl.SSLError, OSError) as e:
                say("VERDICT client_close_notify unwrap_failed", e)
                return
            say("VERDICT client_close_notify")
            return
        say("ECHO", len(data))
        tls.sendall(data)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--tls", choices=["1.2", "1.3"], required=True)
    args = ap.parse_args()

    version = ssl.TLSVersion.TLSv1_3 if args.tls == "1.3" else ssl.TLSVersion.TLSv1_2
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = version
    ctx.maximum_version = version
    ctx.load_cert_chain(args.cert, args.key)

    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    say("LISTENING", lsock.getsockname()[1])
    conn, _ = lsock.accept()
    lsock.close()
    try:
        if not dialogue(conn):
            conn.close()
            return
        try:
            tls = ctx.wrap_socket(conn, server_side=True, suppress_ragged_eofs=False)
        except (ssl.SSLError, OSError) as e:
            say("VERDICT handshake_error", e)
            conn.close()
            return
        say("HANDSHAKE", tls.version())
        echo(tls)
        tls.close()
    except (ssl.SSLError, OSError) as e:
        say("VERDICT error", e)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
