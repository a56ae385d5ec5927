//! One client of `--keep-open --exec CMD`: CMD runs with `sh -c`, the client's data on its
//! stdin and its stdout to the client, and the connection ends with close_notify when CMD's
//! output ends.
//!
//! Three threads per client: one copies CMD's stdout to the client, one copies the client's
//! data to CMD's stdin, and the connection's own waits for what ends the session. The
//! client's own end (its close_notify, or a bare FIN) closes CMD's stdin, and the close
//! waits for CMD to finish its answer, so a client that half-closes still gets it. A drain
//! closes the stream from outside and ends the session at once; CMD is then killed.

use std::io::{self, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, TryRecvError, bounded, never, select};
use gracetls::{CloseReport, Stream};
use log::{debug, warn};

/// What started a client's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnTrigger {
    /// CMD's stdout ended (it exited, or closed its output).
    ExecExit,
    /// The client sent close_notify; CMD's stdin was closed and its answer delivered.
    ClientCloseNotify,
    /// The client's TCP stream ended without close_notify.
    ClientEof,
    /// The server was told to stop (SIGTERM, SIGINT): the drain closed it.
    Drain,
    /// CMD could not be started, or the connection failed.
    Error,
}

impl ConnTrigger {
    pub(crate) fn name(self) -> &'static str {
        match self {
            ConnTrigger::ExecExit => "exec-exit",
            ConnTrigger::ClientCloseNotify => "peer-close-notify",
            ConnTrigger::ClientEof => "peer-eof",
            ConnTrigger::Drain => "drain",
            ConnTrigger::Error => "error",
        }
    }
}

/// How one client's session ended.
pub(crate) struct ConnEnd {
    pub(crate) trigger: ConnTrigger,
    pub(crate) report: CloseReport,
    /// CMD's exit status; `None` when it could not be started or was not reaped.
    pub(crate) status: Option<ExitStatus>,
    /// What went wrong on our side (CMD not started), if anything.
    pub(crate) error: Option<String>,
}

/// What the client side saw first.
enum ClientSide {
    CloseNotify,
    Eof,
    /// Reads ended without the client's close_notify: our own close (a drain).
    Closed,
    Failed,
}

/// Runs CMD for `stream` until the session ends; a message on `drain` ends it at once (the
/// drain closes the stream itself).
pub(crate) fn exec_session(stream: &Arc<Stream>, cmd: &str, drain: &Receiver<()>) -> ConnEnd {
    let mut child = match Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env("GRACETLS_CLIENT", client_addr(stream.target()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => return failed(stream, format!("cannot run sh -c {cmd:?}: {e}"), None),
    };
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        let error = "the command's stdin or stdout is missing".to_string();
        return failed(stream, error, Some(&mut child));
    };
    let (client_rx, output_rx) = match (
        spawn_to_cmd(Arc::clone(stream), stdin),
        spawn_to_client(Arc::clone(stream), stdout),
    ) {
        (Ok(client), Ok(output)) => (client, output),
        (Err(e), _) | (_, Err(e)) => {
            return failed(
                stream,
                format!("no thread for the client's data: {e}"),
                Some(&mut child),
            );
        }
    };
    // The client's end closes CMD's stdin and waits for CMD's answer to end; CMD's end, a
    // failure or a drain ends the session at once.
    let mut client_rx = client_rx;
    let mut client_ended = None;
    let trigger = loop {
        select! {
            recv(output_rx) -> _ => break client_ended.unwrap_or(ConnTrigger::ExecExit),
            recv(drain) -> _ => break ConnTrigger::Drain,
            recv(client_rx) -> side => {
                client_rx = never();
                match side {
                    Ok(ClientSide::CloseNotify) => client_ended = Some(ConnTrigger::ClientCloseNotify),
                    Ok(ClientSide::Eof) => client_ended = Some(ConnTrigger::ClientEof),
                    Ok(ClientSide::Failed) | Err(_) => break ConnTrigger::Error,
                    // Reads end without the client's word only after our own close.
                    Ok(ClientSide::Closed) => break ConnTrigger::Drain,
                }
            }
        }
    };
    // The drain's close_notify is answered by the client's: both may be ready at once, and
    // the drain is what ended it.
    let trigger = match (trigger, drain.try_recv()) {
        (ConnTrigger::ExecExit, _) => trigger,
        (_, Err(TryRecvError::Disconnected)) => ConnTrigger::Drain,
        _ => trigger,
    };
    debug!("{}: ending ({})", stream.target(), trigger.name());
    let report = stream.close();
    // After a drain or a failure CMD is not waited for: its output has nowhere to go.
    let grace = match trigger {
        ConnTrigger::Drain | ConnTrigger::Error => Duration::ZERO,
        _ => Duration::from_millis(500),
    };
    ConnEnd {
        trigger,
        report,
        status: reap(&mut child, grace),
        error: None,
    }
}

/// The end of a session whose CMD could not run: closed with close_notify.
fn failed(stream: &Stream, error: String, child: Option<&mut Child>) -> ConnEnd {
    warn!("{}: {error}", stream.target());
    let report = stream.close();
    ConnEnd {
        trigger: ConnTrigger::Error,
        report,
        status: child.and_then(|c| reap(c, Duration::ZERO)),
        error: Some(error),
    }
}

/// Copies CMD's stdout to the client until it ends or the stream refuses writes, then says
/// so.
fn spawn_to_client(stream: Arc<Stream>, mut stdout: ChildStdout) -> io::Result<Receiver<()>> {
    let (tx, rx) = bounded(1);
    thread::Builder::new()
        .name("gracetls-exec-out".into())
        .spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match stdout.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        warn!("{}: reading the command's output: {e}", stream.target());
                        break;
                    }
                };
                // A failed write: closed by a drain or by the client's failure, which the
                // close's report says.
                if (&*stream).write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            let _ = tx.send(());
        })?;
    Ok(rx)
}

/// Copies the client's data to CMD's stdin; says how the client's side ended, and closes
/// CMD's stdin then. When CMD stops reading, the rest is read and dropped, so the client is
/// never left blocked on us.
fn spawn_to_cmd(stream: Arc<Stream>, stdin: ChildStdin) -> io::Result<Receiver<ClientSide>> {
    let (tx, rx) = bounded(1);
    thread::Builder::new()
        .name("gracetls-exec-in".into())
        .spawn(move || {
            let mut stdin = Some(stdin);
            let mut buf = vec![0u8; 64 * 1024];
            let side = loop {
                match (&*stream).read(&mut buf) {
                    Ok(0) if stream.close_notify_received() => break ClientSide::CloseNotify,
                    Ok(0) => break ClientSide::Closed,
                    Ok(n) => {
                        if let Some(pipe) = &mut stdin {
                            if pipe.write_all(&buf[..n]).is_err() {
                                stdin = None;
                            }
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break ClientSide::Eof,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break ClientSide::Failed,
                }
            };
            // Dropping the pipe first is CMD's end of input.
            drop(stdin);
            let _ = tx.send(side);
        })?;
    Ok(rx)
}

/// CMD's exit status: waited for a moment after the session ended, then killed (its own
/// children, if any, are left to it).
fn reap(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + grace;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                return child.wait().ok();
            }
            Err(_) => return None,
        }
    }
}

/// `client 127.0.0.1:5555` -> `127.0.0.1:5555`.
fn client_addr(target: &str) -> &str {
    target.strip_prefix("client ").unwrap_or(target)
}
