//! The signals that end a session gracefully: heard on a channel, and, once the goodbye is
//! sent, the process ends by the same signal.

use std::io::{self, Write};
use std::thread;

use crossbeam_channel::{Receiver, unbounded};

/// A signal that ends a connection gracefully.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// SIGINT (Ctrl-C), number 2.
    Int,
    /// SIGTERM, number 15.
    Term,
    /// SIGHUP, number 1.
    Hup,
    /// SIGQUIT (Ctrl-\\), number 3.
    Quit,
}

impl Signal {
    /// The signal's number on Linux.
    pub(crate) fn number(self) -> i32 {
        match self {
            Signal::Hup => 1,
            Signal::Int => 2,
            Signal::Quit => 3,
            Signal::Term => 15,
        }
    }

    /// The signal for a number, if it is one of those above.
    pub(crate) fn from_number(n: i32) -> Option<Signal> {
        match n {
            1 => Some(Signal::Hup),
            2 => Some(Signal::Int),
            3 => Some(Signal::Quit),
            15 => Some(Signal::Term),
            _ => None,
        }
    }

    /// `SIGINT`, `SIGTERM`, `SIGHUP` or `SIGQUIT`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Signal::Quit => "SIGQUIT",
            Signal::Int => "SIGINT",
            Signal::Term => "SIGTERM",
            Signal::Hup => "SIGHUP",
        }
    }
}

pub(crate) fn watch_signals() -> io::Result<Receiver<Signal>> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP, SIGQUIT])?;
    let (tx, rx) = unbounded();
    thread::Builder::new()
        .name("gracetls-signals".into())
        .spawn(move || {
            for number in signals.forever() {
                if let Some(sig) = Signal::from_number(number) {
                    if tx.send(sig).is_err() {
                        break;
                    }
                }
            }
        })?;
    Ok(rx)
}

/// Ends the process by `sig` with its default disposition, as if it had never been caught,
/// so the parent (a shell loop) sees death by that signal.
pub(crate) fn die(sig: Signal) -> ! {
    // Not stdout: the output thread may hold its lock in a blocked write, and it flushes
    // after every write anyway.
    let _ = io::stderr().lock().flush();
    let _ = signal_hook::low_level::emulate_default_handler(sig.number());
    std::process::exit(128 + sig.number())
}
