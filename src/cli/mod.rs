//! The `omnigraph` command line (reference: docs/user/cli/reference.md).
//!
//! Exit codes: 0 success, 1 the input has errors (diagnostics printed),
//! 2 usage or I/O errors.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::diag::Diagnostics;
use crate::schema;

/// Command-line interface for Omnigraph.
#[derive(Debug, Parser)]
#[command(name = "omnigraph", version, about = "Typed, versioned, branchable property-graph database")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate queries against a schema (offline): exit 0 clean, 1 on errors.
    #[command(alias = "check")]
    Lint(LintArgs),
    /// Schema commands.
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// Query commands.
    #[command(subcommand)]
    Query(QueryCommand),
}

#[derive(Debug, Args)]
pub struct LintArgs {
    /// The `.pg` schema the queries are checked against.
    #[arg(long)]
    pub schema: PathBuf,
    /// The `.gq` file to check.
    #[arg(long)]
    pub query: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Parse and validate a `.pg` file; exit 0 clean, 1 on errors.
    Check {
        /// The `.pg` file.
        schema: PathBuf,
        /// Print diagnostics (or the compiled catalog) as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum QueryCommand {
    /// Print the lowered execution IR of one query.
    Explain {
        #[arg(long)]
        schema: PathBuf,
        #[arg(long)]
        query: PathBuf,
        /// The query's name in the file.
        name: String,
        /// Print the IR as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs the CLI with the process arguments.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// A failure that is not a diagnostic in the user's source.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Usage(String),
}

fn read(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|source| CliError::Read {
        path: path.display().to_string(),
        source,
    })
}

fn color() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

fn print_diags(d: &Diagnostics, json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(&d.to_json()).unwrap_or_default());
    } else {
        eprint!("{}", d.render(color()));
    }
}

/// Runs one parsed command; returns the exit code.
pub fn run(cli: Cli) -> Result<ExitCode, CliError> {
    match cli.command {
        Command::Schema(SchemaCommand::Check { schema, json }) => {
            let src = read(&schema)?;
            match schema::compile_schema_file(&schema.display().to_string(), &src) {
                Ok(cat) => {
                    if json {
                        println!("{}", serde_json::json!({"status": "ok", "catalog": cat}));
                    } else {
                        println!(
                            "{}: ok ({} node types, {} edge types, {} interfaces)",
                            schema.display(),
                            cat.nodes.len(),
                            cat.edges.len(),
                            cat.interfaces.len()
                        );
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(d) => {
                    print_diags(&d, json);
                    Ok(ExitCode::from(1))
                }
            }
        }
        Command::Lint(_) | Command::Query(_) => Err(CliError::Usage("not yet".into())),
    }
}
