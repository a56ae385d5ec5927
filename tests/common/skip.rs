//! What a test does when a peer, tool or privilege it needs is missing: outside `CI=true` it
//! skips, saying why, and records the skip; under `CI=true` it fails. Every skip goes
//! through [`skip`].
//!
//! cargo shows a test that returned early as `ok` and hides what it printed, so a skip is
//! also appended to the file `GRACETLS_SKIP_LOG` names (`make test` sets it and ends with a
//! summary of that file, `tests/skip_summary.py`): one line per skip, tab-separated, the test
//! binary, the test (its thread's name) and the reason.
//!
//! Where `make deps` could not install a package (it never removes one to make room), it
//! says why in `target/not-installed.txt` (a package and the reason per line,
//! tab-separated; `GRACETLS_NOT_INSTALLED` names another file); a test whose tool comes from
//! that package skips with that reason.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

/// The variable naming the file skips are appended to; unset, they are only printed.
pub const SKIP_LOG: &str = "GRACETLS_SKIP_LOG";
/// What `make deps` could not install, and why (see the module docs).
pub const NOT_INSTALLED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/target/not-installed.txt");
/// The variable naming another file than [`NOT_INSTALLED`].
pub const NOT_INSTALLED_VAR: &str = "GRACETLS_NOT_INSTALLED";

/// True when `CI=true`: a missing peer is then a failure, never a skip.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The current test cannot run here, for `reason`. Under `CI=true` this panics; otherwise it
/// prints `SKIP: reason` (on stdout and stderr) and records the skip, and the caller returns
/// without asserting anything.
pub fn skip(reason: &str) {
    if under_ci() {
        panic!("CI=true and {reason}");
    }
    eprintln!("SKIP: {reason}");
    println!("SKIP: {reason}");
    record(reason);
}

/// Appends the skip to the `GRACETLS_SKIP_LOG` file, if set. A skip that cannot be recorded
/// fails the test: unrecorded, it would pass unseen.
fn record(reason: &str) {
    let Some(path) = std::env::var_os(SKIP_LOG) else {
        return;
    };
    let test = std::thread::current()
        .name()
        .unwrap_or("(a test's helper thread)")
        .to_owned();
    // The executable is `NAME-HASH`.
    let exe = std::env::current_exe().unwrap_or_default();
    let stem = exe.file_stem().unwrap_or_default().to_string_lossy();
    let binary = stem.rsplit_once('-').map_or(&*stem, |(name, _)| name);
    let line = format!("{binary}\t{test}\t{}\n", reason.replace(['\t', '\n'], " "));
    // One write of one short line in append mode: lines of tests running at once, in
    // threads or test binaries, do not interleave.
    let written = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        panic!(
            "cannot record this skip ({reason}) in {}: {e}",
            Path::new(&path).display()
        );
    }
}

/// Whether the external program `program` (a path or a name on PATH) can be run. A missing
/// one is a [`skip`] naming its Debian `package` (several: space-separated) and either why
/// `make deps` did not install it or that `make deps` installs it.
pub fn have_tool(program: &str, package: &str) -> bool {
    let found = if program.contains('/') {
        Path::new(program).exists()
    } else {
        std::env::var_os("PATH").is_some_and(|paths| {
            std::env::split_paths(&paths).any(|dir| dir.join(program).is_file())
        })
    };
    if !found {
        skip(&missing_reason(program, package));
    }
    found
}

fn missing_reason(program: &str, package: &str) -> String {
    let report = std::env::var_os(NOT_INSTALLED_VAR).unwrap_or(NOT_INSTALLED.into());
    let left_out = std::fs::read_to_string(report).unwrap_or_default();
    for wanted in package.split_whitespace() {
        let why = left_out.lines().find_map(|line| {
            let (name, why) = line.split_once('\t')?;
            (name == wanted).then_some(why)
        });
        if let Some(why) = why {
            return format!("{wanted} is not installed: {why}");
        }
    }
    let installed = package.split_whitespace().all(package_installed);
    match (installed, program.contains('/')) {
        (false, _) => format!("{program} not found (Debian package {package}); run `make deps`"),
        (true, false) => {
            format!("{program} not found on PATH (Debian package {package} is installed)")
        }
        (true, true) => format!("{program} not found (Debian package {package} is installed)"),
    }
}

/// Whether dpkg has `package` installed (not only its configuration files left).
fn package_installed(package: &str) -> bool {
    std::process::Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|out| out.stdout == b"install ok installed")
}

/// Whether the tests run as root, which `server` (a daemon that switches to its own system
/// users) needs; not root is a [`skip`].
pub fn needs_root(server: &str) -> bool {
    let root = super::netns::is_root();
    if !root {
        skip(&format!(
            "{server} is started as root (it switches to its own users); run the tests as root"
        ));
    }
    root
}
