//! What a packager and a shell user get: the man page and the completions that
//! `gracetls --generate` writes, checked by the programs that read them (man, bash, zsh,
//! fish), and `make install`'s file list. What must be there is read from `--help`, so an
//! option added to the command line is checked here with nothing to change. Also what
//! `make test` says of a test that skipped: recorded, and counted at the end.

// The harness defines `per_version!`; nothing here speaks TLS.
#![allow(unused_macros)]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{GRACETLS, NOT_INSTALLED_VAR, SKIP_LOG, TempDir, have_tool};

/// Runs `program` with `args`, bounded by coreutils' `timeout`. A `make test` above this
/// one does not pass its flags (-n, -j) down to the `make` runs here.
fn run(program: &str, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("timeout");
    cmd.arg("60").arg(program).args(args);
    cmd.env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("MAKELEVEL");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {program} {args:?}: {e}"))
}

/// `run`, which must exit 0; returns stdout.
fn run_ok(program: &str, args: &[&str], envs: &[(&str, &str)]) -> String {
    let out = run(program, args, envs);
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("output is UTF-8")
}

/// Every long option `gracetls --help` lists, from its option lines
/// (`  -v, --verbose...` or `      --ca-file <PEM>`).
fn help_long_options() -> BTreeSet<String> {
    let help = run_ok(GRACETLS, &["--help"], &[]);
    let mut options = BTreeSet::new();
    for line in help.lines() {
        let line = line.trim_start();
        let line = match line.split_once(", ") {
            Some((short, rest)) if short.len() == 2 && short.starts_with('-') => rest,
            _ => line,
        };
        let Some(name) = line.strip_prefix("--") else {
            continue;
        };
        let name: String = name
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        if !name.is_empty() {
            options.insert(format!("--{name}"));
        }
    }
    // So that a change in clap's layout cannot make every check below pass on nothing.
    for known in ["--help", "--version", "--ca-file", "--on-eof", "--verbose"] {
        assert!(
            options.contains(known),
            "{known} not found in --help; the parser read {options:?} from:\n{help}"
        );
    }
    options
}

/// The options `-h` shows with `[possible values: a, b, ...]`, and those values.
fn help_possible_values() -> Vec<(String, BTreeSet<String>)> {
    let help = run_ok(GRACETLS, &["-h"], &[]);
    let mut found = Vec::new();
    for line in help.lines() {
        let Some((_, values)) = line.split_once("[possible values: ") else {
            continue;
        };
        let option = line
            .split_whitespace()
            .find(|word| word.starts_with("--"))
            .unwrap_or_else(|| panic!("no option on the line {line:?}"));
        let values = values.split(']').next().unwrap_or_default();
        let values = values.split(", ").map(str::to_owned).collect();
        found.push((option.trim_end_matches(',').to_owned(), values));
    }
    assert!(
        found.iter().any(|(option, _)| option == "--on-eof"),
        "--on-eof's possible values not found in -h:\n{help}"
    );
    found
}

/// `gracetls --generate KIND` written to a file in `dir`.
fn generate(dir: &TempDir, kind: &str) -> PathBuf {
    let text = run_ok(GRACETLS, &["--generate", kind], &[]);
    assert!(
        text.contains("gracetls"),
        "--generate {kind} wrote no gracetls:\n{text}"
    );
    dir.write(&format!("gracetls.{kind}"), text.as_bytes())
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

#[test]
fn man_page_renders_every_long_option() {
    if !have_tool("man", "man-db") || !have_tool("groff", "groff-base") {
        return;
    }
    let dir = TempDir::new("man");
    let page = generate(&dir, "man");
    // stdout is a pipe: no pager, no terminal formatting. --warnings: groff's complaints.
    let out = run(
        "man",
        &["--warnings", "-l", path_str(&page)],
        &[("MANWIDTH", "80")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "man -l failed or warned ({}):\n{stderr}",
        out.status
    );
    for section in ["NAME", "SYNOPSIS", "OPTIONS", "ENDINGS AND EXIT STATUS"] {
        assert!(
            text.lines().any(|l| l == section),
            "no {section} section in the rendered page:\n{text}"
        );
    }
    // Each option is an entry of its own (a tag line), not merely mentioned somewhere.
    let entries: Vec<&str> = text.lines().map(str::trim_start).collect();
    for option in help_long_options() {
        let is_entry = |l: &&str| {
            let l = l.split_once(", ").map_or(*l, |(_, rest)| rest);
            l == option || l.starts_with(&format!("{option} ")) || l == format!("{option}...")
        };
        assert!(
            entries.iter().any(is_entry),
            "{option} (listed by --help) has no entry in the man page:\n{text}"
        );
    }
    // The exit codes keep their table's line breaks.
    assert!(
        entries
            .iter()
            .any(|l| l.starts_with("2    usage: bad arguments")),
        "the exit code table lost its layout:\n{text}"
    );
}

/// Runs bash completion for each command line in `lines` (the word being completed last,
/// possibly empty) and returns the candidates for each, sorted.
fn bash_complete(script: &Path, lines: &[Vec<String>]) -> Vec<BTreeSet<String>> {
    let mut program = String::from(
        "source \"$1\" || exit 3\n\
         spec=$(complete -p gracetls) || exit 4\n\
         fn=${spec#* -F }; fn=${fn%% *}\n",
    );
    for words in lines {
        let quoted: Vec<String> = words
            .iter()
            .map(|w| format!("'{}'", w.replace('\'', r"'\''")))
            .collect();
        let cword = words.len() - 1;
        let prev = if cword >= 1 {
            quoted[cword - 1].clone()
        } else {
            "''".into()
        };
        program.push_str(&format!(
            "COMP_WORDS=({}); COMP_CWORD={cword}; COMPREPLY=()\n\
             \"$fn\" gracetls {} {prev}\n\
             echo '#begin'; printf '%s\\n' \"${{COMPREPLY[@]}}\"; echo '#end'\n",
            quoted.join(" "),
            quoted[cword],
        ));
    }
    let out = run_ok("bash", &["-c", &program, "bash", path_str(script)], &[]);
    let mut answers = Vec::new();
    let mut current: Option<BTreeSet<String>> = None;
    for line in out.lines() {
        match line {
            "#begin" => current = Some(BTreeSet::new()),
            "#end" => answers.push(current.take().expect("#end after #begin")),
            "" => {}
            word => {
                if let Some(set) = current.as_mut() {
                    set.insert(word.to_owned());
                }
            }
        }
    }
    assert_eq!(answers.len(), lines.len(), "bash answered:\n{out}");
    answers
}

#[test]
fn bash_completion_loads_and_completes_options_and_values() {
    let dir = TempDir::new("bash");
    let script = generate(&dir, "bash");
    let spec = run_ok(
        "bash",
        &[
            "-c",
            "source \"$1\" && complete -p gracetls",
            "bash",
            path_str(&script),
        ],
        &[],
    );
    assert!(
        spec.contains(" -F ") && spec.trim_end().ends_with(" gracetls"),
        "bash has no completion function for gracetls after sourcing: {spec:?}"
    );

    let options = help_long_options();
    let word = |w: &str| w.to_owned();
    let mut lines = vec![vec![word("gracetls"), word("--")]];
    // A prefix such as --sta or --qui: exactly the options --help lists that start with it.
    let prefixes: BTreeSet<String> = options
        .iter()
        .map(|o| o.chars().take(5).collect())
        .collect();
    for prefix in &prefixes {
        lines.push(vec![word("gracetls"), prefix.clone()]);
    }
    let values = help_possible_values();
    for (option, _) in &values {
        lines.push(vec![word("gracetls"), option.clone(), word("")]);
    }
    let answers = bash_complete(&script, &lines);

    assert_eq!(
        answers[0], options,
        "completing `gracetls --` must offer exactly the long options of --help (and no hidden one)"
    );
    for (prefix, got) in prefixes.iter().zip(&answers[1..]) {
        let want: BTreeSet<String> = options
            .iter()
            .filter(|o| o.starts_with(prefix.as_str()))
            .cloned()
            .collect();
        assert_eq!(got, &want, "completing `gracetls {prefix}`");
    }
    for ((option, want), got) in values.iter().zip(&answers[1 + prefixes.len()..]) {
        assert_eq!(got, want, "completing `gracetls {option} `");
    }
}

/// The options whose values clap cannot list by itself (they are parsed by a function) offer
/// their values, never file names.
#[test]
fn completions_offer_the_values_of_starttls_tls_versions_and_escape() {
    let dir = TempDir::new("values");
    let set =
        |words: &[&str]| -> BTreeSet<String> { words.iter().map(|w| w.to_string()).collect() };
    let protocols = set(&["smtp", "lmtp", "imap", "pop3", "ftp", "xmpp", "postgres"]);
    let versions = set(&["1.2", "1.3"]);
    let escapes = set(&["none"]);
    let cases = [
        ("--starttls", &protocols),
        ("--tls-min", &versions),
        ("--tls-max", &versions),
        ("--escape", &escapes),
    ];
    let script = generate(&dir, "bash");
    let lines: Vec<Vec<String>> = cases
        .iter()
        .map(|(option, _)| vec!["gracetls".into(), option.to_string(), String::new()])
        .collect();
    let answers = bash_complete(&script, &lines);
    for ((option, want), got) in cases.iter().zip(&answers) {
        assert_eq!(got, *want, "bash: completing `gracetls {option} `");
    }
    let script = generate(&dir, "zsh");
    let text = std::fs::read_to_string(&script).expect("read back");
    for (option, want) in &cases {
        let line = text
            .lines()
            .find(|l| l.contains(&format!("'{option}=")))
            .unwrap_or_else(|| panic!("zsh: no line for {option}:\n{text}"));
        for value in want.iter() {
            assert!(
                line.contains(value.as_str()),
                "zsh: {option} does not offer {value}: {line}"
            );
        }
        assert!(
            !line.contains("_files"),
            "zsh: {option} offers files: {line}"
        );
    }
    let script = generate(&dir, "fish");
    if !have_tool("fish", "fish") {
        return;
    }
    for (option, want) in &cases {
        let program = format!(
            "source {}; complete -C 'gracetls {option} '",
            path_str(&script)
        );
        let home = dir.path().to_str().expect("UTF-8");
        let got: BTreeSet<String> =
            run_ok("fish", &["--no-config", "-c", &program], &[("HOME", home)])
                .lines()
                .map(|l| l.split('\t').next().unwrap_or_default().to_owned())
                .collect();
        assert_eq!(&got, *want, "fish: completing `gracetls {option} `");
    }
}

#[test]
fn zsh_completion_parses() {
    let dir = TempDir::new("zsh");
    let script = generate(&dir, "zsh");
    let text = std::fs::read_to_string(&script).expect("read back");
    assert!(
        text.starts_with("#compdef gracetls"),
        "not a zsh completion:\n{text}"
    );
    if !have_tool("zsh", "zsh") {
        return;
    }
    run_ok("zsh", &["-n", path_str(&script)], &[]);
}

#[test]
fn fish_completion_parses_and_completes() {
    let dir = TempDir::new("fish");
    let script = generate(&dir, "fish");
    if !have_tool("fish", "fish") {
        return;
    }
    run_ok("fish", &["--no-execute", path_str(&script)], &[]);
    let complete = |line: &str| -> BTreeSet<String> {
        let program = format!("source {}; complete -C '{line}'", path_str(&script));
        let home = dir.path().to_str().expect("UTF-8");
        run_ok("fish", &["--no-config", "-c", &program], &[("HOME", home)])
            .lines()
            .map(|l| l.split('\t').next().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(
        complete("gracetls --"),
        help_long_options(),
        "fish: `gracetls --`"
    );
    for (option, values) in help_possible_values() {
        assert_eq!(
            complete(&format!("gracetls {option} ")),
            values,
            "fish: `gracetls {option} `"
        );
    }
}

#[test]
fn generate_stands_alone_and_stays_hidden() {
    let out = run(GRACETLS, &["--generate", "man", "localhost:443"], &[]);
    assert_eq!(out.status.code(), Some(2), "--generate with a target");
    let out = run(GRACETLS, &["--generate", "nroff"], &[]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "--generate with an unknown kind"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("man, bash, zsh, fish"),
        "the error lists the kinds: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!help_long_options().contains("--generate"));
}

/// Every file under `root`, relative to it.
fn files_under(root: &Path) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let rel = path.strip_prefix(root).expect("under root");
                found.insert(rel.to_string_lossy().into_owned());
            }
        }
    }
    found
}

/// `make install-files` (what `make install` runs after its release build) with the binary
/// under test, into a DESTDIR; then `make uninstall`.
#[test]
fn make_install_places_binary_man_page_and_completions() {
    if !have_tool("make", "make") {
        return;
    }
    let dir = TempDir::new("install");
    let destdir = format!("DESTDIR={}", path_str(dir.path()));
    let manifest = env!("CARGO_MANIFEST_DIR");
    let bin = format!("BIN={GRACETLS}");
    let make = |target: &str| {
        let args = ["-s", "-C", manifest, target, &destdir, "PREFIX=/usr", &bin];
        run_ok("make", &args, &[]);
    };
    make("install-files");
    let want: BTreeSet<String> = [
        "usr/bin/gracetls",
        "usr/share/man/man1/gracetls.1",
        "usr/share/bash-completion/completions/gracetls",
        "usr/share/zsh/site-functions/_gracetls",
        "usr/share/fish/vendor_completions.d/gracetls.fish",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(files_under(dir.path()), want);
    let installed = dir.path().join("usr/bin/gracetls");
    let version = run_ok(path_str(&installed), &["--version"], &[]);
    assert!(version.starts_with("gracetls "), "{version}");
    let page = std::fs::read_to_string(dir.path().join("usr/share/man/man1/gracetls.1"))
        .expect("read the installed page");
    assert_eq!(page, run_ok(GRACETLS, &["--generate", "man"], &[]));

    make("uninstall");
    assert_eq!(
        files_under(dir.path()),
        BTreeSet::new(),
        "left after uninstall"
    );
}

/// `make -n demo` installs the build's packages and none that only the tests need; `make -n
/// test`, none that only the benchmarks need.
#[test]
fn demo_installs_only_the_build_packages() {
    if !have_tool("make", "make") {
        return;
    }
    let manifest = env!("CARGO_MANIFEST_DIR");
    let lists = run_ok("make", &["-s", "-C", manifest, "packages"], &[]);
    let list = |name: &str| -> BTreeSet<String> {
        let line = lists
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} line in `make packages`:\n{lists}"));
        line.split_whitespace().map(String::from).collect()
    };
    let build = list("build: ");
    let test = list("test: ");
    let bench = list("bench: ");
    assert!(build.contains("libssl-dev"), "{build:?}");
    assert!(test.contains("nginx"), "{test:?}");
    assert!(bench.contains("hyperfine"), "{bench:?}");

    let installed_by = |target: &str| -> BTreeSet<String> {
        let dry = run_ok("make", &["-s", "-n", "-C", manifest, target], &[]);
        let line = dry
            .lines()
            .find(|l| l.contains("tools/apt-install"))
            .unwrap_or_else(|| panic!("`make -n {target}` installs no package:\n{dry}"));
        let words = line
            .split_once(" -- ")
            .map(|(_, words)| words)
            .unwrap_or_else(|| panic!("no package list in {line:?}"));
        words.split_whitespace().map(String::from).collect()
    };
    assert_eq!(installed_by("demo"), build, "make demo");
    let everything: BTreeSet<String> = build.union(&test).cloned().collect();
    assert_eq!(installed_by("test"), everything, "make test");
    let everything: BTreeSet<String> = everything.union(&bench).cloned().collect();
    assert_eq!(installed_by("bench"), everything, "make bench");
}

/// What [`a_skip_is_recorded_and_summed_up`] runs in a child process: a test whose tool is
/// missing.
#[test]
#[ignore = "run by a_skip_is_recorded_and_summed_up"]
fn skip_probe() {
    if !have_tool("gracetls-no-such-tool", "gracetls-no-such-package") {
        return;
    }
    panic!("gracetls-no-such-tool was found");
}

/// Runs [`skip_probe`] alone with `envs`, without the caller's CI, skip log and report.
fn run_skip_probe(envs: &[(&str, &str)]) -> Output {
    let exe = std::env::current_exe().expect("test binary path");
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", "skip_probe", "--ignored", "--nocapture"])
        .env_remove("CI")
        .env_remove(SKIP_LOG)
        .env_remove(NOT_INSTALLED_VAR);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("run skip_probe in a child process")
}

/// A test that skips passes for cargo, so the skip is written to the log `make test` names,
/// with the test and the reason, and the summary at the end counts it; a package `make deps`
/// left out gives its reason; under CI=true the skip is a failure.
#[test]
fn a_skip_is_recorded_and_summed_up() {
    if !have_tool("python3", "python3") {
        return;
    }
    let dir = TempDir::new("skips");
    let log = dir.path().join("skips.log");
    let log_str = path_str(&log);
    let out = run_skip_probe(&[(SKIP_LOG, log_str)]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the probe failed: {out:?}");
    let reason = "gracetls-no-such-tool not found (Debian package gracetls-no-such-package); \
                  run `make deps`";
    assert!(stdout.contains(&format!("SKIP: {reason}")), "{stdout}");
    let recorded = std::fs::read_to_string(&log).expect("the skip log");
    assert_eq!(recorded, format!("packaging\tskip_probe\t{reason}\n"));

    let summary = |log: &str, status: &str| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/skip_summary.py");
        run_ok("python3", &[script, log, status], &[])
    };
    let text = summary(log_str, "0");
    assert!(
        text.contains(&format!("SKIPPED 1 test: {reason}\n")),
        "{text}"
    );
    assert!(text.contains("    packaging: skip_probe\n"), "{text}");
    assert!(
        text.contains("1 test skipped (cargo counts them as passed): this was not a full run"),
        "{text}"
    );
    let text = summary(path_str(&dir.path().join("none.log")), "0");
    assert!(text.contains("0 tests skipped: full run"), "{text}");
    let text = summary(path_str(&dir.path().join("none.log")), "101");
    assert!(text.contains("0 tests skipped\n"), "{text}");
    assert!(text.contains("cargo test failed (exit 101)"), "{text}");

    let report = dir.write(
        "not-installed.txt",
        b"other\tnot this one\ngracetls-no-such-package\tinstalling it would remove exim4-base\n",
    );
    std::fs::remove_file(&log).expect("remove the log");
    let out = run_skip_probe(&[(SKIP_LOG, log_str), (NOT_INSTALLED_VAR, path_str(&report))]);
    assert!(out.status.success(), "the probe failed: {out:?}");
    let recorded = std::fs::read_to_string(&log).expect("the skip log");
    assert_eq!(
        recorded,
        "packaging\tskip_probe\tgracetls-no-such-package is not installed: \
         installing it would remove exim4-base\n"
    );

    std::fs::remove_file(&log).expect("remove the log");
    let out = run_skip_probe(&[(SKIP_LOG, log_str), ("CI", "true")]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "a skip under CI=true passed:\n{said}"
    );
    assert!(said.contains(&format!("CI=true and {reason}")), "{said}");
    assert!(
        !log.exists(),
        "a failure under CI=true was recorded as a skip"
    );
}

/// README is the front door: a page a newcomer reads in a few minutes, whose install lines
/// build with the tested dependency versions (`--locked`), as do those of docs/.
#[test]
fn readme_is_short_and_every_install_line_is_locked() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let lines = readme.lines().count();
    assert!(lines <= 300, "README.md has {lines} lines; at most 300");
    for page in [
        "README.md",
        "docs/cli.md",
        "docs/library.md",
        "docs/testing.md",
    ] {
        let text = std::fs::read_to_string(root.join(page)).expect(page);
        for line in text.lines().filter(|l| l.contains("cargo install")) {
            // Prose that names the command without running it has no arguments after it.
            let runs = line.contains("cargo install --") || line.contains("cargo install cargo-");
            assert!(
                !runs || line.contains("--locked"),
                "{page}: an install line without --locked: {line}"
            );
        }
    }
}

/// `examples/demo.sh`, what `make demo` runs, against this build: `openssl s_server` itself
/// logged receiving close_notify and answering it in the three scenarios of the reference
/// problem, and logs the bare close it is compared with as an error.
#[test]
fn demo_verdicts_come_from_openssl() {
    if !have_tool("openssl", "openssl") {
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo.sh");
    let out = run("bash", &[path_str(&script), GRACETLS], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo.sh failed ({}):\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |name: &str| -> Vec<&str> {
        stdout
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix(name))
            .map(str::trim)
            .collect()
    };
    assert_eq!(field("client exit:"), ["0", "0", "130", "137"], "{stdout}");
    let reports = field("client report:");
    for (report, trigger) in reports.iter().zip(["quit-line", "escape", "signal SIGINT"]) {
        assert!(
            report.starts_with(&format!(
                "gracetls: clean close after {trigger}: close_notify sent"
            )),
            "{stdout}"
        );
    }
    assert_eq!(reports[3], "(nothing)", "{stdout}");
    let clean =
        "received close_notify, answered with close_notify, no error: CLEAN (s_server exit 0)";
    let verdicts = field("server verdict:");
    assert_eq!(verdicts[..3], [clean; 3], "{stdout}");
    assert!(
        verdicts[3].starts_with("no close_notify received, sent no close_notify, ")
            && verdicts[3].contains("unexpected eof")
            && verdicts[3].contains("NOT CLEAN"),
        "{stdout}"
    );
}
