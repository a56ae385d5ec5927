//! The two threads that move data: stdin to the server, the server to stdout. Each tells the
//! coordinator only how its side ended, never the data.

use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::thread;

use crossbeam_channel::{Receiver, unbounded};
use gracetls::{Error, Stream};
use log::{debug, warn};

use super::crlf::Crlf;
use super::lines::{EscapeFilter, LineMatcher};

/// How the stdin side ended; its data went to the connection.
pub(crate) enum Input {
    Eof,
    Escape,
}

/// How the stdout side saw the connection end; its data went to stdout.
pub(crate) enum Output {
    PeerCloseNotify,
    PeerEof,
    Failed(Error),
    QuitLine,
    /// The reader of stdout went away (EPIPE): a normal end, like `head`.
    StdoutClosed,
    /// Writing stdout failed otherwise (ENOSPC, EIO): the server's data is being lost.
    StdoutFailed(io::Error),
    /// Every event was handled and stdout flushed.
    Drained,
}

/// Reads stdin in chunks and writes them to the server, taking out the escape command and,
/// with `crlf`, sending each bare LF as CRLF. Once the close has begun, writes fail and the
/// thread ends: nothing read after it is sent.
pub(crate) fn spawn_stdin(
    stream: Arc<Stream>,
    escape: Option<u8>,
    crlf: bool,
) -> io::Result<Receiver<Input>> {
    let (tx, rx) = unbounded();
    thread::Builder::new()
        .name("gracetls-stdin".into())
        .spawn(move || {
            let mut filter = escape.map(EscapeFilter::new);
            let mut crlf = crlf.then(Crlf::default);
            let mut translated = Vec::new();
            let mut stdin = io::stdin().lock();
            let mut buf = vec![0u8; 64 * 1024];
            let mut out = Vec::with_capacity(buf.len());
            let end = loop {
                let n = match stdin.read(&mut buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        warn!("reading stdin failed ({e}); treating it as end of input");
                        0
                    }
                };
                out.clear();
                let escaped = match (&mut filter, n) {
                    (Some(f), 0) => f.finish(&mut out),
                    (Some(f), _) => f.feed(&buf[..n], &mut out),
                    (None, _) => false,
                };
                let mut data = if filter.is_some() {
                    &out[..]
                } else {
                    &buf[..n]
                };
                if let Some(crlf) = &mut crlf {
                    translated.clear();
                    crlf.feed(data, &mut translated);
                    data = &translated[..];
                }
                if !data.is_empty() && (&*stream).write_all(data).is_err() {
                    // The close began, or the connection failed: the output side reports which.
                    return;
                }
                if escaped {
                    debug!("escape command read");
                    break Input::Escape;
                }
                if n == 0 {
                    break Input::Eof;
                }
            };
            let _ = tx.send(end);
        })?;
    Ok(rx)
}

/// Reads the server's data and writes it to stdout, watching for the quit line, and reports
/// how the read side ended.
pub(crate) fn spawn_output(
    stream: Arc<Stream>,
    mut quit: Option<LineMatcher>,
) -> io::Result<Receiver<Output>> {
    let (tx, rx) = unbounded();
    thread::Builder::new()
        .name("gracetls-stdout".into())
        .spawn(move || {
            // Unbuffered, one write per chunk: `Stdout` is line-buffered, which splits binary data
            // into two writes per chunk (up to the last newline, then the rest).
            let mut stdout: Box<dyn Write> = match io::stdout().as_fd().try_clone_to_owned() {
                Ok(fd) => Box::new(std::fs::File::from(fd)),
                Err(_) => Box::new(io::stdout().lock()),
            };
            // After the quit line or a closed stdout, the rest is read and dropped so the
            // connection never waits on us.
            let mut discard = false;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let note = match (&*stream).read(&mut buf) {
                    Ok(0) => {
                        if stream.close_notify_received() {
                            let _ = tx.send(Output::PeerCloseNotify);
                        }
                        break;
                    }
                    Ok(_) if discard => None,
                    Ok(n) => {
                        let data = &buf[..n];
                        let end = quit.as_mut().and_then(|q| q.feed(data));
                        let shown = &data[..end.unwrap_or(data.len())];
                        match stdout.write_all(shown).and_then(|()| stdout.flush()) {
                            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                                debug!("stdout closed: {e}");
                                discard = true;
                                Some(Output::StdoutClosed)
                            }
                            Err(e) => {
                                discard = true;
                                Some(Output::StdoutFailed(e))
                            }
                            Ok(()) if end.is_some() => {
                                discard = true;
                                Some(Output::QuitLine)
                            }
                            Ok(()) => None,
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                        let _ = tx.send(Output::PeerEof);
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => None,
                    Err(e) => {
                        let _ = tx.send(Output::Failed(Error::from_io(
                            e,
                            gracetls::error::Operation::Read,
                            stream.target(),
                        )));
                        break;
                    }
                };
                if let Some(note) = note {
                    let _ = tx.send(note);
                }
            }
            let _ = stdout.flush();
            let _ = tx.send(Output::Drained);
        })?;
    Ok(rx)
}
