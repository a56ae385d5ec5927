//! A plain TCP listener run by the test itself, for servers that must stay silent.

use super::*;

/// A plain TCP listener on 127.0.0.1 run by the test itself (for "silent"
/// and "not TLS" servers). Accepted sockets are delivered over a channel.
pub struct TestListener {
    pub port: u16,
    accepted: Receiver<TcpStream>,
}

impl TestListener {
    pub fn start() -> TestListener {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = l.local_addr().unwrap().port();
        let (tx, rx) = mpsc::channel();
        // The thread ends when the test drops the receiver and a further
        // connection comes, or with the test binary; it holds only a socket.
        thread::spawn(move || {
            for s in l.incoming() {
                match s {
                    Ok(s) => {
                        if tx.send(s).is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            }
        });
        TestListener { port, accepted: rx }
    }

    /// Waits for the next accepted connection.
    pub fn accept(&self, timeout: Duration, ctx: &[&dyn Dump]) -> TcpStream {
        self.accepted.recv_timeout(timeout).unwrap_or_else(|e| {
            panic!(
                "the test listener on port {} accepted nothing within {timeout:?} ({e}){}",
                self.port,
                dumps(ctx)
            )
        })
    }
}

/// Reads at least one byte (e.g. the ClientHello) from `s`, bounded.
pub fn read_some(s: &mut TcpStream, timeout: Duration) -> io::Result<Vec<u8>> {
    s.set_read_timeout(Some(timeout))?;
    let mut buf = vec![0u8; 16 * 1024];
    let n = s.read(&mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

/// Each thread's voluntary context switches (`/proc/PID/task/TID/status`), by thread id.
pub fn voluntary_ctxt_switches(pid: u32) -> io::Result<std::collections::BTreeMap<u64, u64>> {
    let mut by_thread = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let entry = entry?;
        let Some(tid) = entry
            .file_name()
            .to_str()
            .and_then(|t| t.parse::<u64>().ok())
        else {
            continue;
        };
        let status = match std::fs::read_to_string(entry.path().join("status")) {
            Ok(s) => s,
            // A thread may end between read_dir and the read.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for line in status.lines() {
            if let Some(v) = line.strip_prefix("voluntary_ctxt_switches:") {
                by_thread.insert(tid, v.trim().parse::<u64>().map_err(io::Error::other)?);
            }
        }
    }
    Ok(by_thread)
}

/// How often the threads woke up between two [`voluntary_ctxt_switches`] readings: each
/// thread's growth, a thread that started counted from zero, and a thread that ended as one
/// wake-up (its count is gone with it).
pub fn wakeups(
    before: &std::collections::BTreeMap<u64, u64>,
    after: &std::collections::BTreeMap<u64, u64>,
) -> u64 {
    let grown: u64 = after
        .iter()
        .map(|(tid, n)| n.saturating_sub(before.get(tid).copied().unwrap_or(0)))
        .sum();
    let ended = before.keys().filter(|tid| !after.contains_key(tid)).count() as u64;
    grown + ended
}

/// How many threads this process has (`/proc/self/task`).
pub fn task_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .count()
}

/// Whether a thread named `name` is asleep (state `S`, blocked in a system call).
pub fn thread_sleeping(name: &str) -> bool {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return false;
    };
    tasks.flatten().any(|task| {
        let path = task.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        let state = stat.rsplit_once(") ").map(|(_, rest)| rest.chars().next());
        comm.trim() == name && state == Some(Some('S'))
    })
}

/// Waits, bounded and without sleeping, for `cond`.
pub fn spin_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        thread::yield_now();
    }
    cond()
}

/// How many file descriptors this process has open (`/proc/self/fd`).
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

/// Waits on a channel with a bound, panicking with `what` and `ctx`.
pub fn recv_within<T>(rx: &Receiver<T>, timeout: Duration, what: &str, ctx: &[&dyn Dump]) -> T {
    match rx.recv_timeout(timeout) {
        Ok(v) => v,
        Err(e) => panic!("{what}: nothing within {timeout:?} ({e}){}", dumps(ctx)),
    }
}
