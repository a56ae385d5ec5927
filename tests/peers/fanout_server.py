#!/usr/bin/env python3
"""A TLS echo server for many concurrent connections, that counts how each one ended.

One thread, one epoll loop (selectors), non-blocking `ssl` sockets: it holds 10,000+
connections in its own process without a thread per connection, so the client's threads and
the server's fit under the machine's thread limit together.

Per connection it records how the client ended it:
  close_notify  the client sent close_notify (the read returned b''); answered with ours
  eof           TCP FIN without close_notify: a truncation (SSLEOFError)
  reset         ECONNRESET or EPIPE
  error         any other TLS or socket error
  hs_failed     the connection ended before the handshake completed

Lines are echoed back.

Stats (plain TCP on --stats-port, 127.0.0.1): send a line and read one line back:
  "now\\n"                    the counters at once
  "closed N TIMEOUT_MS\\n"    the counters once at least N connections have ended after their
                             handshake (close_notify + eof + reset + error), or after the timeout
The answer is `key=value` pairs: accepted handshakes open close_notify eof reset error
hs_failed peak_open. On SIGTERM or SIGINT the server prints the same line, prefixed with
"SUMMARY", and exits.

Start-up: --ready-file gets "TLS_PORT STATS_PORT\\n" (written atomically) once both sockets
listen; "READY TLS_PORT STATS_PORT" also goes to stdout. --certs-dir DIR generates a CA
(DIR/ca.pem) and a localhost server certificate with `openssl` when --cert/--key are not
given; keys are made at run time and never stored elsewhere.
"""

import argparse
import errno
import os
import resource
import selectors
import signal
import socket
import ssl
import subprocess
import sys
import time

COUNTERS = ("accepted", "handshakes", "open", "close_notify", "eof", "reset", "error",
            "hs_failed", "peak_open")


def make_certs(d):
    """CA + server certificate (P-256, fast handshakes) for localhost and 127.0.0.1."""
    def run(*args):
        subprocess.run(["openssl", *args], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    ca_key, ca = os.path.join(d, "ca.key"), os.path.join(d, "ca.pem")
    key, csr, cert = (os.path.join(d, n) for n in ("server.key", "server.csr", "server.pem"))
    ext = os.path.join(d, "server.ext")
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=gracetls fanout CA")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", key, "-out", csr, "-subj", "/CN=localhost")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
        "-out", cert, "-days", "2", "-extfile", ext)
    return cert, key


class Conn:
    __slots__ = ("sock", "tls", "handshaken", "out", "events")

    def __init__(self, sock, tls):
        self.sock = sock
        self.tls = tls
        self.handshaken = False
        self.out = b""
        self.events = selectors.EVENT_READ


class Server:
    def __init__(self, ctx, listener, stats_listener, no_answer=False):
        self.ctx = ctx
        self.no_answer = no_answer
        self.sel = selectors.DefaultSelector()
        self.listener = listener
        self.stats_listener = stats_listener
        self.c = dict.fromkeys(COUNTERS, 0)
        self.waiters = []  # (sock, needed, deadline)
        self.stats_in = {}  # stats socket -> partial request
        self.sel.register(listener, selectors.EVENT_READ, "listen")
        self.sel.register(stats_listener, selectors.EVENT_READ, "stats-listen")

    def line(self):
        return " ".join("%s=%d" % (k, self.c[k]) for k in COUNTERS)

    def ended(self):
        c = self.c
        return c["close_notify"] + c["eof"] + c["reset"] + c["error"]

    # -- TLS connections -------------------------------------------------------------

    def accept(self):
        for _ in range(1024):  # bounded per wakeup; epoll reports the rest again
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in (errno.EMFILE, errno.ENFILE):
                    print("fanout_server: out of file descriptors:", e, file=sys.stderr,
                          flush=True)
                    return
                raise
            sock.setblocking(False)
            # The session tickets and the echo are small writes: without this, Nagle holds
            # the second behind the client's delayed ACK (40 ms a connection).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            tls = self.ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False,
                                       suppress_ragged_eofs=False)
            conn = Conn(sock, tls)
            self.c["accepted"] += 1
            self.c["open"] += 1
            self.c["peak_open"] = max(self.c["peak_open"], self.c["open"])
            self.sel.register(tls, selectors.EVENT_READ, conn)
            self.step(conn)

    def want(self, conn, events):
        if events != conn.events:
            conn.events = events
            self.sel.modify(conn.tls, events, conn)

    def finish(self, conn, how):
        try:
            self.sel.unregister(conn.tls)
        except (KeyError, ValueError):
            pass
        try:
            conn.tls.close()
        except OSError:
            pass
        self.c["open"] -= 1
        self.c[how] += 1
        self.answer_waiters()

    def step(self, conn):
        if not conn.handshaken:
            try:
                conn.tls.do_handshake()
            except ssl.SSLWantReadError:
                return self.want(conn, selectors.EVENT_READ)
            except ssl.SSLWantWriteError:
                return self.want(conn, selectors.EVENT_READ | selectors.EVENT_WRITE)
            except (ssl.SSLError, OSError):
                return self.finish(conn, "hs_failed")
            conn.handshaken = True
            self.c["handshakes"] += 1
        if conn.out and not self.flush(conn):
            return
        for _ in range(64):  # bounded: a fast sender cannot starve the other connections
            try:
                data = conn.tls.recv(65536)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLWantWriteError:
                return self.want(conn, selectors.EVENT_READ | selectors.EVENT_WRITE)
            except ssl.SSLZeroReturnError:
                data = b""
            except ssl.SSLEOFError:
                return self.finish(conn, "eof")
            except ssl.SSLError as e:
                if "UNEXPECTED_EOF" in str(e) or "EOF occurred" in str(e):
                    return self.finish(conn, "eof")
                return self.finish(conn, "error")
            except (ConnectionResetError, BrokenPipeError):
                return self.finish(conn, "reset")
            except OSError:
                return self.finish(conn, "error")
            if not data:
                # close_notify: answer it. The client may already be gone (a fast close does
                # not wait for ours), which is fine: what counts is what it sent. With
                # --no-answer, close TCP without one, as nginx does: the client then has only
                # its kernel's word that its close_notify arrived.
                if not self.no_answer:
                    try:
                        conn.tls.unwrap()
                    except (ssl.SSLError, OSError, ValueError):
                        pass
                return self.finish(conn, "close_notify")
            conn.out += data
            if not self.flush(conn):
                return
        self.want(conn, selectors.EVENT_READ)

    def flush(self, conn):
        """Sends pending echo bytes; False when the connection ended or must wait."""
        while conn.out:
            try:
                n = conn.tls.send(conn.out)
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                self.want(conn, selectors.EVENT_READ | selectors.EVENT_WRITE)
                return False
            except (ConnectionResetError, BrokenPipeError):
                self.finish(conn, "reset")
                return False
            except (ssl.SSLError, OSError):
                self.finish(conn, "error")
                return False
            conn.out = conn.out[n:]
        return True

    # -- stats -------------------------------------------------------------------------

    def accept_stats(self):
        for _ in range(64):
            try:
                sock, _ = self.stats_listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            sock.setblocking(False)
            self.stats_in[sock] = b""
            self.sel.register(sock, selectors.EVENT_READ, "stats")

    def stats_request(self, sock):
        try:
            chunk = sock.recv(256)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        buf = self.stats_in.get(sock, b"") + chunk
        if chunk and b"\n" not in buf and len(buf) < 256:
            self.stats_in[sock] = buf
            return
        self.sel.unregister(sock)
        del self.stats_in[sock]
        words = buf.split(b"\n", 1)[0].decode("ascii", "replace").split()
        needed, timeout_ms = 0, 0
        if len(words) == 3 and words[0] == "closed":
            try:
                needed, timeout_ms = int(words[1]), int(words[2])
            except ValueError:
                pass
        self.waiters.append((sock, needed, time.monotonic() + timeout_ms / 1000.0))
        self.answer_waiters()

    def answer_waiters(self, now=None):
        if not self.waiters:
            return
        now = time.monotonic() if now is None else now
        ended = self.ended()
        keep = []
        for sock, needed, deadline in self.waiters:
            if ended >= needed or now >= deadline:
                try:
                    sock.setblocking(True)
                    sock.settimeout(2)
                    sock.sendall((self.line() + "\n").encode())
                except OSError:
                    pass
                sock.close()
            else:
                keep.append((sock, needed, deadline))
        self.waiters = keep

    # -- the loop ----------------------------------------------------------------------

    def run(self):
        while True:
            timeout = None
            if self.waiters:
                timeout = max(0.0, min(w[2] for w in self.waiters) - time.monotonic())
            for key, mask in self.sel.select(timeout):
                tag = key.data
                if tag == "listen":
                    self.accept()
                elif tag == "stats-listen":
                    self.accept_stats()
                elif tag == "stats":
                    self.stats_request(key.fileobj)
                else:
                    self.step(tag)
            self.answer_waiters()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--stats-port", type=int, default=0)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--certs-dir", help="generate ca.pem and a server certificate here")
    ap.add_argument("--ready-file")
    ap.add_argument("--backlog", type=int, default=4096)
    ap.add_argument("--no-answer", action="store_true",
                    help="close TCP after the client's close_notify without answering it")
    args = ap.parse_args()

    cert, key = args.cert, args.key
    if not (cert and key):
        if not args.certs_dir:
            ap.error("give --cert and --key, or --certs-dir")
        cert, key = make_certs(args.certs_dir)

    # Every connection is one descriptor here; take what the hard limit allows.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)

    listener = socket.create_server((args.host, args.port), backlog=args.backlog)
    listener.setblocking(False)
    stats = socket.create_server((args.host, args.stats_port), backlog=64)
    stats.setblocking(False)
    server = Server(ctx, listener, stats, no_answer=args.no_answer)

    def stop(signum, _frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    ports = "%d %d" % (listener.getsockname()[1], stats.getsockname()[1])
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(ports + "\n")
        os.replace(tmp, args.ready_file)
    print("READY", ports, "nofile=%d" % resource.getrlimit(resource.RLIMIT_NOFILE)[0],
          flush=True)
    try:
        server.run()
    finally:
        print("SUMMARY", server.line(), flush=True)


if __name__ == "__main__":
    main()
