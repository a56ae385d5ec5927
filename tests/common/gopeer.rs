//! The Go crypto/tls echo peer (tests/peers/goecho), built by the test run.
