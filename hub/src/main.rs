//! The `hearth` command.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    // Before any thread starts: keeps large freed blocks from pinning memory (see hearth_sys).
    hearth_sys::fix_allocator_thresholds();
    hearth::cli::main()
}
