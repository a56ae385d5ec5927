//! The TLS session a [`Stream`](crate::Stream) holds: native-tls's for a client and, where
//! native-tls runs on OpenSSL, OpenSSL's own for a server, because native-tls builds its
//! OpenSSL server from a profile that turns TLS 1.3 off and cannot ask for a client
//! certificate. Both run over the same in-memory transport and answer the same calls.

use std::io::{self, Read, Write};

/// A TLS session over `S`, client or server.
pub(crate) enum TlsStream<S> {
    Native(native_tls::TlsStream<S>),
    #[cfg(tls_openssl)]
    OpenSsl(openssl::ssl::SslStream<S>),
}

impl<S> From<native_tls::TlsStream<S>> for TlsStream<S> {
    fn from(tls: native_tls::TlsStream<S>) -> Self {
        TlsStream::Native(tls)
    }
}

impl<S: Read + Write> TlsStream<S> {
    pub(crate) fn get_ref(&self) -> &S {
        match self {
            TlsStream::Native(tls) => tls.get_ref(),
            #[cfg(tls_openssl)]
            TlsStream::OpenSsl(tls) => tls.get_ref(),
        }
    }

    pub(crate) fn get_mut(&mut self) -> &mut S {
        match self {
            TlsStream::Native(tls) => tls.get_mut(),
            #[cfg(tls_openssl)]
            TlsStream::OpenSsl(tls) => tls.get_mut(),
        }
    }

    /// Makes close_notify, as native-tls's `shutdown` does: `Ok` also when the peer's came
    /// first.
    pub(crate) fn shutdown(&mut self) -> io::Result<()> {
        match self {
            TlsStream::Native(tls) => tls.shutdown(),
            #[cfg(tls_openssl)]
            TlsStream::OpenSsl(tls) => match tls.shutdown() {
                Ok(_) => Ok(()),
                Err(e) if e.code() == openssl::ssl::ErrorCode::ZERO_RETURN => Ok(()),
                Err(e) => Err(e.into_io_error().unwrap_or_else(io::Error::other)),
            },
        }
    }

    /// The ALPN protocol agreed on, if any (native-tls's signature, for both).
    pub(crate) fn negotiated_alpn(&self) -> Result<Option<Vec<u8>>, native_tls::Error> {
        match self {
            TlsStream::Native(tls) => tls.negotiated_alpn(),
            #[cfg(tls_openssl)]
            TlsStream::OpenSsl(tls) => Ok(tls.ssl().selected_alpn_protocol().map(<[u8]>::to_vec)),
        }
    }

    /// The peer's certificate (native-tls's signature, for both).
    pub(crate) fn peer_certificate(
        &self,
    ) -> Result<Option<native_tls::Certificate>, native_tls::Error> {
        match self {
            TlsStream::Native(tls) => tls.peer_certificate(),
            #[cfg(tls_openssl)]
            TlsStream::OpenSsl(tls) => match tls.ssl().peer_certificate() {
                None => Ok(None),
                Some(cert) => {
                    let der = cert.to_der().unwrap_or_default();
                    native_tls::Certificate::from_der(&der).map(Some)
                }
            },
        }
    }
}

impl<S: Read + Write> Read for TlsStream<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            TlsStream::Native(tls) => tls.read(buf),
            #[cfg(tls_openssl)]
            TlsStream::OpenSsl(tls) => tls.read(buf),
        }
    }
}

impl<S: Read + Write> Write for TlsStream<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            TlsStream::Native(tls) => tls.write(buf),
            #[cfg(tls_openssl)]
            TlsStream::OpenSsl(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            TlsStream::Native(tls) => tls.flush(),
            #[cfg(tls_openssl)]
            TlsStream::OpenSsl(tls) => tls.flush(),
        }
    }
}
