//! The opsdesk binary's parts: configuration, the command line and the server's wiring.

pub mod cli;
pub mod config;
pub mod jobs;
pub mod server;
