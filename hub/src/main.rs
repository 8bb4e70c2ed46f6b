//! The `hearth` command.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    hearth::cli::main()
}
