//! `model-provisioner`: make sure a model is on this machine, verified, and in the catalog.

/// Writes a line to stderr. Unlike `eprintln!`, a closed stderr is not a panic: there is no
/// one left to tell.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

mod cli;
mod commands;
mod output;
mod progress;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;

/// Exit status for a digest mismatch or a failed verification.
pub(crate) const EXIT_VERIFY_FAILED: u8 = 3;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    // JSON progress owns standard error: text warnings only when asked for with `-v`.
    init_logging(
        cli.quiet || (cli.json_progress() && cli.verbose == 0),
        cli.verbose,
    );
    match commands::run(cli) {
        Ok(code) => code,
        Err(err) => report(&err),
    }
}

fn init_logging(quiet: bool, verbose: u8) {
    let ours = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    // `-v` raises our own crates only: the HTTP stack's debug logs print whole URLs, query
    // strings included, and those may carry credentials.
    let default = if verbose == 0 || quiet {
        ours.to_owned()
    } else {
        OUR_CRATES.iter().fold("warn".to_owned(), |all, krate| {
            format!("{all},{krate}={ours}")
        })
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("MODEL_PROVISIONER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(verbose > 1)
        .without_time()
        .compact()
        .init();
}

/// Prints clap's usage error (or the help or version asked for), its last line a `hint:` as
/// for every other error: the command's `--help`.
fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        // `--help`, `--version`, or no command at all: what was asked for, on stdout.
        let _ = e.print();
        let code = if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            2
        } else {
            0
        };
        return ExitCode::from(code);
    }
    let text = e.render().to_string();
    let command = text
        .lines()
        .find_map(|l| l.strip_prefix("Usage: "))
        .map_or_else(
            || "model-provisioner".to_owned(),
            |usage| {
                usage
                    .split_whitespace()
                    .take_while(|w| !w.starts_with(['[', '<', '-']))
                    .collect::<Vec<_>>()
                    .join(" ")
            },
        );
    let body = text
        .trim_end()
        .strip_suffix("For more information, try '--help'.")
        .unwrap_or(&text)
        .trim_end();
    say!("{body}\n");
    say!("hint: `{command} --help` shows every option, with examples");
    ExitCode::from(2)
}

/// The crates whose logs `-v` raises: the workspace's libraries and this binary.
const OUR_CRATES: &[&str] = &[
    "catalog_core",
    "model_info",
    "mp_progress",
    "mp_transfer",
    "mp_credentials",
    "model_provisioner",
    "model_provisioner_cli",
];

/// Prints an error as one line, plus a hint when there is one, and picks the exit status.
fn report(err: &anyhow::Error) -> ExitCode {
    if err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    }) {
        return ExitCode::SUCCESS;
    }
    say!("error: {err:#}");
    if err.downcast_ref::<commands::UsageError>().is_some() {
        return ExitCode::from(2);
    }
    let mut code = ExitCode::FAILURE;
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<model_provisioner::Error>() {
            if let Some(hint) = e.hint() {
                say!("hint: {hint}");
            }
            if e.is_verification_failure() {
                code = ExitCode::from(EXIT_VERIFY_FAILED);
            } else if e.is_usage() {
                // What the arguments named, refused by the library (a mirror rule given as a
                // flag that no source of this build can follow, say): the caller's usage.
                code = ExitCode::from(2);
            }
            break;
        }
        if let Some(e) = cause.downcast_ref::<catalog_core::Error>() {
            if let Some(hint) = e.hint() {
                say!("hint: {hint}");
            }
            break;
        }
    }
    code
}
