//! The `buybuddy` binary: one entry point for the server, the workers and the tools.

fn main() -> std::process::ExitCode {
    buybuddy::cli::main()
}
