//! A criterion measurement of the calling thread's CPU time (user and system), so that the
//! client's cost per byte can be compared without the server's, which runs on another thread
//! of the same process, and without the handshake and process start that whole-process
//! figures (`perf stat`, GNU time) carry. A `Stream` and a native-tls `TlsStream` both do all
//! their work on the thread that calls them, so this clock sees all of it.
//!
//! Linux's per-thread clock counts in nanoseconds (it is not sampled at the timer tick), so
//! one 8 MiB iteration, a few milliseconds of CPU, is measured to well under 1%.

use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};

/// CPU time of the thread that runs the benchmark.
pub struct ThreadCpu;

fn now() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).expect("CPU time is not negative"),
        u32::try_from(t.tv_nsec).expect("nanoseconds fit"),
    )
}

impl Measurement for ThreadCpu {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        now()
    }
    fn end(&self, start: Duration) -> Duration {
        now().saturating_sub(start)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        // Nanoseconds, as wall time's are: its formatter prints them the same way.
        static WALL: WallTime = WallTime;
        WALL.formatter()
    }
}
