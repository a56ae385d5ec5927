//! `gracetls --generate man|bash|zsh|fish`: the man page and the shell completions, written
//! to stdout from the same clap definition that parses the arguments and prints `--help`.
//!
//! Generated at run time rather than by a build script so that an installed binary (from
//! `cargo install` too) can produce them, and an option added to `Args` appears in all of
//! them with nothing else to change. The option is hidden: it is for `make install` and
//! packagers, and it stays out of the page and the completions it writes.

use std::io::{self, Write as _};
use std::process::ExitCode;

use clap::{Arg, CommandFactory, FromArgMatches, ValueEnum};
use clap_complete::Shell;
use gracetls::starttls::Protocol;

use super::args::Args;

/// What `--generate` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Generated {
    /// The man page (roff), for `man1/gracetls.1`.
    Man,
    /// The bash completion script.
    Bash,
    /// The zsh completion function (`_gracetls`).
    Zsh,
    /// The fish completions.
    Fish,
}

/// What the command line asked for.
pub(crate) enum Parsed {
    /// A connection, as `Args` describes.
    Run(Box<Args>),
    /// A man page or a completion script on stdout, and nothing else.
    Generate(Generated),
}

/// Parses the command line: `Args`, or the hidden `--generate KIND`, which stands alone
/// (clap then skips the required target).
pub(crate) fn parse() -> Result<Parsed, clap::Error> {
    let generate = Arg::new("generate")
        .long("generate")
        .value_name("KIND")
        .value_parser(clap::value_parser!(Generated))
        .exclusive(true)
        .hide(true);
    let mut matches = Args::command().arg(generate).try_get_matches()?;
    if let Some(kind) = matches.remove_one::<Generated>("generate") {
        return Ok(Parsed::Generate(kind));
    }
    Args::from_arg_matches_mut(&mut matches)
        .map(|args| Parsed::Run(Box::new(args)))
        .map_err(|e| e.format(&mut Args::command()))
}

/// Writes `kind` to stdout: exit 0, or 1 when stdout cannot take it.
pub(crate) fn write(kind: Generated) -> ExitCode {
    // Into memory first: `clap_complete::generate` panics on a write error, a `Vec` has none.
    let mut text = Vec::new();
    let cmd = Args::command();
    let shell = match kind {
        Generated::Man => None,
        Generated::Bash => Some(Shell::Bash),
        Generated::Zsh => Some(Shell::Zsh),
        Generated::Fish => Some(Shell::Fish),
    };
    let rendered = match shell {
        None => man_page(cmd, &mut text),
        Some(shell) => {
            let mut cmd = with_values(cmd);
            clap_complete::generate(shell, &mut cmd, "gracetls", &mut text);
            Ok(())
        }
    };
    let written = rendered.and_then(|()| {
        let mut stdout = io::stdout().lock();
        stdout.write_all(&text)?;
        stdout.flush()
    });
    match written {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that stopped early (`| head`) is a normal end, as for any filter.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            let name = kind.to_possible_value().map(|v| v.get_name().to_owned());
            eprintln!(
                "gracetls: error: cannot write the generated {} to stdout: {e}",
                name.as_deref().unwrap_or("file")
            );
            ExitCode::from(1)
        }
    }
}

/// The command as the completions see it: the options whose values are parsed by a function
/// rather than listed (clap would offer file names for them) are given the values to offer.
/// `--escape` takes any character besides `none`, which is the one word worth offering (a
/// `~` among bash's candidates would be expanded to the home directory).
fn with_values(cmd: clap::Command) -> clap::Command {
    let protocols = Protocol::ALL.map(Protocol::name);
    let versions = ["1.2", "1.3"];
    cmd.mut_arg("starttls", |a| a.value_parser(protocols))
        .mut_arg("tls_min", |a| a.value_parser(versions))
        .mut_arg("tls_max", |a| a.value_parser(versions))
        .mut_arg("escape", |a| a.value_parser(["none"]))
}

/// The page clap_mangen renders, except that the text after the options (the endings and
/// the exit codes) keeps the line breaks it has in `--help`: its tables are aligned by hand,
/// and clap_mangen's EXTRA section would fill them into one paragraph.
fn man_page(cmd: clap::Command, out: &mut Vec<u8>) -> io::Result<()> {
    let after_help = cmd.get_after_help().map(|text| text.to_string());
    let man = clap_mangen::Man::new(cmd);
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    if let Some(text) = after_help {
        out.extend_from_slice(b".SH \"ENDINGS AND EXIT STATUS\"\n.nf\n");
        for line in text.lines() {
            out.extend_from_slice(roff_line(line).as_bytes());
            out.push(b'\n');
        }
        out.extend_from_slice(b".fi\n");
    }
    man.render_version_section(out)
}

/// One line of text for roff's no-fill mode: backslashes and hyphens literal (so options
/// copy as typed), and a leading `.` or `'` not taken for a request.
fn roff_line(line: &str) -> String {
    let escaped = line.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with(['.', '\'']) {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}
