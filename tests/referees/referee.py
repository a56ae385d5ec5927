#!/usr/bin/env python3
"""One TLS client, from an independent stack, that says how a server ended the connection.

Usage: referee.py CLIENT --port PORT --ca CA.pem --tls 1.2|1.3 [--host 127.0.0.1]
                  [--timeout SECONDS] [--close] [--ready-text TEXT]

CLIENT is one of: s_client, gnutls-cli, curl, python, go, rustls, jsse (`referee.py --list`
prints them). The client connects, reads what the server sends and prints two lines on stdout:

    READY                      once READY_TEXT (default `hello`) has arrived: the session is
                               up and the server's data flows, so the server may now be ended
    VERDICT WHAT [detail]      how the server ended it, judged by the client's own means

WHAT is `close_notify` (the server's TLS goodbye), `bare_fin` (TCP FIN without it: a possible
truncation), `reset` (TCP RST), `open` (nothing ended within --timeout), `n/a` (the client has
no way to do what was asked) or `error`.

With --close the client ends the session itself once READY: it sends close_notify and the
verdict says how the server answered (`close_notify`: the server answered with its own).
s_client, gnutls-cli and curl cannot close without exiting, so they say `n/a` there.

Each client decides with its own means, never with another's:
  s_client    `-msg -state`: `SSL3 alert read:warning:close notify` or `unexpected eof`
  gnutls-cli  `- Peer has closed the GnuTLS connection` or `non-properly terminated`
  curl        `-v` (OpenSSL backend): `(IN), TLS alert, close notify`; curl itself ignores a
              bare FIN (exit 0), so the absence of that line on a clean exit is the bare FIN
  python      `ssl` with suppress_ragged_eofs=False: `recv` gives b'' or raises SSLEOFError
  go          tests/referees/go (crypto/tls, plus the order of the socket's EOF)
  rustls      tests/referees/rustls.rs (`cargo build --example referee_rustls`)
  jsse        tests/referees/JsseReferee.java with requireCloseNotify=true

The Go and Java referees are built on first use into target/referees/ (Go's caches too, so
nothing outside the repository changes); GRACETLS_REFEREE_DIR names another directory.
"""

import argparse
import hashlib
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CLIENTS = ["s_client", "gnutls-cli", "curl", "python", "go", "rustls", "jsse"]


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def verdict(what, detail=""):
    say(("VERDICT " + what + " " + detail).rstrip())


def build_dir():
    d = os.environ.get("GRACETLS_REFEREE_DIR") or os.path.join(ROOT, "target", "referees")
    os.makedirs(d, exist_ok=True)
    return d


def fresh(name, sources, build):
    """The built artefact for `sources`, built once per content hash; concurrent builds each
    use a private directory and the first rename wins."""
    h = hashlib.sha256()
    for s in sources:
        with open(s, "rb") as f:
            h.update(f.read())
    out = os.path.join(build_dir(), f"{name}-{h.hexdigest()[:16]}")
    if os.path.exists(out):
        return out
    tmp = f"{out}.tmp{os.getpid()}"
    build(tmp)
    try:
        os.rename(tmp, out)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def run_build(what, cmd, env=None, cwd=None):
    r = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"{what} failed: {r.stderr.strip() or r.stdout.strip()}")


def go_binary():
    src = os.path.join(HERE, "go")
    env = dict(os.environ)
    d = build_dir()
    env.update(GOCACHE=os.path.join(d, "go-cache"), GOPATH=os.path.join(d, "go-path"),
               GOFLAGS="-mod=mod", GO111MODULE="on", GOPROXY="off", GOWORK="off",
               GOTOOLCHAIN="local", CGO_ENABLED="0")

    def build(tmp):
        os.makedirs(tmp)
        run_build("go build", ["go", "build", "-o", os.path.join(tmp, "referee"), "."],
                  env=env, cwd=src)

    out = fresh("go", [os.path.join(src, "main.go"), os.path.join(src, "go.mod")], build)
    return [os.path.join(out, "referee")]


def jsse_command():
    src = os.path.join(HERE, "JsseReferee.java")

    def build(tmp):
        os.makedirs(tmp)
        run_build("javac", ["javac", "-d", tmp, src])

    out = fresh("jsse", [src], build)
    return ["java", "-Dcom.sun.net.ssl.requireCloseNotify=true", "-XX:TieredStopAtLevel=1",
            "-XX:+UseSerialGC", "-Xmx64m", "-cp", out, "JsseReferee"]


def rustls_binary():
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
    exe = os.path.join(target, "debug", "examples", "referee_rustls")
    if not os.path.exists(exe):
        raise RuntimeError("the rustls referee is not built: cargo build --example referee_rustls")
    return [exe]


class Watch:
    """Reads a child's output in the background, printing READY when the ready text appears."""

    def __init__(self, proc, ready_text):
        self.proc = proc
        self.ready_text = ready_text.encode()
        self.out = bytearray()
        self.err = bytearray()
        self.ready = False
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.pump, args=(proc.stdout, self.out), daemon=True),
                        threading.Thread(target=self.pump, args=(proc.stderr, self.err), daemon=True)]
        for t in self.threads:
            t.start()

    def pump(self, pipe, buf):
        while True:
            chunk = pipe.read1(65536) if hasattr(pipe, "read1") else pipe.read(65536)
            if not chunk:
                return
            with self.lock:
                buf.extend(chunk)
                if not self.ready and self.ready_text in self.out:
                    self.ready = True
                    say("READY")

    def wait(self, timeout):
        """The exit code, or None when the child was still running at `timeout` (then killed)."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            code = None
        for t in self.threads:
            t.join(timeout=5)
        return code

    def text(self):
        return (bytes(self.out) + b"\n" + bytes(self.err)).decode("utf-8", "replace")


def spawn(cmd, keep_stdin=False):
    return subprocess.Popen(cmd, stdin=subprocess.PIPE if keep_stdin else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)


def last_line_with(text, *needles):
    for line in reversed(text.splitlines()):
        if any(n in line for n in needles):
            return line.strip()
    return ""


def judge_tool(name, text, code, rules):
    """`rules`: (needle, verdict) in order of precedence; the first found decides."""
    if code is None:
        return verdict("open", f"{name} still connected at the timeout")
    for needle, what in rules:
        if needle in text:
            return verdict(what, last_line_with(text, needle))
    tail = " | ".join(text.strip().splitlines()[-3:])
    return verdict("error", f"{name} exit {code}: {tail}")


def s_client(a):
    if a.close:
        return verdict("n/a", "s_client sends close_notify only as it exits")
    # -ign_eof: stdin (/dev/null) ending does not end the session; the server does.
    proc = spawn(["openssl", "s_client", "-connect", f"{a.host}:{a.port}", "-CAfile", a.ca,
                  "-verify_return_error", "-msg", "-state", "-ign_eof",
                  "-tls1_3" if a.tls == "1.3" else "-tls1_2"])
    w = Watch(proc, a.ready_text)
    code = w.wait(a.timeout)
    judge_tool("s_client", w.text(), code, [
        ("SSL3 alert read:warning:close notify", "close_notify"),
        ("unexpected eof while reading", "bare_fin"),
        ("Connection reset by peer", "reset"),
        ("errno=104", "reset"),
    ])


def gnutls_cli(a):
    if a.close:
        return verdict("n/a", "gnutls-cli sends close_notify only as it exits")
    prio = "NORMAL:-VERS-ALL:+VERS-TLS1.3" if a.tls == "1.3" else "NORMAL:-VERS-ALL:+VERS-TLS1.2"
    # stdin is a pipe held open: its end would end the session from our side.
    proc = spawn(["gnutls-cli", "--x509cafile", a.ca, "--priority", prio, "-p", str(a.port),
                  a.host], keep_stdin=True)
    w = Watch(proc, a.ready_text)
    code = w.wait(a.timeout)
    proc.stdin.close()
    judge_tool("gnutls-cli", w.text(), code, [
        ("Peer has closed the GnuTLS connection", "close_notify"),
        ("non-properly terminated", "bare_fin"),
        ("reset by peer", "reset"),
        ("Error in the push function", "reset"),
        ("Error in the pull function", "reset"),
    ])


def curl(a):
    if a.close:
        return verdict("n/a", "curl sends close_notify only as it exits")
    version = subprocess.run(["curl", "-V"], capture_output=True, text=True).stdout
    if "OpenSSL" not in version.splitlines()[0]:
        return verdict("error", "this curl is not built with OpenSSL: its -v lines differ")
    pin = ["--tlsv1.3", "--tls-max", "1.3"] if a.tls == "1.3" else ["--tlsv1.2", "--tls-max", "1.2"]
    # HTTP/1.0: the body ends with the connection, so curl reads until the server ends it.
    proc = spawn(["curl", "-sSvN", "--http1.0", "--cacert", a.ca, *pin,
                  "--max-time", str(a.timeout), f"https://{a.host}:{a.port}/"])
    w = Watch(proc, a.ready_text)
    code = w.wait(a.timeout + 5)
    text = w.text()
    if code == 28:
        return verdict("open", "curl: still connected at --max-time")
    if "(IN), TLS alert, close notify" in text:
        return verdict("close_notify", last_line_with(text, "(IN), TLS alert, close notify"))
    if code == 0:
        return verdict("bare_fin", "exit 0 without (IN), TLS alert, close notify")
    if "reset by peer" in text:
        return verdict("reset", last_line_with(text, "reset by peer"))
    if "unexpected eof" in text:
        return verdict("bare_fin", last_line_with(text, "unexpected eof"))
    return judge_tool("curl", text, code, [])


def python_ssl(a):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(a.ca)
    v = ssl.TLSVersion.TLSv1_3 if a.tls == "1.3" else ssl.TLSVersion.TLSv1_2
    ctx.minimum_version = ctx.maximum_version = v
    deadline = time.monotonic() + a.timeout
    try:
        raw = socket.create_connection((a.host, a.port), timeout=a.timeout)
        s = ctx.wrap_socket(raw, server_hostname="localhost", suppress_ragged_eofs=False)
    except (OSError, ssl.SSLError) as e:
        return verdict("error", f"connect: {e}")
    got = b""
    ready = False
    try:
        while True:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            if ready and a.close:
                try:
                    s.unwrap()
                    return verdict("close_notify", "unwrap(): the server answered close_notify")
                except ssl.SSLEOFError as e:
                    return verdict("bare_fin", f"unwrap(): {e}")
            data = s.recv(65536)
            if not data:
                return verdict("close_notify", "recv() returned b''")
            got += data
            if not ready and a.ready_text.encode() in got:
                ready = True
                say("READY")
    except ssl.SSLEOFError as e:
        return verdict("bare_fin", f"SSLEOFError: {e}")
    except ConnectionResetError as e:
        return verdict("reset", str(e))
    except (socket.timeout, TimeoutError):
        return verdict("open", "python: still connected at the timeout")
    except (OSError, ssl.SSLError) as e:
        return verdict("error", f"{type(e).__name__}: {e}")


def program(a, cmd):
    args = ["--host", a.host, "--port", str(a.port), "--ca", a.ca, "--tls", a.tls,
            "--timeout", str(a.timeout), "--ready-text", a.ready_text]
    if a.close:
        args.append("--close")
    # The program prints READY and VERDICT itself; passed through line by line.
    proc = subprocess.Popen(cmd + args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    seen = False
    for line in proc.stdout:
        line = line.rstrip("\n")
        if line == "READY" or line.startswith("VERDICT "):
            seen = seen or line.startswith("VERDICT ")
            say(line)
    err = proc.stderr.read()
    proc.wait()
    if not seen:
        verdict("error", f"{cmd[0]} exit {proc.returncode}: {err.strip()[-300:]}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("client", nargs="?", choices=CLIENTS)
    p.add_argument("--list", action="store_true", help="print the clients, one a line")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int)
    p.add_argument("--ca")
    p.add_argument("--tls", choices=["1.2", "1.3"], default="1.3")
    p.add_argument("--timeout", type=float, default=15.0)
    p.add_argument("--close", action="store_true")
    p.add_argument("--ready-text", default="hello")
    a = p.parse_args()
    if a.list:
        print("\n".join(CLIENTS))
        return
    if not a.client or not a.port or not a.ca:
        p.error("CLIENT, --port and --ca are required")
    try:
        if a.client == "s_client":
            s_client(a)
        elif a.client == "gnutls-cli":
            gnutls_cli(a)
        elif a.client == "curl":
            curl(a)
        elif a.client == "python":
            python_ssl(a)
        elif a.client == "go":
            program(a, go_binary())
        elif a.client == "rustls":
            program(a, rustls_binary())
        elif a.client == "jsse":
            program(a, jsse_command())
    except (OSError, RuntimeError, subprocess.SubprocessError) as e:
        verdict("error", f"{a.client}: {e}")


if __name__ == "__main__":
    main()
