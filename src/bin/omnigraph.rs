//! The `omnigraph` command. All logic lives in `omnigraph::cli`.

/// mimalloc instead of the system allocator: under concurrent writes the
/// server spent about a fifth of its CPU in glibc's malloc and free
/// (docs/performance.md, "Group commit, kept stagings and mimalloc").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
fn main() -> std::process::ExitCode {
    // A closed stdout (`omnigraph commit list | head -1`) ends the process
    // quietly, as it does for Unix tools, instead of a panic in `println!`
    // (Rust ignores SIGPIPE by default; this restores the default action).
    #[cfg(unix)]
    // SAFETY: called first thing in `main`, before any other thread exists;
    // SIG_DFL is a valid handler for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    omnigraph::cli::main()
}
