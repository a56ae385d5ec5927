//! A delaying TCP proxy for the latency fault tests.
