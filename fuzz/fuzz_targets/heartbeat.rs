//! The heartbeat decoders: never a panic. Arbitrary bytes go through the serial deframer
//! and the message decoder as they come off the wire (almost all forged), and, signed with
//! the pair's key, through the body decoder: whatever decodes encodes to a message that
//! decodes to the same, and every deframed message frames back to itself. The configuration
//! transfer's request and reply decoders get the same bytes, raw and signed.
#![no_main]

use std::time::Duration;

use director::ha::machine::Channel;
use director::ha::message::{
    decode, encode, frame, seal, Deframer, Key, Receiver, MAX_MESSAGE,
};
use director::ha::transfer::{self, REPLY_MAGIC};
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

    let nonce = [3u8; transfer::NONCE_BYTES];
    let _ = transfer::read_request(&key, data);
    let _ = transfer::reply_length(data);
    let _ = transfer::read_reply(&key, &nonce, data);
    // `data` as the body of a reply that verifies.
    let mut signed = REPLY_MAGIC.to_vec();
    signed.push(director::ha::message::VERSION);
    signed.extend_from_slice(&(data.len() as u32).to_be_bytes());
    signed.extend_from_slice(data);
    let tag = key.sign(&[&nonce[..], &signed].concat());
    signed.extend_from_slice(&tag);
    if let Ok(reply) = transfer::read_reply(&key, &nonce, &signed) {
        let again = transfer::read_reply(&key, &nonce, &transfer::reply(&key, &nonce, &reply));
        assert_eq!(again, Ok(reply), "reply -> read -> reply is not exact");
    }
});
