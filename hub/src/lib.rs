//! Hearth, a local-first smart-home hub.
//!
//! # Layout
//! - [`cli`]: the `hearth` command and its subcommands.
//! - [`config`]: `hearth.toml` to a typed [`config::Config`], with line-accurate errors.
//! - [`runtime`]: starts the hub's long-lived tasks in order and stops them in stages.
//! - [`automations`]: the task that drives the automation engine (`hearth-automations`) with
//!   bus events, MQTT messages, API requests and the clock, and carries out what it asks.
//! - [`core`]: the state store task (single owner of devices, areas, state), the event bus and
//!   the command router.
//! - [`store`]: SQLite: migrations, the one writer thread, history and reads.
//! - [`api`]: warp: the route table, REST handlers, the WebSocket, the embedded UI.
//! - [`auth`]: accounts (argon2id) with roles and areas, sessions and API tokens (stored hashed).
//! - [`throttle`]: login throttling in memory, per account and per client address.
//! - [`audit`]: the audit log of logins and administrators' actions.
//! - [`broker`]: the built-in MQTT broker behind a small interface.
//! - [`adapters`]: the explicit list of built-in adapters.
//! - [`metrics`]: `/metrics` in Prometheus text.
//! - [`status`]: `hearth status`, a summary of a hub from the command line.
//! - [`backup`]: the backup archive, `hearth backup` and `hearth restore`, scheduled backups.
//!
//! The long-lived tasks and what happens to each at shutdown are listed in [`runtime`].
#![forbid(unsafe_code)]

pub mod adapters;
pub mod api;
pub mod audit;
pub mod auth;
pub mod automations;
pub mod backup;
pub mod broker;
pub mod cli;
pub mod cloud;
pub mod config;
pub mod core;
pub mod home_assistant;
pub mod inbox;
pub mod jitter;
pub mod metrics;
pub mod notify;
pub mod plugins;
pub mod runtime;
pub mod secrets;
pub mod status;
pub mod store;
pub mod throttle;
