#!/usr/bin/env python3
"""TLS clients for the server-side tests (tests/server.rs): Python `ssl` with
suppress_ragged_eofs=False, so a close_notify (recv returns b"") is told from a bare TCP
FIN (SSLEOFError).

Starts N clients on threads, each behaving as --behave says, prints `READY N` once every
client has done its setup (handshake, garbage, partial hello), then one JSON line per client
when it ends, then `DONE`. Every socket call is bounded by --timeout.

Behaviours:
  polite     send --send bytes, read until the server's end, answer close_notify with ours
  first      send --send bytes, send close_notify first, then read until the server's end
  truncate   send --send bytes, then close the TCP connection without close_notify
  silent     read until the server's end, never send close_notify, hold the socket --hold s
  noread     never read: hold the connection --hold seconds, then close it bare
  garbage    send an HTTP request instead of a ClientHello, read until the end
  stall      send half a TLS record header and nothing more, hold --hold seconds
"""

import argparse
import json
import socket
import ssl
import sys
import threading
import time

lock = threading.Lock()


def emit(line):
    with lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def read_to_end(tls):
    """Reads until the server's end: (verdict, bytes received)."""
    got = 0
    while True:
        try:
            data = tls.recv(65536)
        except ssl.SSLEOFError:
            return "eof", got
        except ssl.SSLError as e:
            return "tls-error: %s" % e.reason, got
        except socket.timeout:
            return "timeout", got
        except OSError as e:
            return "os-error: %s" % e.__class__.__name__, got
        if not data:
            return "close_notify", got
        got += len(data)


def client(args, ctx, i, ready):
    result = {"i": i}
    sock = None
    try:
        sock = socket.create_connection((args.host, args.port), timeout=args.timeout)
        result["local_port"] = sock.getsockname()[1]
        if args.behave == "garbage":
            sock.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
            ready.release()
            data, got = b"", 0
            try:
                while True:
                    data = sock.recv(65536)
                    if not data:
                        break
                    got += len(data)
                result["verdict"] = "closed"
            except OSError as e:
                result["verdict"] = "os-error: %s" % e.__class__.__name__
            result["received"] = got
            return
        if args.behave == "stall":
            sock.sendall(b"\x16\x03")
            ready.release()
            end = time.monotonic() + args.hold
            try:
                while time.monotonic() < end:
                    sock.settimeout(max(0.01, end - time.monotonic()))
                    if not sock.recv(65536):
                        break
                result["verdict"] = "closed"
            except socket.timeout:
                result["verdict"] = "held"
            except OSError as e:
                result["verdict"] = "os-error: %s" % e.__class__.__name__
            return
        tls = ctx.wrap_socket(sock, server_hostname="localhost", suppress_ragged_eofs=False)
        sock = tls
        result["version"] = tls.version()
        if args.send:
            tls.sendall(args.fill.encode() * args.send)
        if args.behave == "first":
            ready.release()
            raw = tls.unwrap()  # our close_notify, and the server's back
            result["verdict"] = "close_notify"
            result["received"] = 0
            sock = raw
            return
        if args.behave == "truncate":
            ready.release()
            tls.shutdown(socket.SHUT_RDWR)
            result["verdict"] = "truncated"
            return
        if args.behave == "noread":
            ready.release()
            time.sleep(args.hold)
            result["verdict"] = "held"
            return
        ready.release()
        verdict, got = read_to_end(tls)
        result["verdict"] = verdict
        result["received"] = got
        if verdict == "close_notify":
            if args.behave == "polite":
                try:
                    sock = tls.unwrap()
                    result["answered"] = True
                except (OSError, ValueError) as e:
                    result["answered"] = "failed: %s" % e.__class__.__name__
            elif args.behave == "silent":
                time.sleep(args.hold)
    except Exception as e:  # every client reports, whatever happened
        result["verdict"] = "error: %s: %s" % (e.__class__.__name__, e)
        ready.release()
    finally:
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass
        emit(json.dumps(result))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--ca", required=True)
    p.add_argument("--tls", default="")
    p.add_argument("--cert", help="a client certificate (PEM), with --key")
    p.add_argument("--key")
    p.add_argument("--behave", default="polite")
    p.add_argument("-n", type=int, default=1)
    p.add_argument("--send", type=int, default=0)
    p.add_argument("--fill", default="x", help="the byte --send repeats")
    p.add_argument("--hold", type=float, default=5.0)
    p.add_argument("--timeout", type=float, default=60.0)
    args = p.parse_args()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(args.ca)
    if args.cert:
        ctx.load_cert_chain(args.cert, args.key)
    if args.tls == "1.2":
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    elif args.tls == "1.3":
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    threading.stack_size(256 * 1024)
    ready = threading.Semaphore(0)
    threads = []
    for i in range(args.n):
        t = threading.Thread(target=client, args=(args, ctx, i, ready), daemon=True)
        t.start()
        threads.append(t)
    for _ in range(args.n):
        ready.acquire()
    emit("READY %d" % args.n)
    for t in threads:
        t.join()
    emit("DONE")


if __name__ == "__main__":
    main()
