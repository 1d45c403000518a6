//! The director's parts, shared by the `director` binary (`src/main.rs`), the integration
//! tests and the fuzz targets: PID 1 (`init`), the control plane (`daemon`), the configuration
//! (`config`), the command line (`ctl`), the health checks of real servers (`health`), the
//! HTTPS admin endpoint (`admin`), and every kernel touch point (`sys`).

pub mod admin;
pub mod config;
pub mod console;
pub mod control;
pub mod ctl;
pub mod daemon;
pub mod ha;
pub mod health;
pub mod init;
pub mod ipvs;
pub mod logging;
pub mod net;
pub mod power;
#[cfg(test)]
mod scratch;
pub mod sys;
pub mod tls;
