//! The `omnigraph` command. All logic lives in `omnigraph::cli`.

fn main() -> std::process::ExitCode {
    omnigraph::cli::main()
}
