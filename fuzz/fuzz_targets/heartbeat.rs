//! The heartbeat decoders: never a panic. Arbitrary bytes go through the serial deframer
//! and the message decoder as they come off the wire (almost all forged), and, signed with
//! the pair's key, through the body decoder: whatever decodes encodes to a message that
//! decodes to the same, and every deframed message frames back to itself.
#![no_main]

use std::time::Duration;

use director::ha::machine::Channel;
use director::ha::message::{
    decode, encode, frame, seal, Deframer, Key, Receiver, MAX_MESSAGE,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = Key::new(b"the fuzzer's pair key");
    let mut receiver = Receiver::new();
    let _ = receiver.accept(&key, Channel::Udp, data, 1000, Duration::from_millis(500));

    let mut deframer = Deframer::new();
    for byte in data {
        if let Some(Ok(message)) = deframer.push(*byte) {
            assert!(message.len() <= MAX_MESSAGE);
            let mut again = Deframer::new();
            let back: Vec<_> = frame(&message)
                .iter()
                .filter_map(|b| again.push(*b))
                .collect();
            if !message.is_empty() {
                assert_eq!(back, vec![Ok(message.clone())], "frame -> deframe is not exact");
            }
            let _ = receiver.accept(&key, Channel::Serial, &message, 1001, Duration::ZERO);
        }
    }

    if let Some(sealed) = seal(&key, data) {
        if let Ok(envelope) = decode(&key, &sealed) {
            let again = decode(&key, &encode(&key, &envelope));
            assert_eq!(again, Ok(envelope), "decode -> encode -> decode is not exact");
        }
    }
});
