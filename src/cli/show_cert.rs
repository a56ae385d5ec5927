//! `--show-cert`: the server's certificate as PEM on stdout, then a clean close, for scripts
//! that read it (`gracetls --show-cert host:443 | openssl x509 -noout -enddate`), as
//! `openssl s_client -showcerts` is used. stdin is not read, so nothing of it is sent and the
//! command does not wait for it. Only the leaf: native-tls gives no chain.

use std::io::{self, Write as _};
use std::process::ExitCode;
use std::time::Instant;

use gracetls::{Outcome, Stream};

use super::args::Args;
use super::report::{Closed, Ended, Ending, Trigger, finish};

/// Prints the certificate, closes with close_notify (bounded by `--close-timeout`), reports.
pub(crate) fn show_cert(args: &Args, stream: &Stream, started: Instant) -> ExitCode {
    let trigger_at = Instant::now();
    let failure = match stream.session().peer_certificate() {
        Some(cert) => write_stdout(cert.to_pem().as_bytes())
            .err()
            .map(|e| format!("cannot write the certificate to stdout: {e}")),
        None => Some(format!(
            "{} sent no certificate that could be read; nothing to show",
            stream.target()
        )),
    };
    let mut report = Closed::from(&stream.close());
    if let Some(message) = failure {
        eprintln!("gracetls: error: {message}; the connection was closed");
        report.outcome = Ended::Closed(Outcome::Error);
        report.error.get_or_insert(message);
    }
    let ending = Ending {
        trigger: Trigger::ShowCert,
        end: None,
        session: Some(stream.session()),
        started,
        trigger_at,
    };
    finish(args, ending, report)
}

/// A reader that has gone (`| head -1`) is no failure: it has read what it wanted.
fn write_stdout(pem: &[u8]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(pem).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}
