//! An in-process echo peer on the rustls crate.
