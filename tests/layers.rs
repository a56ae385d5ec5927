//! The library's floors (tests/layers.py): no module imports from a floor above its own, and
//! no modules import each other in a circle. Also that the script catches both, on a made-up
//! crate.

use std::path::Path;
use std::process::{Command, Output};

fn layers(src: &Path) -> Option<Output> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/layers.py");
    match Command::new("python3").arg(script).arg(src).output() {
        Ok(output) => Some(output),
        Err(e) => {
            println!("SKIP: cannot run python3: {e}");
            None
        }
    }
}

#[test]
fn every_import_goes_down_or_level() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let Some(output) = layers(&src) else { return };
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "tests/layers.py:\n{said}{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn an_upward_import_and_a_circle_are_named() {
    let dir = std::env::temp_dir().join(format!("gracetls-layers-{}", std::process::id()));
    let src = dir.join("src");
    std::fs::create_dir_all(&src).expect("temporary directory");
    let files = [
        (
            "lib.rs",
            "mod config;\nmod stream;\nmod error;\npub use error::Error;\n",
        ),
        // data reaching up to the top floor
        (
            "config.rs",
            "use crate::stream::Stream;\nuse crate::Error;\n",
        ),
        // two modules of one floor that need each other
        (
            "error.rs",
            "pub struct Error;\nfn f() { crate::config::g() }\n",
        ),
        ("stream.rs", "pub struct Stream;\n"),
    ];
    for (name, text) in files {
        std::fs::write(src.join(name), text).expect("write a file");
    }
    let output = layers(&src);
    let _ = std::fs::remove_dir_all(&dir);
    let Some(output) = output else { return };
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{said}");
    assert!(
        said.contains("src/config.rs: config (data) -> stream (api)"),
        "{said}"
    );
    assert!(said.contains("circle among config, error"), "{said}");
}

/// What differs between systems is named in one module (src/platform.rs, with build.rs for
/// `cfg(tls_openssl)`): no other file of the library names a target system.
#[test]
fn systems_are_named_in_one_module() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src/") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                // The command is apart from the library's floors.
                if !path.ends_with("cli") {
                    dirs.push(path);
                }
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") || path.ends_with("platform.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read a source file");
            for (n, line) in text.lines().enumerate() {
                if line.contains("target_os") || line.contains("target_vendor") {
                    found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "name the system in src/platform.rs (or use cfg(tls_openssl)):\n{}",
        found.join("\n")
    );
}
