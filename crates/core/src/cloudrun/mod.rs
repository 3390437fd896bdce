//! Cloud Run: the service as canary reads and changes it.

pub mod service;
