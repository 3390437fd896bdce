//! End-to-end tests of the real `canary` binary. One test binary for all of them, so
//! the crate is linked once.

mod demo;
mod emulator;
mod hostile;
mod independent;
mod reconcile;
mod schema;
mod support;
mod validate;
mod view;
mod watch;
