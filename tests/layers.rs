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
