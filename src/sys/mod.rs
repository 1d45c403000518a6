//! Every touch point with the kernel. Nothing outside this module makes a system call; paths
//! such as /proc or a block device are parameters so that tests can point them elsewhere.
//! This module knows nothing of the product's model.

pub mod announce;
pub mod block;
pub mod clock;
pub mod ipvs;
pub mod kmod;
pub mod mount;
pub mod ping;
pub mod power;
pub mod process;
pub mod rtnl;
pub mod sched;
pub mod signals;
pub mod sysctl;
pub mod tty;
pub mod watchdog;
