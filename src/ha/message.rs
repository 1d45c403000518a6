//! The heartbeat on the wire.
//!
//! A message is `MAGIC`, a version byte, a CBOR array (the sender's node id, incarnation,
//! sequence number and monotonic time in milliseconds, then its `Beat`), and an HMAC-SHA256
//! tag under the pair's shared key over everything before it. A UDP datagram is one message;
//! on the serial line each message is COBS-encoded between zero bytes, so that a frame never
//! holds a zero, a receiver resynchronises at the next zero after line noise, and noise never
//! parses as a message (its tag would have to match).
//!
//! `Receiver` accepts a message only if its tag verifies, it decodes whole, and it is fresh:
//! - the incarnation (a counter the sender raises at every start) is not older than the
//!   latest seen; a newer one starts the sequence again;
//! - the sequence number is higher than the last accepted on the same channel (the same beat
//!   goes out on every channel);
//! - it is not late: the sender's clock and ours advance together, so the difference between
//!   our time of receipt and its time of sending is constant but for the delay of the
//!   channel; a message that took longer than `max_delay` beyond the quickest seen (a replay
//!   of an old one, held back by an attacker) is stale.
//!
//! Everything on the receive path lives in fixed-size buffers.

use std::fmt;
use std::time::Duration;

use heapless::Vec as Buffer;
use minicbor::encode::write::Cursor;
use minicbor::{Decoder, Encoder};
use ring::hmac;

use super::machine::{Beat, Channel, Fitness, Intent, Role};
use crate::config::model::RolePreference;
use crate::config::replica::Stamp;

/// The first bytes of every message.
pub const MAGIC: [u8; 2] = *b"DH";
pub const VERSION: u8 = 2;
/// The version before the shared part's stamp: still read, so that a pair upgraded one node
/// at a time keeps hearing each other (the old node's beats carry no stamp: nothing is
/// replicated until both run this version).
const VERSION_1: u8 = 1;
/// Fields of a version 1 beat.
const FIELDS_V1: u64 = 14;
/// The tag: HMAC-SHA256.
pub const TAG_BYTES: usize = 32;
/// The largest message (a beat is about 80 bytes).
pub const MAX_MESSAGE: usize = 160;
/// The largest serial frame: COBS adds a byte per 254, and the delimiters.
pub const MAX_FRAME: usize = MAX_MESSAGE + MAX_MESSAGE / 254 + 4;
/// Fields in the CBOR array.
const FIELDS: u64 = 16;

pub type Message = Buffer<u8, MAX_MESSAGE>;
pub type Frame = Buffer<u8, MAX_FRAME>;

/// What goes in a message besides the beat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub incarnation: u64,
    pub sequence: u64,
    /// The sender's monotonic clock.
    pub sent_ms: u64,
    pub beat: Beat,
}

/// Why a message was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rejected {
    /// Not a heartbeat: short, wrong magic or version, or a serial frame that is no COBS.
    Garbage,
    /// The tag does not verify: a forged message, or a peer with another key.
    Forged,
    /// Authentic but not a beat this version reads.
    Malformed,
    /// An incarnation older than the latest seen.
    OldIncarnation,
    /// A sequence number already seen on this channel.
    Replayed,
    /// Later than any channel delay explains.
    Stale,
}

impl Rejected {
    pub const ALL: [Rejected; 6] = [
        Rejected::Garbage,
        Rejected::Forged,
        Rejected::Malformed,
        Rejected::OldIncarnation,
        Rejected::Replayed,
        Rejected::Stale,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Rejected::Garbage => "garbage",
            Rejected::Forged => "forged",
            Rejected::Malformed => "malformed",
            Rejected::OldIncarnation => "old incarnation",
            Rejected::Replayed => "replayed",
            Rejected::Stale => "stale",
        }
    }

    fn index(self) -> usize {
        Rejected::ALL
            .iter()
            .position(|r| *r == self)
            .unwrap_or_default()
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The pair's shared key.
pub struct Key(hmac::Key);

impl Key {
    pub fn new(secret: &[u8]) -> Key {
        Key(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }
}

impl Key {
    /// The tag of `data`.
    pub fn sign(&self, data: &[u8]) -> [u8; TAG_BYTES] {
        let mut tag = [0u8; TAG_BYTES];
        tag.copy_from_slice(hmac::sign(&self.0, data).as_ref());
        tag
    }

    /// Whether `tag` is the tag of `data` (in constant time).
    pub fn verify(&self, data: &[u8], tag: &[u8]) -> bool {
        hmac::verify(&self.0, data, tag).is_ok()
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(..)")
    }
}

/// `envelope` as a signed message.
pub fn encode(key: &Key, envelope: &Envelope) -> Message {
    let mut body = [0u8; MAX_MESSAGE];
    let mut cursor = Cursor::new(&mut body[..MAX_MESSAGE - 3 - TAG_BYTES]);
    let beat = &envelope.beat;
    let mut e = Encoder::new(&mut cursor);
    // The largest beat fits with room to spare (a test encodes the largest values).
    let written = e
        .array(FIELDS)
        .and_then(|e| e.u64(beat.node))
        .and_then(|e| e.u64(envelope.incarnation))
        .and_then(|e| e.u64(envelope.sequence))
        .and_then(|e| e.u64(envelope.sent_ms))
        .and_then(|e| e.u8(beat.role.code()))
        .and_then(|e| e.u8(preference_code(beat.preference)))
        .and_then(|e| e.u8(beat.priority))
        .and_then(|e| e.bool(beat.fitness.links_up))
        .and_then(|e| e.u8(beat.fitness.pings))
        .and_then(|e| e.u8(beat.intent.code()))
        .and_then(|e| e.u64(beat.intent_epoch))
        .and_then(|e| e.bool(beat.leaving))
        .and_then(|e| e.u64(beat.revision))
        .and_then(|e| e.bool(beat.defers))
        .and_then(|e| e.u64(beat.shared.serial))
        .and_then(|e| e.u32(beat.shared.digest))
        .is_ok();
    debug_assert!(written, "a beat fits in a message");
    let len = cursor.position();
    seal(key, &body[..len]).unwrap_or_default()
}

/// A message of `body` (the CBOR): the header, the body and the tag; None when it would be
/// longer than `MAX_MESSAGE`.
pub fn seal(key: &Key, body: &[u8]) -> Option<Message> {
    seal_as(VERSION, key, body)
}

fn seal_as(version: u8, key: &Key, body: &[u8]) -> Option<Message> {
    let mut message = Message::new();
    message.extend_from_slice(&MAGIC).ok()?;
    message.push(version).ok()?;
    message.extend_from_slice(body).ok()?;
    let tag = hmac::sign(&key.0, &message);
    message.extend_from_slice(tag.as_ref()).ok()?;
    Some(message)
}

/// Checks the tag of `bytes` and reads it; no freshness check (that is `Receiver`'s).
pub fn decode(key: &Key, bytes: &[u8]) -> Result<Envelope, Rejected> {
    if bytes.len() < 3 + TAG_BYTES || bytes.len() > MAX_MESSAGE {
        return Err(Rejected::Garbage);
    }
    if bytes[..2] != MAGIC || (bytes[2] != VERSION && bytes[2] != VERSION_1) {
        return Err(Rejected::Garbage);
    }
    let (signed, tag) = bytes.split_at(bytes.len() - TAG_BYTES);
    hmac::verify(&key.0, signed, tag).map_err(|_| Rejected::Forged)?;
    read_body(bytes[2], &signed[3..]).ok_or(Rejected::Malformed)
}

fn read_body(version: u8, body: &[u8]) -> Option<Envelope> {
    let mut d = Decoder::new(body);
    let fields = if version == VERSION_1 {
        FIELDS_V1
    } else {
        FIELDS
    };
    if d.array().ok()? != Some(fields) {
        return None;
    }
    let node = d.u64().ok()?;
    let incarnation = d.u64().ok()?;
    let sequence = d.u64().ok()?;
    let sent_ms = d.u64().ok()?;
    let role = Role::from_code(d.u8().ok()?)?;
    let preference = preference_from(d.u8().ok()?)?;
    let priority = d.u8().ok()?;
    let links_up = d.bool().ok()?;
    let pings = d.u8().ok()?;
    let intent = Intent::from_code(d.u8().ok()?)?;
    let intent_epoch = d.u64().ok()?;
    let leaving = d.bool().ok()?;
    let revision = d.u64().ok()?;
    let defers = d.bool().ok()?;
    let shared = if version == VERSION_1 {
        Stamp::default()
    } else {
        Stamp {
            serial: d.u64().ok()?,
            digest: d.u32().ok()?,
        }
    };
    if d.position() != body.len() {
        return None;
    }
    Some(Envelope {
        incarnation,
        sequence,
        sent_ms,
        beat: Beat {
            node,
            role,
            preference,
            priority,
            fitness: Fitness { links_up, pings },
            intent,
            intent_epoch,
            leaving,
            revision,
            defers,
            shared,
        },
    })
}

fn preference_code(preference: RolePreference) -> u8 {
    match preference {
        RolePreference::Backup => 0,
        RolePreference::Equal => 1,
        RolePreference::Primary => 2,
    }
}

fn preference_from(code: u8) -> Option<RolePreference> {
    Some(match code {
        0 => RolePreference::Backup,
        1 => RolePreference::Equal,
        2 => RolePreference::Primary,
        _ => return None,
    })
}

/// The freshness rules and the counts of refused messages.
#[derive(Clone, Debug, Default)]
pub struct Receiver {
    incarnation: Option<u64>,
    /// The last sequence number accepted per channel, in this incarnation.
    sequences: [Option<u64>; 2],
    /// The smallest (our time of receipt - its time of sending) seen in this incarnation.
    offset: Option<i128>,
    rejected: [u64; 6],
    accepted: u64,
}

impl Receiver {
    pub fn new() -> Receiver {
        Receiver::default()
    }

    /// Checks a message that arrived on `channel` at `now_ms` (our monotonic clock): its
    /// content, or why it is refused (counted). `max_delay`: how much slower than the
    /// quickest a message may travel.
    pub fn accept(
        &mut self,
        key: &Key,
        channel: Channel,
        bytes: &[u8],
        now_ms: u64,
        max_delay: Duration,
    ) -> Result<Envelope, Rejected> {
        let result = decode(key, bytes).and_then(|m| self.fresh(channel, m, now_ms, max_delay));
        match result {
            Ok(_) => self.accepted += 1,
            Err(why) => self.rejected[why.index()] += 1,
        }
        result
    }

    fn fresh(
        &mut self,
        channel: Channel,
        message: Envelope,
        now_ms: u64,
        max_delay: Duration,
    ) -> Result<Envelope, Rejected> {
        let slot = match channel {
            Channel::Udp => 0,
            Channel::Serial => 1,
        };
        match self.incarnation {
            Some(latest) if message.incarnation < latest => return Err(Rejected::OldIncarnation),
            Some(latest) if message.incarnation == latest => {
                if self.sequences[slot].is_some_and(|last| message.sequence <= last) {
                    return Err(Rejected::Replayed);
                }
            }
            _ => {
                self.incarnation = Some(message.incarnation);
                self.sequences = [None; 2];
                self.offset = None;
            }
        }
        let offset = i128::from(now_ms) - i128::from(message.sent_ms);
        let quickest = self.offset.map_or(offset, |o| o.min(offset));
        if offset - quickest > max_delay.as_millis() as i128 {
            return Err(Rejected::Stale);
        }
        self.offset = Some(quickest);
        self.sequences[slot] = Some(message.sequence);
        Ok(message)
    }

    /// Counts a refusal made before a message could be read (a bad serial frame).
    pub fn count(&mut self, why: Rejected) {
        self.rejected[why.index()] += 1;
    }

    /// Messages refused for `why`.
    pub fn rejected(&self, why: Rejected) -> u64 {
        self.rejected[why.index()]
    }

    pub fn accepted(&self) -> u64 {
        self.accepted
    }
}

/// `message` as a serial frame: COBS between zero bytes.
pub fn frame(message: &Message) -> Frame {
    let mut frame = Frame::new();
    // Sizes are bounded by MAX_FRAME for any message up to MAX_MESSAGE.
    let _ = frame.push(0);
    let mut code_at = frame.len();
    let _ = frame.push(0);
    let mut code = 1u8;
    for &byte in message {
        if byte == 0 {
            frame[code_at] = code;
            code_at = frame.len();
            let _ = frame.push(0);
            code = 1;
        } else {
            let _ = frame.push(byte);
            code += 1;
            if code == 0xff {
                frame[code_at] = code;
                code_at = frame.len();
                let _ = frame.push(0);
                code = 1;
            }
        }
    }
    frame[code_at] = code;
    let _ = frame.push(0);
    frame
}

/// Cuts a byte stream from the serial line into messages.
#[derive(Clone, Debug, Default)]
pub struct Deframer {
    pending: Frame,
    /// The current frame grew too long: skipped up to the next zero.
    skipping: bool,
}

impl Deframer {
    pub fn new() -> Deframer {
        Deframer::default()
    }

    /// Feeds one byte; a whole frame gives its message, or `Garbage` for a frame that is no
    /// COBS or too long (empty frames between delimiters are nothing).
    pub fn push(&mut self, byte: u8) -> Option<Result<Message, Rejected>> {
        if byte != 0 {
            if !self.skipping && self.pending.push(byte).is_err() {
                self.skipping = true;
                self.pending.clear();
            }
            return None;
        }
        let skipped = std::mem::take(&mut self.skipping);
        if skipped {
            return Some(Err(Rejected::Garbage));
        }
        if self.pending.is_empty() {
            return None;
        }
        let result = unstuff(&self.pending).ok_or(Rejected::Garbage);
        self.pending.clear();
        Some(result)
    }
}

/// Decodes a COBS frame (without its zeros).
fn unstuff(frame: &[u8]) -> Option<Message> {
    let mut message = Message::new();
    let mut at = 0;
    while at < frame.len() {
        let code = frame[at] as usize;
        if code == 0 || at + code > frame.len() {
            return None;
        }
        message.extend_from_slice(&frame[at + 1..at + code]).ok()?;
        at += code;
        if code < 0xff && at < frame.len() {
            message.push(0).ok()?;
        }
    }
    Some(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat() -> Beat {
        Beat {
            node: 0x0123_4567_89ab_cdef,
            role: Role::Active,
            preference: RolePreference::Primary,
            priority: 150,
            fitness: Fitness {
                links_up: true,
                pings: 2,
            },
            intent: Intent::None,
            intent_epoch: 3,
            leaving: false,
            shared: Stamp {
                serial: 5,
                digest: 0x1234_5678,
            },
            revision: 42,
            defers: true,
        }
    }

    fn envelope(sequence: u64, sent_ms: u64) -> Envelope {
        Envelope {
            incarnation: 7,
            sequence,
            sent_ms,
            beat: beat(),
        }
    }

    fn key() -> Key {
        Key::new(b"a pair's shared key")
    }

    const DELAY: Duration = Duration::from_millis(500);

    #[test]
    fn a_message_reads_back_and_its_largest_form_fits() {
        let message = encode(&key(), &envelope(1, 1000));
        assert_eq!(decode(&key(), &message), Ok(envelope(1, 1000)));
        let mut big = envelope(u64::MAX, u64::MAX);
        big.incarnation = u64::MAX;
        big.beat.node = u64::MAX;
        big.beat.revision = u64::MAX;
        big.beat.shared = Stamp {
            serial: u64::MAX,
            digest: u32::MAX,
        };
        big.beat.intent_epoch = u64::MAX;
        big.beat.priority = u8::MAX;
        big.beat.fitness.pings = u8::MAX;
        let message = encode(&key(), &big);
        assert!(message.len() <= MAX_MESSAGE - 40, "{} bytes", message.len());
        assert_eq!(decode(&key(), &message), Ok(big));
    }

    #[test]
    fn wrong_keys_changed_bytes_and_garbage_are_refused() {
        let message = encode(&key(), &envelope(1, 1000));
        assert_eq!(
            decode(&Key::new(b"another key, same length"), &message),
            Err(Rejected::Forged)
        );
        for i in 3..message.len() {
            let mut changed = message.clone();
            changed[i] ^= 0x01;
            assert_eq!(decode(&key(), &changed), Err(Rejected::Forged), "byte {i}");
        }
        for cut in 0..message.len() {
            assert!(decode(&key(), &message[..cut]).is_err(), "cut at {cut}");
        }
        assert_eq!(decode(&key(), b"hello"), Err(Rejected::Garbage));
        let mut other = message.clone();
        other[2] = 9;
        assert_eq!(decode(&key(), &other), Err(Rejected::Garbage));
    }

    #[test]
    fn a_version_1_beat_of_a_node_not_yet_upgraded_is_read() {
        let mut body = [0u8; MAX_MESSAGE];
        let len = {
            let mut cursor = Cursor::new(&mut body[..]);
            let mut e = Encoder::new(&mut cursor);
            e.array(FIELDS_V1).expect("room");
            for n in [0xab, 3, 17, 5000] {
                e.u64(n).expect("room");
            }
            e.u8(Role::Active.code()).expect("room");
            e.u8(preference_code(RolePreference::Backup)).expect("room");
            e.u8(100).expect("room");
            e.bool(true).expect("room");
            e.u8(1).expect("room");
            e.u8(Intent::None.code()).expect("room");
            e.u64(0).expect("room");
            e.bool(false).expect("room");
            e.u64(7).expect("room");
            e.bool(false).expect("room");
            cursor.position()
        };
        let bytes = seal_as(VERSION_1, &key(), &body[..len]).expect("fits");
        let envelope = decode(&key(), &bytes).expect("a version 1 beat");
        assert_eq!(envelope.beat.node, 0xab);
        assert_eq!(envelope.beat.role, Role::Active);
        assert_eq!(envelope.beat.revision, 7);
        assert_eq!(envelope.beat.shared, Stamp::default());
        // A version 2 body under a version 1 header is not read.
        let v2 = encode(&key(), &envelope);
        let mut relabelled = v2[..v2.len() - TAG_BYTES].to_vec();
        relabelled[2] = VERSION_1;
        let resealed = seal_as(VERSION_1, &key(), &relabelled[3..]).expect("fits");
        assert_eq!(decode(&key(), &resealed), Err(Rejected::Malformed));
    }

    #[test]
    fn a_signed_message_that_is_not_a_beat_is_malformed() {
        // Signed with the right key, but an unknown role code.
        let mut body = [0u8; 64];
        let len = {
            let mut cursor = Cursor::new(&mut body[..]);
            let mut e = Encoder::new(&mut cursor);
            e.array(FIELDS).expect("room");
            for _ in 0..4 {
                e.u64(1).expect("room");
            }
            e.u8(9).expect("room");
            cursor.position()
        };
        let bytes = seal(&key(), &body[..len]).expect("fits");
        assert_eq!(decode(&key(), &bytes), Err(Rejected::Malformed));
    }

    #[test]
    fn replays_old_incarnations_and_late_messages_are_refused_and_counted() {
        let key = key();
        let mut receiver = Receiver::new();
        let first = encode(&key, &envelope(10, 1000));
        // Sent at 1000 on its clock, received at 5000 on ours: offset 4000.
        assert!(receiver
            .accept(&key, Channel::Udp, &first, 5000, DELAY)
            .is_ok());
        // The same beat on the other channel is fine; twice on one is a replay.
        assert!(receiver
            .accept(&key, Channel::Serial, &first, 5003, DELAY)
            .is_ok());
        assert_eq!(
            receiver.accept(&key, Channel::Udp, &first, 5010, DELAY),
            Err(Rejected::Replayed)
        );
        let next = encode(&key, &envelope(11, 1100));
        assert!(receiver
            .accept(&key, Channel::Udp, &next, 5101, DELAY)
            .is_ok());
        // A beat held back: sent at 1200, arriving 600 ms later than the quickest path.
        let held = encode(&key, &envelope(12, 1200));
        assert_eq!(
            receiver.accept(&key, Channel::Udp, &held, 5800, DELAY),
            Err(Rejected::Stale)
        );
        // A new incarnation (the peer restarted) starts again; the old one is refused.
        let mut reborn = envelope(1, 50);
        reborn.incarnation = 8;
        assert!(receiver
            .accept(&key, Channel::Udp, &encode(&key, &reborn), 6000, DELAY)
            .is_ok());
        assert_eq!(
            receiver.accept(
                &key,
                Channel::Udp,
                &encode(&key, &envelope(13, 1300)),
                6001,
                DELAY
            ),
            Err(Rejected::OldIncarnation)
        );
        let forged = encode(&Key::new(b"not the pair's key"), &envelope(99, 1400));
        assert_eq!(
            receiver.accept(&key, Channel::Udp, &forged, 6002, DELAY),
            Err(Rejected::Forged)
        );
        assert_eq!(receiver.accepted(), 4);
        assert_eq!(receiver.rejected(Rejected::Replayed), 1);
        assert_eq!(receiver.rejected(Rejected::Stale), 1);
        assert_eq!(receiver.rejected(Rejected::OldIncarnation), 1);
        assert_eq!(receiver.rejected(Rejected::Forged), 1);
    }

    #[test]
    fn serial_frames_survive_noise_around_them() {
        let message = encode(&key(), &envelope(1, 1000));
        let framed = frame(&message);
        assert_eq!(framed[0], 0);
        assert_eq!(framed[framed.len() - 1], 0);
        assert!(!framed[1..framed.len() - 1].contains(&0));
        let mut stream: Vec<u8> = b"line noise \x13\x37 and more".to_vec();
        stream.extend_from_slice(&framed);
        stream.extend_from_slice(&[0x41; 300]);
        stream.push(0);
        stream.extend_from_slice(&framed[..framed.len() / 2]);
        stream.extend_from_slice(&framed);
        let mut deframer = Deframer::new();
        let results: Vec<_> = stream.iter().filter_map(|b| deframer.push(*b)).collect();
        let good: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        // The noise before the first frame ends at its leading zero and is refused (it is
        // no COBS, or decodes to something that is no message); so is the overlong run and
        // the cut frame (whose remainder joins nothing: the next frame's zero ends it).
        let decoded: Vec<_> = good.iter().filter_map(|m| decode(&key(), m).ok()).collect();
        assert_eq!(decoded, vec![envelope(1, 1000), envelope(1, 1000)]);
        assert!(results.iter().any(|r| r.is_err()));
    }

    #[test]
    fn cobs_round_trips_zeros_and_long_runs() {
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            vec![0],
            vec![0, 0],
            vec![1, 0, 2],
            (1..=MAX_MESSAGE as u8).collect(),
            (0..MAX_MESSAGE).map(|i| (i % 7) as u8).collect(),
            vec![0xff; MAX_MESSAGE],
        ];
        for case in cases {
            let framed = frame(&Message::from_slice(&case).expect("fits"));
            assert!(framed.len() <= MAX_FRAME);
            let mut deframer = Deframer::new();
            let out: Vec<_> = framed.iter().filter_map(|b| deframer.push(*b)).collect();
            if case.is_empty() {
                // An empty message is the frame [0, 1, 0]: a one-byte frame, decoded empty.
                assert_eq!(out.len(), 1);
                continue;
            }
            assert_eq!(
                out,
                vec![Ok(Message::from_slice(&case).expect("fits"))],
                "{case:?}"
            );
        }
    }
}
