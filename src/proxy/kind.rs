//! The kinds of proxy, as errors and messages name them.

/// Which protocol a [`Proxy`](crate::Proxy) speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyKind {
    /// An HTTP proxy, asked with `CONNECT host:port` (RFC 9110 §9.3.6).
    Http,
    /// A SOCKS5 proxy (RFC 1928), with user name and password (RFC 1929) when given.
    Socks5,
}

impl ProxyKind {
    /// How messages name a proxy of this kind: `proxy` or `SOCKS5 proxy`.
    pub(crate) fn label(self) -> &'static str {
        match self {
            ProxyKind::Http => "proxy",
            ProxyKind::Socks5 => "SOCKS5 proxy",
        }
    }
}
