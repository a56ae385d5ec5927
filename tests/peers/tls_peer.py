#!/usr/bin/env python3
"""A scripted TLS server peer for gracetls's integration tests.

It binds 127.0.0.1:0, prints `LISTENING <port>`, serves exactly ONE
connection, prints machine-readable lines about it, and exits. Every line it
prints is flushed at once, so the test can wait for it. Lines:

  LISTENING <port>          the listening socket is ready
  HANDSHAKE <version>       the TLS handshake with the client completed
  SENT <n>                  the payload (n plaintext bytes) has been sent
  VERDICT <what> [detail]   how the connection ended (exactly one per run)

Verdicts:
  client_close_notify            the client sent close_notify first; we answered it
  client_eof_without_close_notify the client's TCP FIN came without close_notify
  client_answered_close_notify   we sent close_notify first and the client answered it
  client_did_not_answer <err>    we sent close_notify first; the client did not answer it
  handshake_error <err>          the TLS handshake failed (e.g. the `alert` mode)
  truncated_sent                 `send-truncate` closed TCP without close_notify
  garbage_sent                   `garbage` wrote non-TLS bytes after the handshake
  reset_sent                     `reset` closed the socket with an RST
  cut_record_sent                `cut-record` closed TCP in the middle of a record
  error <err>                    anything else

Modes:
  echo           echo everything back until the client's close_notify, then
                 answer it (unwrap)
  send-close     send the payload, then unwrap(): send close_notify and wait
                 for the client's. While sending, it also reads, so a client
                 that closes early (close_notify while data is still flowing)
                 is seen as `client_close_notify`.
  send-truncate  send the payload, then shut TCP down without close_notify
  stall          complete the handshake, then never read again (sleeps until
                 killed); on SIGUSR1 it sends one `quit` line
  garbage        complete the handshake, then write plain non-TLS bytes on
                 the raw socket
  reset          complete the handshake, send one line, then close with
                 SO_LINGER {1, 0} so the client gets a TCP RST
  banner         send the payload in the SAME TCP write as the server's last
                 handshake flight (TLS 1.2: NewSessionTicket, ChangeCipherSpec,
                 Finished; TLS 1.3: the session tickets), using memory BIOs,
                 then echo like `echo`
  flood          send the payload (reading meanwhile, like `send-close`), print
                 SENT, then echo like `echo` until the client's close_notify.
                 With --payload-line-bytes it is one endless line.
  cut-record     send the payload as usual, then on the raw socket only the
                 first part of a TLS record (a 5-byte application_data header
                 announcing 1024 bytes, then 100 bytes of it), then a TCP FIN
                 (no close_notify): the stream ends in the middle of a record
  alert          require a client certificate signed by --ca (CERT_REQUIRED).
                 A client without one gets a fatal alert: in TLS 1.2 during
                 the handshake (handshake_failure, 40), in TLS 1.3 right after
                 it (certificate_required, 116). A client with one is served
                 like `echo`.

The payload is --payload-text (with backslash escapes such as \\n), or else
--payload-bytes N bytes of the deterministic pattern
`format!("{i:08} gracetls payload line\\n")` for i = 0, 1, ... cut to N bytes,
or else --payload-line-bytes N: the same pattern with every newline replaced
by a space (one line with no end), or else the line `hello from tls_peer\\n`.
"""

import argparse
import codecs
import os
import select
import socket
import signal
import ssl
import struct
import sys
import time


def say(*words):
    print(*words, flush=True)


def pattern(n):
    out = []
    size = 0
    i = 0
    while size < n:
        line = b"%08d gracetls payload line\n" % i
        out.append(line)
        size += len(line)
        i += 1
    return b"".join(out)[:n]


def raw_dup(tls):
    """A plain socket on the same connection, bypassing TLS."""
    return socket.socket(fileno=os.dup(tls.fileno()))


def drain_raw(raw, seconds):
    """Read and discard until EOF/error or `seconds` pass (avoids an RST)."""
    raw.settimeout(seconds)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            if not raw.recv(65536):
                return
    except OSError:
        return


def is_eof_error(e):
    if isinstance(e, ssl.SSLEOFError):
        return True
    return "UNEXPECTED_EOF" in str(e) or "EOF occurred" in str(e)


def serve_echo(tls):
    while True:
        try:
            data = tls.recv(65536)
        except ssl.SSLError as e:
            if is_eof_error(e):
                say("VERDICT client_eof_without_close_notify")
            else:
                say("VERDICT error", e)
            return
        except OSError as e:
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
        try:
            tls.sendall(data)
        except (ssl.SSLError, OSError) as e:
            say("VERDICT error send", e)
            return


def send_watching(tls, payload):
    """Send the payload while also reading, without blocking on either.

    Returns None when all was sent, else a verdict string (the client closed
    or failed while we were still sending).
    """
    tls.setblocking(False)
    pos = 0
    deadline = time.monotonic() + 120
    try:
        while pos < len(payload):
            if time.monotonic() > deadline:
                return "error send timed out"
            want_write = pos < len(payload)
            r, w, _ = select.select([tls], [tls] if want_write else [], [], 1.0)
            if r or tls.pending():
                try:
                    data = tls.recv(65536)
                    if not data:
                        tls.setblocking(True)
                        tls.settimeout(10)
                        try:
                            tls.unwrap()
                        except (ssl.SSLError, OSError) as e:
                            return "client_close_notify unwrap_failed %s" % e
                        return "client_close_notify"
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLWantWriteError:
                    pass
                except ssl.SSLError as e:
                    if is_eof_error(e):
                        return "client_eof_without_close_notify"
                    return "error recv %s" % e
            if w:
                try:
                    n = tls.send(payload[pos:pos + 16384])
                    pos += n
                except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                    pass
    except OSError as e:
        # The client may have sent close_notify and then an RST; see whether
        # the close_notify is still readable.
        try:
            tls.settimeout(2)
            if tls.recv(65536) == b"":
                return "client_close_notify after_send_error %s" % e
        except (ssl.SSLError, OSError):
            pass
        return "error send %s" % e
    tls.setblocking(True)
    return None


def serve_send_close(tls, payload):
    early = send_watching(tls, payload)
    if early is not None:
        say("VERDICT", early)
        return
    say("SENT", len(payload))
    tls.settimeout(60)
    try:
        tls.unwrap()
    except (ssl.SSLError, OSError) as e:
        say("VERDICT client_did_not_answer", e)
        return
    say("VERDICT client_answered_close_notify")


def serve_send_truncate(tls, payload):
    tls.sendall(payload)
    say("SENT", len(payload))
    raw = raw_dup(tls)
    raw.shutdown(socket.SHUT_WR)  # FIN without close_notify
    drain_raw(raw, 30)
    raw.close()
    say("VERDICT truncated_sent")


def serve_garbage(tls):
    raw = raw_dup(tls)
    raw.sendall(b"HTTP/1.1 400 Bad Request\r\nthis is not TLS\r\n\r\n" * 4)
    say("SENT garbage")
    raw.shutdown(socket.SHUT_WR)
    drain_raw(raw, 30)
    raw.close()
    say("VERDICT garbage_sent")


def serve_flood(tls, payload):
    early = send_watching(tls, payload)
    if early is not None:
        say("VERDICT", early)
        return
    say("SENT", len(payload))
    serve_echo(tls)


def serve_cut_record(tls, payload):
    tls.sendall(payload)
    say("SENT", len(payload))
    raw = raw_dup(tls)
    # The header promises 1024 bytes of ciphertext; only 100 follow, then FIN.
    raw.sendall(b"\x17\x03\x03\x04\x00" + bytes(range(100)))
    raw.shutdown(socket.SHUT_WR)
    drain_raw(raw, 30)
    raw.close()
    say("VERDICT cut_record_sent")


def serve_reset(tls):
    tls.sendall(b"line before reset\n")
    say("SENT", len(b"line before reset\n"))
    raw = raw_dup(tls)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    # Closing the TLS socket frees the SSL object without sending anything;
    # closing the last descriptor then sends the RST.
    tls.close()
    raw.close()
    say("VERDICT reset_sent")


def serve_banner(ctx, conn, payload):
    """Handshake through memory BIOs so that the last handshake flight and the
    payload leave in one sendall(); then echo until close_notify."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_side=True)
    conn.settimeout(60)

    def pump_in():
        data = conn.recv(65536)
        if not data:
            return False
        inc.write(data)
        return True

    while True:
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            pending = out.read()
            if pending:
                conn.sendall(pending)
            if not pump_in():
                say("VERDICT handshake_error eof during handshake")
                return
        except ssl.SSLError as e:
            pending = out.read()
            if pending:
                conn.sendall(pending)
            say("VERDICT handshake_error", e)
            return
    say("HANDSHAKE", obj.version())
    obj.write(payload)
    conn.sendall(out.read())  # last handshake flight + payload, one write
    say("SENT", len(payload))
    while True:
        try:
            data = obj.read(65536)
        except ssl.SSLWantReadError:
            try:
                if not pump_in():
                    say("VERDICT client_eof_without_close_notify")
                    return
            except OSError as e:
                say("VERDICT error", e)
                return
            continue
        except ssl.SSLZeroReturnError:
            data = b""
        except ssl.SSLError as e:
            say("VERDICT error", e)
            return
        if not data:
            try:
                obj.unwrap()
            except ssl.SSLError as e:
                conn.sendall(out.read())
                say("VERDICT client_close_notify unwrap_failed", e)
                return
            conn.sendall(out.read())
            say("VERDICT client_close_notify")
            return
        obj.write(data)
        conn.sendall(out.read())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--ca", help="CA for client certificates (mode alert)")
    ap.add_argument("--tls", choices=["1.2", "1.3"], required=True)
    ap.add_argument(
        "--mode",
        required=True,
        choices=[
            "echo",
            "send-close",
            "send-truncate",
            "stall",
            "garbage",
            "reset",
            "alert",
            "banner",
            "flood",
            "cut-record",
        ],
    )
    ap.add_argument("--payload-bytes", type=int)
    ap.add_argument("--payload-text")
    ap.add_argument("--payload-line-bytes", type=int)
    args = ap.parse_args()

    if args.payload_text is not None:
        payload = codecs.decode(args.payload_text, "unicode_escape").encode("latin-1")
    elif args.payload_bytes is not None:
        payload = pattern(args.payload_bytes)
    elif args.payload_line_bytes is not None:
        payload = pattern(args.payload_line_bytes).replace(b"\n", b" ")
    else:
        payload = b"hello from tls_peer\n"

    version = ssl.TLSVersion.TLSv1_3 if args.tls == "1.3" else ssl.TLSVersion.TLSv1_2
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = version
    ctx.maximum_version = version
    ctx.load_cert_chain(args.cert, args.key)
    if args.mode == "alert":
        if not args.ca:
            ap.error("--mode alert needs --ca")
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=args.ca)

    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    say("LISTENING", lsock.getsockname()[1])

    conn, _ = lsock.accept()
    lsock.close()
    if args.mode == "banner":
        try:
            serve_banner(ctx, conn, payload)
        except OSError as e:
            say("VERDICT error", e)
        conn.close()
        return
    try:
        tls = ctx.wrap_socket(conn, server_side=True, suppress_ragged_eofs=False)
    except (ssl.SSLError, OSError) as e:
        say("VERDICT handshake_error", e)
        conn.close()
        return
    say("HANDSHAKE", tls.version())

    try:
        if args.mode in ("echo", "alert"):
            serve_echo(tls)
        elif args.mode == "send-close":
            serve_send_close(tls, payload)
        elif args.mode == "send-truncate":
            serve_send_truncate(tls, payload)
        elif args.mode == "stall":
            # SIGUSR1: send one `quit` line (still never reading).
            signal.signal(signal.SIGUSR1, lambda *_: tls.sendall(b"quit\n"))
            while True:
                time.sleep(3600)
        elif args.mode == "garbage":
            serve_garbage(tls)
        elif args.mode == "flood":
            serve_flood(tls, payload)
        elif args.mode == "cut-record":
            serve_cut_record(tls, payload)
        elif args.mode == "reset":
            serve_reset(tls)
            return
    except (ssl.SSLError, OSError) as e:
        say("VERDICT error", e)
    try:
        tls.close()
    except OSError:
        pass


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
