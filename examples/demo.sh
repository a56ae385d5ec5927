#!/usr/bin/env bash
# The reference problem, live: the two situations from "How to gracefully shut down a Boost.Asio
# SSL client?" (the server says quit; the user exits while a read is pending), played by the
# gracetls client against the bundled demo server, with both sides' verdicts.
# Usage: examples/demo.sh TARGET_DIR   (where gracetls and examples/demo_server were built)
set -euo pipefail

bin="$1/gracetls"
server="$1/examples/demo_server"
work=$(mktemp -d)
server_pid=""
client_pid=""
cleanup() {
    exec 3>&- 2>/dev/null || true
    [ -n "$client_pid" ] && kill "$client_pid" 2>/dev/null || true
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# Waits (at most 5 s) until file $1 contains the fixed string $2.
wait_for() {
    for _ in $(seq 100); do
        grep -qF -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "demo: timed out waiting for '$2' in $1" >&2
    return 1
}

"$server" --ca-out "$work/ca.pem" --port-file "$work/port" >"$work/server.log" 2>&1 &
server_pid=$!
wait_for "$work/server.log" "listening on"
port=$(cat "$work/port")

# Starts the client with stdin from a FIFO held open on fd 3, so stdin EOF does not end it.
start_client() {
    rm -f "$work/in"
    mkfifo "$work/in"
    "$bin" --ca-file "$work/ca.pem" --report text "$@" "localhost:$port" \
        <"$work/in" >"$work/out" 2>"$work/err" &
    client_pid=$!
    exec 3>"$work/in"
}

finish_client() {
    local rc=0
    wait "$client_pid" || rc=$?
    client_pid=""
    exec 3>&-
    echo "  client stdout:   $(tr '\n' ' ' <"$work/out")"
    echo "  client report:   $(cat "$work/err")"
    echo "  client exit:     $rc"
    wait_for "$work/server.log" "[conn $1] client"
    echo "  server verdict:  $(grep "conn $1\]" "$work/server.log" | tail -n 1 | sed 's/^demo_server: //')"
    echo
}

echo "== 1. The server says quit: the client sends 'bye', the server answers 'quit', --quit-on quit closes"
start_client --quit-on quit
printf 'hello\nbye\n' >&3
finish_client 1

echo "== 2. The user exits while a read is pending: '~.' typed while the reader is blocked"
# A FIFO stands in for the terminal here, so the escape is asked for explicitly.
start_client --escape '~'
printf 'hello\n' >&3
wait_for "$work/out" "hello"
printf '~.\n' >&3
finish_client 2

echo "== 2b. The same with Ctrl-C (SIGINT): goodbye first, then the process ends by SIGINT (130)"
start_client
printf 'hello\n' >&3
wait_for "$work/out" "hello"
kill -INT "$client_pid"
finish_client 3

echo "Every server verdict above should say CLEAN."
if grep -q "WITHOUT\|ERROR" "$work/server.log"; then
    echo "demo: the server saw a close without close_notify" >&2
    exit 1
fi
