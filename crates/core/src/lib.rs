//! # pg_nango core
//!
//! Everything pg_nango does that does not need Postgres, so that it can be tested with plain `cargo test`:
//!
//! - [`config`] reads `nango.yaml` (v1 and v2), its model grammar and `runs:` frequencies;
//! - [`providers`] reads the provider catalog and turns a script's proxy call into an authenticated HTTP
//!   request, with Nango's retry rules;
//! - [`script`] compiles TypeScript at deploy and runs scripts in QuickJS with the `nango` object;
//! - [`records`] holds the record rules that are not SQL: notification bodies and the record filters.
//!
//! The `pg_nango` extension crate is the thin Postgres shell around this: SQL functions, background workers
//! and the SPI implementation of [`script::Host`].

pub mod config;
pub mod deploy;
pub mod jobs;
pub mod providers;
pub mod records;
pub mod script;
