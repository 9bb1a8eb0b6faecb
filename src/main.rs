//! The `koogate` command: parse the command line and run it (see [`koogate::cli`]).
#![forbid(unsafe_code)]

use clap::Parser;
use std::process::ExitCode;

/// mimalloc: the request path allocates many small short-lived objects; the benchmark showed the system
/// allocator among the top costs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = koogate::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("koogate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(koogate::cli::run(cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("koogate: {e:#}");
            ExitCode::FAILURE
        }
    }
}
