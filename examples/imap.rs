//! An IMAP session with the `imap` crate over [`gracetls::Stream::connect_starttls`]:
//! STARTTLS, LOGIN, SELECT INBOX, LOGOUT, then the TLS close (close_notify) on a second
//! handle to the stream. Exits 0 only on a clean close.
//!
//! ```text
//! cargo run --example imap -- mail.example.com:143 USER PASSWORD [CA.pem]
//! ```

use std::error::Error;

use gracetls::starttls::{Protocol, Starttls};
use gracetls::{Config, Outcome, Stream};

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let ([target, user, password], ca) = match &args[..] {
        [t, u, p] => ([t, u, p], None),
        [t, u, p, ca] => ([t, u, p], Some(ca)),
        _ => return Err("usage: imap HOST:PORT USER PASSWORD [CA.pem]".into()),
    };
    let config = ca.map_or_else(Config::new, |ca| Config::new().with_ca_file(ca));
    let stream = Stream::connect_starttls(&config, target, &Starttls::new(Protocol::Imap))?;
    // After STARTTLS the server sends no second greeting: the client starts with LOGIN.
    let mut session = imap::Client::new(stream.try_clone()?)
        .login(user, password)
        .map_err(|(e, _)| e)?;
    let inbox = session.select("INBOX")?;
    println!("INBOX: {} messages", inbox.exists);
    session.logout()?;
    let report = stream.close();
    println!("{report:?}");
    if report.outcome() != Outcome::Clean {
        return Err(format!("not a clean close: {:?}", report.outcome()).into());
    }
    Ok(())
}
