//! The `gracetls` command: a thin shell over the library. See `gracetls --help`.

// One `unsafe` block, in `cli::skip_system_bundle`, with its justification there.
#![deny(unsafe_code)]

mod cli;

fn main() -> std::process::ExitCode {
    cli::run()
}
