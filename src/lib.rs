//! canary: safe, declarative canary rollouts of container images to Google Cloud Run.
//!
//! `main.rs` only calls [`run`]; everything else lives here so tests can drive it.

pub mod analysis;
pub mod auth;
pub mod cli;
pub mod cloudrun;
pub mod decide;
pub mod demo;
pub mod diagnostic;
pub mod emulator;
pub mod error;
pub mod hash;
pub mod logging;
pub mod manifest;
pub mod operate;
pub mod output;
pub mod platform;
pub mod reconcile;
pub mod report;
pub mod state;
pub mod transport;
pub mod view;
pub mod watch;

pub use cli::run;

/// mimalloc instead of the system allocator: a pass over thousands of services is mostly
/// building and dropping small JSON values, where glibc's malloc took about half of the
/// emulator's CPU and a fifth of canary's (measured with perf; see `make bench`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
