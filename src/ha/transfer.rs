//! The shared part of the configuration on the wire, between the two nodes over TCP on the
//! heartbeat link (the port of the UDP heartbeat).
//!
//! A node that wants its peer's shared part connects and sends a request: `REQUEST_MAGIC`, the
//! version, a fresh random nonce, its node id, and the HMAC-SHA256 tag of all that under the
//! pair's key. The peer answers with `REPLY_MAGIC`, the version, the length of a CBOR body
//! (revision in force, serial, digest, text), the body, and the tag of the nonce followed by
//! everything before the tag: a reply is bound to the request it answers, so an old reply
//! replayed by someone on the link does not verify. The taker also checks the text against the
//! digest, which its peer's (authenticated) beats announce.

use std::fmt;

use minicbor::{Decoder, Encoder};

use super::message::{Key, TAG_BYTES, VERSION};
use crate::config::replica::{self, Stamp};

pub const REQUEST_MAGIC: [u8; 2] = *b"DQ";
pub const REPLY_MAGIC: [u8; 2] = *b"DA";
pub const NONCE_BYTES: usize = 16;
/// A request is always this long.
pub const REQUEST_BYTES: usize = 3 + NONCE_BYTES + 8 + TAG_BYTES;
/// The largest reply taken (a configuration of thousands of virtual servers fits).
pub const MAX_REPLY: usize = 8 << 20;
/// The header of a reply: magic, version, body length.
pub const REPLY_HEADER: usize = 3 + 4;

/// Why a request or reply is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Not one: wrong length, magic or version.
    Garbage,
    /// The tag does not verify (another key, or not the answer to this request).
    Forged,
    /// Authentic but unreadable.
    Malformed,
    /// Longer than `MAX_REPLY`.
    TooLarge,
    /// The text does not have the digest it claims.
    WrongDigest,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refused::Garbage => "not a configuration transfer",
            Refused::Forged => "its tag does not verify (another key, or a replay)",
            Refused::Malformed => "authentic but unreadable",
            Refused::TooLarge => "too large",
            Refused::WrongDigest => "the text does not match its digest",
        })
    }
}

/// A request for the peer's shared part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    pub nonce: [u8; NONCE_BYTES],
    /// The asking node.
    pub node: u64,
}

/// The shared part a node runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub revision: u64,
    pub stamp: Stamp,
    pub text: String,
}

/// `request` on the wire.
pub fn request(key: &Key, request: &Request) -> [u8; REQUEST_BYTES] {
    let mut bytes = [0u8; REQUEST_BYTES];
    bytes[..2].copy_from_slice(&REQUEST_MAGIC);
    bytes[2] = VERSION;
    bytes[3..3 + NONCE_BYTES].copy_from_slice(&request.nonce);
    bytes[3 + NONCE_BYTES..3 + NONCE_BYTES + 8].copy_from_slice(&request.node.to_be_bytes());
    let signed = REQUEST_BYTES - TAG_BYTES;
    let tag = key.sign(&bytes[..signed]);
    bytes[signed..].copy_from_slice(&tag);
    bytes
}

/// Reads a request.
pub fn read_request(key: &Key, bytes: &[u8]) -> Result<Request, Refused> {
    if bytes.len() != REQUEST_BYTES || bytes[..2] != REQUEST_MAGIC || bytes[2] != VERSION {
        return Err(Refused::Garbage);
    }
    let (signed, tag) = bytes.split_at(REQUEST_BYTES - TAG_BYTES);
    if !key.verify(signed, tag) {
        return Err(Refused::Forged);
    }
    let mut nonce = [0u8; NONCE_BYTES];
    nonce.copy_from_slice(&signed[3..3 + NONCE_BYTES]);
    let mut node = [0u8; 8];
    node.copy_from_slice(&signed[3 + NONCE_BYTES..]);
    Ok(Request {
        nonce,
        node: u64::from_be_bytes(node),
    })
}

/// `reply` on the wire, answering the request that carried `nonce`.
pub fn reply(key: &Key, nonce: &[u8; NONCE_BYTES], reply: &Reply) -> Vec<u8> {
    let mut body = Vec::with_capacity(reply.text.len() + 32);
    // Writing to a Vec cannot fail.
    let _ = Encoder::new(&mut body)
        .array(4)
        .and_then(|e| e.u64(reply.revision))
        .and_then(|e| e.u64(reply.stamp.serial))
        .and_then(|e| e.u32(reply.stamp.digest))
        .and_then(|e| e.str(&reply.text));
    let mut bytes = Vec::with_capacity(REPLY_HEADER + body.len() + TAG_BYTES);
    bytes.extend_from_slice(&REPLY_MAGIC);
    bytes.push(VERSION);
    bytes.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_be_bytes());
    bytes.extend_from_slice(&body);
    let tag = key.sign(&[&nonce[..], &bytes].concat());
    bytes.extend_from_slice(&tag);
    bytes
}

/// How long the whole reply is, from its header (`REPLY_HEADER` bytes).
pub fn reply_length(header: &[u8]) -> Result<usize, Refused> {
    if header.len() < REPLY_HEADER || header[..2] != REPLY_MAGIC || header[2] != VERSION {
        return Err(Refused::Garbage);
    }
    let body = u32::from_be_bytes([header[3], header[4], header[5], header[6]]) as usize;
    let total = REPLY_HEADER + body + TAG_BYTES;
    if total > MAX_REPLY {
        return Err(Refused::TooLarge);
    }
    Ok(total)
}

/// Reads the reply to the request that carried `nonce`.
pub fn read_reply(key: &Key, nonce: &[u8; NONCE_BYTES], bytes: &[u8]) -> Result<Reply, Refused> {
    if reply_length(bytes)? != bytes.len() {
        return Err(Refused::Garbage);
    }
    let (signed, tag) = bytes.split_at(bytes.len() - TAG_BYTES);
    if !key.verify(&[&nonce[..], signed].concat(), tag) {
        return Err(Refused::Forged);
    }
    let mut d = Decoder::new(&signed[REPLY_HEADER..]);
    let read = (|| {
        if d.array().ok()? != Some(4) {
            return None;
        }
        let revision = d.u64().ok()?;
        let serial = d.u64().ok()?;
        let digest = d.u32().ok()?;
        let text = d.str().ok()?.to_string();
        (d.position() == signed.len() - REPLY_HEADER).then_some(Reply {
            revision,
            stamp: Stamp { serial, digest },
            text,
        })
    })();
    let reply = read.ok_or(Refused::Malformed)?;
    if replica::digest(&reply.text) != reply.stamp.digest {
        return Err(Refused::WrongDigest);
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        Key::new(b"the pair's secret")
    }

    fn sample() -> Reply {
        let text = "[ipvs]\nconntrack = false\n".to_string();
        Reply {
            revision: 12,
            stamp: Stamp {
                serial: 4,
                digest: replica::digest(&text),
            },
            text,
        }
    }

    #[test]
    fn a_request_and_its_reply_go_through() {
        let asked = Request {
            nonce: [7; NONCE_BYTES],
            node: 0xab,
        };
        let wire = request(&key(), &asked);
        assert_eq!(read_request(&key(), &wire), Ok(asked));
        let answer = reply(&key(), &asked.nonce, &sample());
        assert_eq!(reply_length(&answer[..REPLY_HEADER]), Ok(answer.len()));
        assert_eq!(read_reply(&key(), &asked.nonce, &answer), Ok(sample()));
    }

    #[test]
    fn forged_replayed_garbled_and_truncated_ones_are_refused() {
        let asked = Request {
            nonce: [7; NONCE_BYTES],
            node: 0xab,
        };
        let other = Key::new(b"another secret");
        assert_eq!(
            read_request(&key(), &request(&other, &asked)),
            Err(Refused::Forged)
        );
        let mut flipped = request(&key(), &asked);
        flipped[5] ^= 1;
        assert_eq!(read_request(&key(), &flipped), Err(Refused::Forged));
        assert_eq!(
            read_request(&key(), &flipped[..REQUEST_BYTES - 1]),
            Err(Refused::Garbage)
        );
        assert_eq!(
            read_request(&key(), b"GET / HTTP/1.0\r\n\r\n"),
            Err(Refused::Garbage)
        );

        let answer = reply(&key(), &asked.nonce, &sample());
        // The answer to another request (a replay) does not verify.
        assert_eq!(
            read_reply(&key(), &[8; NONCE_BYTES], &answer),
            Err(Refused::Forged)
        );
        assert_eq!(
            read_reply(
                &key(),
                &asked.nonce,
                &reply(&other, &asked.nonce, &sample())
            ),
            Err(Refused::Forged)
        );
        assert_eq!(
            read_reply(&key(), &asked.nonce, &answer[..answer.len() - 1]),
            Err(Refused::Garbage)
        );
        let mut changed = answer.clone();
        let at = changed.len() - TAG_BYTES - 2;
        changed[at] ^= 0x20;
        assert_eq!(
            read_reply(&key(), &asked.nonce, &changed),
            Err(Refused::Forged)
        );
        // Signed with the key, but the text is not the one the digest names.
        let mut lying = sample();
        lying.text.push('\n');
        assert_eq!(
            read_reply(&key(), &asked.nonce, &reply(&key(), &asked.nonce, &lying)),
            Err(Refused::WrongDigest)
        );
        let mut huge = answer[..REPLY_HEADER].to_vec();
        huge[3..7].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(reply_length(&huge), Err(Refused::TooLarge));
    }
}
