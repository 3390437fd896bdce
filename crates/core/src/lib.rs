//! canary's core: everything the product does, apart from the command line. It reads
//! manifests, observes Cloud Run services and Cloud Monitoring, judges each stage,
//! decides, acts, and renders what a person reads. It knows nothing of the emulator:
//! it speaks Google's APIs, which the emulator (crates/emulator) happens to serve.
//!
//! # Public API, on purpose
//!
//! Everything is `pub(crate)` unless another crate of the workspace uses it. Every
//! top-level module is used from outside, so all stay `pub`; inside them only what
//! these users need is:
//!
//! - the binary (src/), which is the command line over this crate: [`manifest`]
//!   (loading, the schema, diagnostics with [`diagnostic`]), [`reconcile`] and
//!   [`operate`] (a pass and the manual commands), [`watch`], [`view`], [`status`],
//!   [`output`], [`report`], [`platform::Gcp`] with [`auth`], [`error`], [`style`],
//!   [`time`], [`hash`], and [`decide::PassResult`] and [`state::Phase`] to choose
//!   exit codes and messages;
//! - canary-inprocess and its tests, which put the emulator behind the
//!   [`platform`] traits and check a pass's effects: [`platform`]'s traits,
//!   [`transport::ApiFailure`], [`reconcile`], [`operate`], [`decide`]'s plan,
//!   [`state`]'s annotations, [`cloudrun::service::ServiceView`], and
//!   [`manifest::document::parse`] with [`manifest::load::validate`] to build rollouts;
//! - examples/judge_eval.rs, which measures the judgement on simulated traffic:
//!   [`analysis`] (a window's [`analysis::judge::Evidence`], [`analysis::stats`]'s
//!   bounds) and [`manifest::types::CanaryRollout`].
//!
//! Some types are `pub` inside a `pub(crate)` module (`manifest::quantity::Duration`,
//! `manifest::finding::Finding`, …): they appear in public fields or signatures, but no
//! other crate names them.

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
