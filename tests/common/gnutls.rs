//! gnutls-serv --echo as a peer; its debug log is the referee.
