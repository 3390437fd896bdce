//! The `CanaryRollout` manifest: its types, loading with source locations, its JSON
//! Schema, and validation in layers (YAML, schema, meaning, the set as a whole).

pub mod document;
pub(crate) mod finding;
pub(crate) mod image;
pub mod load;
pub(crate) mod quantity;
pub(crate) mod rules;
pub mod schema;
pub(crate) mod schema_check;
pub mod source;
pub mod types;

pub use load::{Manifest, ManifestSet, load};
pub use types::CanaryRollout;
