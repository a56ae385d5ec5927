//! Output of a child process collected by reader threads, waitable by pattern, and the `Dump` that failure messages are built from.

use super::*;

/// Output of a child collected by reader threads, waitable by pattern.
#[derive(Clone, Default)]
pub struct Capture {
    inner: Arc<(Mutex<CapState>, Condvar)>,
}

#[derive(Default)]
struct CapState {
    buf: Vec<u8>,
    /// Number of attached readers still running.
    open: usize,
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    find(hay, needle).is_some()
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

pub fn count(hay: &[u8], needle: &[u8]) -> usize {
    if needle.is_empty() {
        return 0;
    }
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

impl Capture {
    pub fn new() -> Capture {
        Capture::default()
    }

    /// Starts a thread that appends everything read from `r` until EOF.
    pub fn attach<R: Read + Send + 'static>(&self, mut r: R) {
        {
            let mut st = self.inner.0.lock().unwrap();
            st.open += 1;
        }
        let cap = self.clone();
        thread::spawn(move || {
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                match r.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => {
                        let (lock, cv) = &*cap.inner;
                        lock.lock().unwrap().buf.extend_from_slice(&chunk[..n]);
                        cv.notify_all();
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
            let (lock, cv) = &*cap.inner;
            lock.lock().unwrap().open -= 1;
            cv.notify_all();
        });
    }

    pub fn bytes(&self) -> Vec<u8> {
        self.inner.0.lock().unwrap().buf.clone()
    }

    pub fn len(&self) -> usize {
        self.inner.0.lock().unwrap().buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }

    pub fn contains(&self, pat: &str) -> bool {
        contains(&self.inner.0.lock().unwrap().buf, pat.as_bytes())
    }

    pub fn is_eof(&self) -> bool {
        self.inner.0.lock().unwrap().open == 0
    }

    /// Waits until `pred(buffer, eof)` holds or `timeout` passes; returns
    /// whether it held.
    pub fn wait_until(&self, timeout: Duration, mut pred: impl FnMut(&[u8], bool) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.inner;
        let mut st = lock.lock().unwrap();
        loop {
            if pred(&st.buf, st.open == 0) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = cv.wait_timeout(st, deadline - now).unwrap().0;
        }
    }

    /// Waits until `pat` appears (true), or EOF / timeout comes first (false).
    pub fn wait_for(&self, pat: &str, timeout: Duration) -> bool {
        let mut found = false;
        self.wait_until(timeout, |b, eof| {
            found = contains(b, pat.as_bytes());
            found || eof
        });
        found
    }

    /// Waits until `pat` appears at least `n` times.
    pub fn wait_for_count(&self, pat: &str, n: usize, timeout: Duration) -> bool {
        let mut ok = false;
        self.wait_until(timeout, |b, eof| {
            ok = count(b, pat.as_bytes()) >= n;
            ok || eof
        });
        ok
    }

    /// Waits until at least `n` bytes were captured.
    pub fn wait_len(&self, n: usize, timeout: Duration) -> bool {
        let mut ok = false;
        self.wait_until(timeout, |b, eof| {
            ok = b.len() >= n;
            ok || eof
        });
        ok
    }

    /// Waits until every attached reader saw EOF.
    pub fn wait_eof(&self, timeout: Duration) -> bool {
        self.wait_until(timeout, |_, eof| eof)
    }
}

/// Shows at most `max` bytes of `b`: head and tail when it is longer.
pub fn show_bytes(b: &[u8], max: usize) -> String {
    if b.len() <= max {
        return String::from_utf8_lossy(b).into_owned();
    }
    let half = max / 2;
    format!(
        "{}\n[... {} bytes elided ...]\n{}",
        String::from_utf8_lossy(&b[..half]),
        b.len() - 2 * half,
        String::from_utf8_lossy(&b[b.len() - half..])
    )
}

// ---------------------------------------------------------------------------

/// Anything that can describe itself for a failure message.
pub trait Dump {
    fn dump(&self) -> String;
}

/// Joins the dumps of several participants (client, server, peer).
pub fn dumps(parts: &[&dyn Dump]) -> String {
    let mut s = String::new();
    for p in parts {
        s.push_str(&p.dump());
    }
    s
}
