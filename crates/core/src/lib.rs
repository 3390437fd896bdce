//! canary's core: everything the product does, apart from the command line. It reads
//! manifests, observes Cloud Run services and Cloud Monitoring, judges each stage,
//! decides, acts, and renders what a person reads. It knows nothing of the emulator:
//! it speaks Google's APIs, which the emulator (crates/emulator) happens to serve.

pub mod analysis;
pub mod auth;
pub mod cloudrun;
pub mod decide;
pub mod diagnostic;
pub mod error;
pub mod hash;
pub mod manifest;
pub mod operate;
pub mod output;
pub mod platform;
pub mod reconcile;
pub mod report;
pub mod state;
pub mod status;
pub mod style;
pub mod time;
pub mod transport;
pub mod view;
pub mod watch;
