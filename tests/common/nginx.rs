//! nginx (stream module) terminating TLS in front of a plain TCP echo backend.
