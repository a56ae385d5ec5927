//! What the Debian daemons the tests start (PostgreSQL, vsftpd, Prosody) have in common: a
//! system user to run as, files handed to that user, a port seen listening in
//! `/proc/net/tcp`, the processes a daemon forked, and a bounded poll for such states, which no
//! pipe reports (their logs are files: see [`LogFile`](super::LogFile)).

use super::*;

/// Checks `cond` every 20 ms until it holds (true) or `timeout` passes (false), for states
/// that no pipe reports: a file's contents, a listening port, a process tree.
pub fn poll_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// The uid and gid a daemon that will not run as root runs as: the system user `name` (which
/// its Debian package creates) when the tests run as root, as they do in CI; `None`, meaning
/// the test's own user, otherwise.
pub fn daemon_user(name: &str) -> Option<(u32, u32)> {
    if !super::netns::is_root() {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let found = passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() < 4 || fields[0] != name {
            return None;
        }
        Some((fields[2].parse().ok()?, fields[3].parse().ok()?))
    });
    match found {
        Some(ids) => Some(ids),
        None => panic!("there is no `{name}` user in /etc/passwd: reinstall its package"),
    }
}

/// `program` set to run as `user` (no supplementary groups; see [`daemon_user`]) in `cwd`:
/// the PID is the program's own, unlike under `runuser` or `su`, which fork and wait.
pub fn command_as(program: &Path, user: Option<(u32, u32)>, cwd: &Path) -> Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(program);
    if let Some((uid, gid)) = user {
        cmd.uid(uid).gid(gid);
    }
    cmd.current_dir(cwd);
    cmd
}

/// Hands `path` to `user` (when there is one, see [`daemon_user`]) with `mode`, so the server
/// can use it (a private key: 0600, as PostgreSQL insists).
pub fn give_to(path: &Path, user: Option<(u32, u32)>, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    if let Some((uid, gid)) = user {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .unwrap_or_else(|e| panic!("cannot chown {} to {uid}:{gid}: {e}", path.display()));
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("cannot chmod {} to {mode:o}: {e}", path.display()));
}

/// Copies the certificate and key into `dir` as `server.pem` and `server.key`, owned by
/// `owner` (the key 0600), and returns the copies.
pub fn server_cert_copy(cert: &CertFiles, dir: &TempDir, owner: Option<(u32, u32)>) -> CertFiles {
    let read =
        |p: &Path| std::fs::read(p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
    let copy = CertFiles {
        cert: dir.write("server.pem", &read(&cert.cert)),
        key: dir.write("server.key", &read(&cert.key)),
    };
    give_to(&copy.cert, owner, 0o644);
    give_to(&copy.key, owner, 0o600);
    copy
}

/// Whether something listens on 127.0.0.1:`port` (a LISTEN row in `/proc/net/tcp`); looking
/// there does not make a connection the server would log.
pub fn listening(port: u16) -> bool {
    let want = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/tcp").is_ok_and(|t| {
        t.lines().skip(1).any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1] == want && f[3] == "0A"
        })
    })
}

/// Every process below `pid`, children before their own children.
pub fn descendants(pid: u32) -> Vec<u32> {
    walk(pid, |_| {})
}

/// The processes below `pid`, each passed to `visit` before its children are listed; at most
/// 1,000 (a test server's tree is small; the bound guards against a cycle of reused PIDs).
fn walk(pid: u32, mut visit: impl FnMut(u32)) -> Vec<u32> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        for c in super::nginx::children(p) {
            if out.len() >= 1_000 {
                return out;
            }
            visit(c);
            out.push(c);
            todo.push(c);
        }
    }
    out
}

/// Kills (SIGKILL) `pid`'s descendants, the sessions a daemon forked, which would outlive it;
/// `pid` itself is left stopped for its [`Proc`] guard to kill. Each parent is stopped before
/// its children are listed: a stopped process cannot reap, so every PID listed stays its
/// process's (a zombie at worst) until the kill.
pub fn kill_descendants(pid: u32) {
    sys::kill(pid as i32, SIGSTOP);
    let all = walk(pid, |c| {
        sys::kill(c as i32, SIGSTOP);
    });
    for &p in all.iter().rev() {
        sys::kill(p as i32, SIGKILL);
    }
    // A kill takes effect a moment later; the sessions' sockets close when it has.
    poll_until(WAIT, || !all.iter().any(|&p| alive(p)));
}

/// Whether `pid` is a process that has not exited (neither gone nor a zombie).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

/// The newest `BASE/VERSION/bin/NAME`, as Debian installs PostgreSQL
/// (`/usr/lib/postgresql/15/bin/postgres`).
pub fn versioned_tool(base: &str, name: &str) -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(base)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse().ok()?;
            let p = e.path().join("bin").join(name);
            p.is_file().then_some((version, p))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, p)| p)
}
