#!/usr/bin/env bash
# The reference problem, live: the situations from "How to gracefully shut down a Boost.Asio
# SSL client?" (the server says quit; the user exits while a read is pending), played by the
# gracetls client against the server of that question, `openssl s_server -state`. The verdicts
# are OpenSSL's own: what s_server logged receiving and sending, not anything gracetls says.
# Usage: examples/demo.sh [GRACETLS]   (default: gracetls on PATH). Needs openssl and Linux.
set -euo pipefail

bin="${1:-gracetls}"
work=$(mktemp -d)
server_pid=""
client_pid=""
cleanup() {
    local rc=$?
    set +e
    exec 3>&- 4>&-
    # On a failure, what the last client and server said.
    if [ "$rc" = 1 ]; then
        for f in err server.log; do
            [ -s "$work/$f" ] && { echo "demo: the last $f:"; cat "$work/$f"; } >&2
        done
    fi
    # Both end within seconds of SIGTERM (gracetls: its close timeout); waited for, so that
    # none is left a zombie where nothing reaps orphans.
    for pid in $client_pid $server_pid; do
        kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    done
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
# The servers and clients run in the background, where an interrupt does not reach them.
trap 'exit 130' INT
trap 'exit 143' TERM
# A write to a closed pipe: either the client ended early (its stdin FIFO has no reader), a
# failure of the demo, or whoever reads the demo's output stopped. Trapped rather than a death
# by SIGPIPE, which would skip the cleanup. (A trapped signal is back to its default in the
# programs started from here; an ignored one would stay ignored.)
on_broken_pipe() {
    if [ -n "$client_pid" ] && ! kill -0 "$client_pid" 2>/dev/null; then
        echo "demo: the client ended early" >&5
        exit 1
    fi
    exit 141
}
trap on_broken_pipe PIPE
# The demo's own errors, also from where stderr is silenced.
exec 5>&2

command -v openssl >/dev/null || {
    echo "demo: needs the openssl command (Debian package openssl; make build-deps installs it)" >&2
    exit 1
}

# Waits (at most 10 s) until file $1 has a line that is exactly $2.
wait_for_line() {
    for _ in $(seq 200); do
        grep -qxF -- "$2" "$1" 2>/dev/null && return 0
        if [ -n "$client_pid" ] && ! kill -0 "$client_pid" 2>/dev/null; then
            echo "demo: the client ended early" >&5
            return 1
        fi
        sleep 0.05
    done
    echo "demo: timed out waiting for the line '$2' in $(basename "$1")" >&5
    return 1
}

# Waits (at most 10 s) until process $1, a child of this shell, has ended; sets $status to its
# exit status.
wait_exit() {
    for _ in $(seq 200); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$1" 2>/dev/null; then
        echo "demo: process $1 still running after 10 s" >&5
        return 1
    fi
    status=0
    wait "$1" 2>/dev/null || status=$?
}

# A throw-away CA and a certificate for localhost and 127.0.0.1 that it signs.
cat >"$work/req.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = gracetls demo
EOF
pki() {
    openssl req -x509 -config "$work/req.cnf" -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
        -nodes -days 1 "$@" >>"$work/pki.log" 2>&1 || {
        cat "$work/pki.log" >&2
        exit 1
    }
}
pki -subj "/CN=gracetls demo CA" -keyout "$work/ca.key" -out "$work/ca.pem" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign
pki -subj "/CN=localhost" -keyout "$work/key.pem" -out "$work/cert.pem" \
    -CA "$work/ca.pem" -CAkey "$work/ca.key" \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -addext basicConstraints=CA:FALSE

# The port of the socket process $1 listens on, read from /proc: s_server binds port 0 and,
# with -brief, does not print it. At most 10 s.
listening_port() {
    local inodes hex
    for _ in $(seq 100); do
        inodes=$(for fd in /proc/"$1"/fd/*; do readlink "$fd"; done 2>/dev/null |
            sed -n 's/^socket:\[\([0-9]*\)\]$/\1/p' | tr '\n' ' ')
        hex=$(awk -v inodes=" $inodes" \
            '$4 == "0A" && index(inodes, " " $10 " ") { split($2, a, ":"); print a[2]; exit }' \
            /proc/net/tcp)
        if [ -n "$hex" ]; then
            echo $((16#$hex))
            return 0
        fi
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    echo "demo: openssl s_server is not listening:" >&2
    cat "$work/server.log" >&2
    return 1
}

# One s_server per scenario, for one connection (-naccept 1), its stdin a FIFO held open on
# fd 4: what the script writes there, the server sends. -brief keeps it from reading a line
# that starts with q as its own command (close the connection); -state logs every alert.
start_server() {
    rm -f "$work/server.in"
    mkfifo "$work/server.in"
    openssl s_server -accept 127.0.0.1:0 -naccept 1 -cert "$work/cert.pem" -key "$work/key.pem" \
        -brief -state <"$work/server.in" >"$work/server.log" 2>&1 &
    server_pid=$!
    exec 4>"$work/server.in"
    port=$(listening_port "$server_pid")
}

# Starts the client with stdin from a FIFO held open on fd 3, so stdin EOF does not end it.
start_client() {
    rm -f "$work/in"
    mkfifo "$work/in"
    "$bin" --ca-file "$work/ca.pem" --report text "$@" "localhost:$port" \
        <"$work/in" >"$work/out" 2>"$work/err" &
    client_pid=$!
    exec 3>"$work/in"
}

# File $1 on one line, or (nothing).
one_line() {
    if [ -s "$1" ]; then tr '\n' ' ' <"$1"; else echo "(nothing)"; fi
}

failed=0
# Shows what the client printed and how it ended, then, once s_server has ended, what it
# logged about the close. $1: the client's expected exit code; $2: CLEAN or NOT CLEAN, the
# expected verdict.
finish() {
    local rc server_rc got sent errors summary verdict
    if [ -n "$client_pid" ]; then
        wait_exit "$client_pid"
        client_status=$status
        client_pid=""
    fi
    rc=$client_status
    exec 3>&-
    wait_exit "$server_pid"
    server_rc=$status
    server_pid=""
    exec 4>&-
    echo "  client stdout:   $(one_line "$work/out")"
    echo "  client report:   $(one_line "$work/err")"
    echo "  client exit:     $rc"
    echo "  server log:      $(grep -E '^SSL3 alert|:error:' "$work/server.log" |
        sed '2,$s/^/                   /' || echo '(no alert, no error)')"
    got="no close_notify received"
    grep -qxF "SSL3 alert read:warning:close notify" "$work/server.log" &&
        got="received close_notify"
    sent="sent no close_notify"
    grep -qxF "SSL3 alert write:warning:close notify" "$work/server.log" &&
        sent="answered with close_notify"
    # OpenSSL's error lines: ...:error:CODE:LIBRARY:FUNCTION:REASON:FILE:LINE:
    errors=$(awk -F: '/:error:/ { printf "%s%s", sep, $6; sep = ", " }' "$work/server.log")
    summary="$got, $sent, ${errors:-no error}"
    verdict="NOT CLEAN"
    [ "$summary" = "received close_notify, answered with close_notify, no error" ] &&
        verdict="CLEAN"
    echo "  server verdict:  $summary: $verdict (s_server exit $server_rc)"
    echo
    if [ "$rc" != "$1" ] || [ "$verdict" != "$2" ]; then
        echo "demo: expected client exit $1 and $2" >&2
        failed=1
    fi
}

echo "gracetls against openssl s_server -state, one server per scenario; the verdicts are what"
echo "s_server logged. gracetls sends close_notify and leaves without waiting for the answer"
echo "(--close-wait waits): its report says whether the answer arrived first."
echo
echo "== 1. The server says quit: the client sends 'bye', the server answers 'quit', --quit-on quit closes"
start_server
start_client --quit-on quit
printf 'hello\nbye\n' >&3
wait_for_line "$work/server.log" "bye"
printf 'quit\n' >&4
finish 0 CLEAN

echo "== 2. The user exits while a read is pending: '~.' typed while the reader is blocked"
start_server
# A FIFO stands in for the terminal here, so the escape is asked for explicitly.
start_client --escape '~'
printf 'hello\n' >&3
wait_for_line "$work/server.log" "hello"
printf 'hi\n' >&4
wait_for_line "$work/out" "hi"
printf '~.\n' >&3
finish 0 CLEAN

echo "== 2b. The same with Ctrl-C (SIGINT): goodbye first, then the process ends by SIGINT (130)"
start_server
start_client
printf 'hello\n' >&3
wait_for_line "$work/server.log" "hello"
printf 'hi\n' >&4
wait_for_line "$work/out" "hi"
kill -INT "$client_pid"
finish 130 CLEAN

echo "== For comparison, a bare close: the client is killed (SIGKILL) and the kernel closes TCP"
start_server
start_client
printf 'hello\n' >&3
wait_for_line "$work/server.log" "hello"
# bash reports a job killed by a signal on its stderr: here that is the point, not news.
{
    kill -KILL "$client_pid"
    wait_exit "$client_pid"
} 2>/dev/null
client_status=$status
client_pid=""
finish 137 "NOT CLEAN"

if [ "$failed" != 0 ]; then
    echo "demo: a verdict above is not the expected one" >&2
    exit 1
fi
echo "OpenSSL received gracetls's close_notify and answered it in 1, 2 and 2b: CLEAN."
echo "The bare close, as the question describes it, is what s_server reports as an error."
