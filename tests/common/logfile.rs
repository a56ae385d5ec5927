//! A server's log file, watched by the test: marks to take only what one connection logged,
//! and bounded waits for a line (polled, since the server, not the test, writes the file).

use super::*;

/// How often a wait looks at the file again.
const POLL: Duration = Duration::from_millis(20);

/// A log file a server writes.
#[derive(Clone, Debug)]
pub struct LogFile {
    pub path: PathBuf,
}

impl LogFile {
    pub fn new(path: PathBuf) -> LogFile {
        LogFile { path }
    }

    /// All of it, as text (empty while the file does not exist).
    pub fn text(&self) -> String {
        std::fs::read(&self.path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Where the log ends now: what a connection made after this logs comes after it.
    pub fn mark(&self) -> usize {
        std::fs::metadata(&self.path).map_or(0, |m| m.len() as usize)
    }

    /// What was logged since `mark`.
    pub fn since(&self, mark: usize) -> String {
        let bytes = std::fs::read(&self.path).unwrap_or_default();
        String::from_utf8_lossy(bytes.get(mark..).unwrap_or_default()).into_owned()
    }

    /// Waits until what was logged since `mark` satisfies `pred`, at most `timeout`;
    /// returns whether it did.
    pub fn wait_since(&self, mark: usize, timeout: Duration, pred: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if pred(&self.since(mark)) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(POLL);
        }
    }

    /// Waits until `pat` was logged since `mark`.
    pub fn wait_for_since(&self, mark: usize, pat: &str, timeout: Duration) -> bool {
        self.wait_since(mark, timeout, |t| t.contains(pat))
    }
}

impl Dump for LogFile {
    fn dump(&self) -> String {
        format!(
            "\n\n===== log {} =====\n{}\n",
            self.path.display(),
            show_bytes(self.text().as_bytes(), 12_000)
        )
    }
}
