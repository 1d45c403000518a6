//! The pair: two directors, one active. `machine` decides (a pure step function); `message`
//! is the heartbeat on the wire (CBOR, HMAC-SHA256, replay protection, serial framing).

pub mod machine;
pub mod message;
pub mod run;
