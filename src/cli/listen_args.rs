//! The server mode's arguments (`--listen` and what goes with it), flattened into `Args`,
//! and the `ServerConfig` they make.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use clap::{Args as ClapArgs, ValueHint};
use gracetls::{CloseMode, ServerConfig};

use super::args::{Args, parse_timeout};

/// The options of the server mode.
#[derive(Debug, Clone, ClapArgs)]
#[command(next_help_heading = "Server mode (--listen)")]
pub(crate) struct ServerArgs {
    /// Serve instead of connecting: wait for one client on [HOST:]PORT (all IPv4 interfaces
    /// without HOST), then stdin to the client and the client to stdout, with every exit path
    /// of the client mode. Needs --cert and --key (the server's); --ca-file then requires
    /// each client to show a certificate signed by a CA in that file.
    #[arg(long, value_name = "[HOST:]PORT", requires_all = ["cert", "key"],
          conflicts_with_all = ["target", "system_roots", "insecure", "servername", "proxy", "starttls", "show_cert"],
          value_hint = ValueHint::Other)]
    pub(crate) listen: Option<String>,

    /// With --listen and --exec: serve many clients at once, each with its own CMD; on
    /// SIGTERM or SIGINT stop accepting, send close_notify to each, wait --drain-timeout,
    /// close the rest and end by the signal.
    #[arg(long, requires_all = ["listen", "exec"])]
    pub(crate) keep_open: bool,

    /// With --keep-open: run CMD (with sh -c) for each client, the client's data on its stdin
    /// and its stdout to the client; the connection closes (close_notify) when CMD's stdout
    /// ends.
    #[arg(long, value_name = "CMD", requires = "keep_open", value_hint = ValueHint::CommandString)]
    pub(crate) exec: Option<String>,

    /// With --keep-open: at most N clients at once; more wait in the kernel's queue.
    #[arg(long, value_name = "N", default_value_t = 100, requires = "keep_open",
          value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub(crate) max_conns: u32,

    /// With --keep-open: how long each client has to answer close_notify, in a drain and
    /// in every other close (in place of --close-timeout), before its connection is closed
    /// hard.
    #[arg(long, value_name = "DUR", default_value = "5s", value_parser = parse_timeout,
          requires = "keep_open", allow_hyphen_values = true, value_hint = ValueHint::Other)]
    pub(crate) drain_timeout: Duration,

    /// With --listen: close (close_notify) once no data has moved either way this long.
    #[arg(long, value_name = "DUR", value_parser = parse_timeout, requires = "listen",
          conflicts_with = "keep_open", allow_hyphen_values = true, value_hint = ValueHint::Other)]
    pub(crate) idle_timeout: Option<Duration>,
}

/// The address to bind: `PORT` alone is every IPv4 interface; port 0 takes a free one.
pub(crate) fn listen_addr(text: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    let hint = "give [HOST:]PORT, e.g. 8443, 127.0.0.1:8443 or [::1]:8443";
    text.to_socket_addrs()
        .map_err(|e| format!("--listen {text:?}: {e}; {hint}"))?
        .next()
        .ok_or_else(|| format!("--listen {text:?}: no address; {hint}"))
}

/// The server's settings from the command line. The connect timeout bounds the handshake.
pub(crate) fn server_config_from(args: &Args) -> ServerConfig {
    let mut config = ServerConfig::new()
        .with_alpn(args.alpn.iter().cloned())
        .with_handshake_timeout(args.connect_timeout)
        // With --keep-open every close may be a drain's: --drain-timeout bounds it.
        .with_close_timeout(if args.server.keep_open {
            args.server.drain_timeout
        } else {
            args.close_timeout
        })
        .with_close_mode(if args.close_wait {
            CloseMode::Wait
        } else {
            CloseMode::Fast
        })
        .with_max_connections(args.server.max_conns as usize);
    if let (Some(cert), Some(key)) = (&args.cert, &args.key) {
        config = config.with_identity(cert, key);
    }
    for ca in &args.ca_file {
        config = config.with_client_ca_file(ca);
    }
    if let Some(v) = args.tls_min {
        config = config.with_min_version(v);
    }
    if let Some(v) = args.tls_max {
        config = config.with_max_version(v);
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_alone_is_every_ipv4_interface() {
        assert_eq!(listen_addr("8443").unwrap().to_string(), "0.0.0.0:8443");
        assert_eq!(
            listen_addr("127.0.0.1:0").unwrap().to_string(),
            "127.0.0.1:0"
        );
        assert_eq!(listen_addr("[::1]:9").unwrap().to_string(), "[::1]:9");
        assert!(listen_addr("host without port").is_err());
    }
}
