//! Hearth's automation engine: triggers, conditions, actions, scenes and durable runs.
//!
//! # Layout
//! - [`clock`]: the engine's only source of time, so tests drive time deterministically.
//! - [`duration`]: durations (`30s`, `1h30m`) and times of day (`07:30`) as people write them.
//! - [`sun`]: sunrise, sunset and the sun's elevation, computed offline from latitude and longitude.
//! - [`model`]: automations and scenes, their JSON form.
//! - [`validate`]: checks an automation against the home, naming the path of each fault.
//!
//! Invariant: this crate depends on `hearth-sdk` only; the hub drives it.
#![forbid(unsafe_code)]

pub mod clock;
pub mod diff;
pub mod duration;
pub mod engine;
pub mod matching;
pub mod model;
pub mod say;
pub mod schedule;
pub mod sun;
pub mod text;
pub mod trace;
pub mod validate;
pub mod zone;
