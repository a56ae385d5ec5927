//! `gracetls --listen`: wait for one client, then the same session as the client mode (the
//! coordinator and its two threads), so every exit path ends the same way from this side; or,
//! with `--keep-open --exec`, many clients each with its own command (`serve.rs`).
//!
//! The accept and the handshake run on a helper thread, so a signal while no client has come
//! (or while one stalls in its handshake) ends the process at once, as a signal before the
//! session is up does in the client mode. A client whose handshake fails is named in a
//! warning and the next one is awaited: a port scan or a plain-TCP probe does not end the
//! server.

use std::net::TcpListener;
use std::process::ExitCode;
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use crossbeam_channel::select;
use gracetls::{ServerConfig, Stream};
use log::{debug, info, warn};

use super::args::Args;
use super::coordinator::Coordinator;
use super::hints::print_error;
use super::listen_args::{listen_addr, server_config_from};
use super::report::{Ended, Ending, Trigger, finish, not_connected};
use super::serve;
use super::signals::{Signal, watch_signals};

/// Runs the server mode; returns the exit code, or ends the process by a signal.
pub(crate) fn run(args: Args, started: Instant) -> ExitCode {
    let text = args.server.listen.clone().unwrap_or_default();
    let addr = match listen_addr(&text) {
        Ok(addr) => addr,
        Err(message) => {
            eprintln!("gracetls: error: {message}");
            return ExitCode::from(2);
        }
    };
    let config = server_config_from(&args);
    if let Err(e) = config.check() {
        print_error(&e);
        return ExitCode::from(2);
    }
    let signals = match watch_signals() {
        Ok(rx) => rx,
        Err(e) => {
            eprintln!("gracetls: error: cannot watch signals: {e}");
            return ExitCode::from(1);
        }
    };
    let listener = match TcpListener::bind(addr) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!(
                "gracetls: error: cannot listen on {addr}: {e}; choose another port, or stop what holds this one"
            );
            return ExitCode::from(1);
        }
    };
    let bound = listener.local_addr().map_or(addr, |a| a);
    info!("listening on {bound}");
    if args.server.keep_open {
        return serve::run(args, config, listener, signals, started);
    }

    let (accepted_tx, accepted_rx) = crossbeam_channel::bounded(1);
    let spawned = thread::Builder::new()
        .name("gracetls-accept".into())
        .spawn(move || {
            let _ = accepted_tx.send(accept_one(&listener, &config));
        });
    if let Err(e) = spawned {
        eprintln!("gracetls: error: cannot start a thread to accept: {e}");
        return ExitCode::from(1);
    }
    let stream = select! {
        recv(accepted_rx) -> result => match result {
            Ok(Ok(stream)) => Arc::new(stream),
            Ok(Err(e)) => {
                eprintln!("gracetls: error: cannot accept on {bound}: {e}");
                let report = not_connected(Ended::Closed(gracetls::Outcome::Error), None);
                let ending = Ending::unconnected(Trigger::Error, started, Instant::now());
                return finish(&args, ending, report);
            }
            Err(_) => {
                eprintln!("gracetls: error: the accept thread ended without an answer");
                return ExitCode::from(1);
            }
        },
        recv(signals) -> sig => {
            let sig = sig.unwrap_or(Signal::Int);
            debug!("{} before a client's TLS session was up: ending at once", sig.name());
            let report = not_connected(Ended::Aborted, None);
            let ending = Ending::unconnected(Trigger::Signal(sig), started, Instant::now());
            return finish(&args, ending, report);
        }
    };
    match Coordinator::new(args, Arc::clone(&stream), signals, started) {
        Ok(coordinator) => coordinator.run(),
        Err(e) => {
            eprintln!(
                "gracetls: error: cannot start the stdin and stdout threads: {e}; the connection was closed"
            );
            ExitCode::from(1)
        }
    }
}

/// Accepts until one client completes the handshake; the listener is dropped with it, so
/// later clients are refused.
fn accept_one(listener: &TcpListener, config: &ServerConfig) -> std::io::Result<Stream> {
    loop {
        let (socket, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            // Out of descriptors, a connection reset while queued: the next may work.
            Err(e) if is_transient(&e) => {
                warn!("accept: {e}; waiting for the next client");
                thread::sleep(std::time::Duration::from_millis(100));
                continue;
            }
            Err(e) => return Err(e),
        };
        match Stream::accept(config, socket) {
            Ok(stream) => return Ok(stream),
            Err(e) => warn!(
                "{peer}: {}; waiting for the next client",
                gracetls::unversioned::with_causes(&e)
            ),
        }
    }
}

/// Errors of one `accept` that say nothing about the next.
fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    ) || e.raw_os_error().is_some_and(|n| n == 23 || n == 24) // ENFILE, EMFILE
}
