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
    // mimalloc asks for transparent huge pages; a pass's heap is a few hundred MB of
    // small objects, made and dropped within seconds, and faulting it in 2 MiB at a time
    // zeroed far more than it used: with them off, a pass over 10,000 rollouts spent
    // 0.5–0.7 s in the kernel instead of 1.1–1.6 s, at the same peak RSS (`make bench`,
    // hold, six runs each). Only a hint: where the kernel refuses, nothing changes.
    #[cfg(target_os = "linux")]
    let _ = rustix::thread::disable_transparent_huge_pages(true);
    std::process::exit(cli::run(std::env::args_os()));
}
