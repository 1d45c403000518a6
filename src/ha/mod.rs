//! The pair: two directors, one active. `machine` decides (a pure step function); `message`
//! is the heartbeat on the wire (CBOR, HMAC-SHA256, replay protection, serial framing);
//! `transfer` moves the configuration's shared part between the nodes.

pub mod machine;
pub mod message;
pub mod run;
pub mod transfer;
