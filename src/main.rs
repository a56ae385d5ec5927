//! The `gracetls` command: a thin shell over the library. See `gracetls --help`.

#![forbid(unsafe_code)]

mod cli;

fn main() -> std::process::ExitCode {
    cli::run()
}
