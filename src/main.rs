//! `canary`: the command line over canary's core and its emulator.

mod cli;
mod demo;
mod error;
mod logging;

/// mimalloc instead of the system allocator: a pass over thousands of services is mostly
/// building and dropping small JSON values, where glibc's malloc took about half of the
/// emulator's CPU and a fifth of canary's (measured with perf; see `make bench`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(cli::run(std::env::args_os()));
}
