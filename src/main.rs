//! The `torchkit` binary: parse the command line, run it, map errors to exit codes.
//! All logic lives in the library (`torchkit::cli`).

fn main() -> std::process::ExitCode {
    torchkit::cli::main()
}
