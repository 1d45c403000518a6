//! The HTTPS admin endpoint: a TLS front of our own (`front`, rustls) before tiny-http, the
//! box's certificate (`cert`), who may do what (`auth`) and the JSON API (`api`). It changes
//! the system only through the store and the daemon's commands, as the command line does.

pub mod api;
pub mod auth;
pub mod cert;
pub mod client;
pub mod front;
pub mod metrics;
pub mod server;
#[cfg(test)]
pub(crate) mod testing;
