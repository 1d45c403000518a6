//! Who may use the admin endpoint. One admin password, kept in the configuration only as a
//! salted PBKDF2-HMAC-SHA256 hash; API tokens for scripts, kept in the store only as SHA-256
//! digests (a token is 256 random bits: a fast digest is enough); browser sessions in memory
//! (a daemon restart logs everyone out) with an idle and an absolute lifetime, each with its
//! own CSRF token that a change made with the session's cookie must carry; and failed logins
//! slowed down per source address.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use ring::pbkdf2;
use ring::rand::{SecureRandom, SystemRandom};

/// PBKDF2 rounds for a new password hash: about a quarter of a second on the box's CPU.
pub const ITERATIONS: u32 = 200_000;
const SALT_LEN: usize = 16;
const HASH_LEN: usize = 32;
/// The name of the browser's session cookie.
pub const COOKIE: &str = "director_session";
/// The prefix of an API token, so that one pasted in the wrong place is recognised.
pub const TOKEN_PREFIX: &str = "dtk_";

/// `pbkdf2-sha256$ITERATIONS$SALT$HASH` (salt and hash in unpadded base64) for `password`.
pub fn hash_password(password: &str, iterations: u32) -> Result<String, String> {
    if password.chars().count() < 8 {
        return Err("the password must have at least 8 characters".into());
    }
    let rounds = NonZeroU32::new(iterations).ok_or("iterations must not be 0")?;
    let mut salt = [0u8; SALT_LEN];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| "the random source failed")?;
    let mut hash = [0u8; HASH_LEN];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        rounds,
        &salt,
        password.as_bytes(),
        &mut hash,
    );
    Ok(format!(
        "pbkdf2-sha256${iterations}${}${}",
        base64::encode(&salt),
        base64::encode(&hash)
    ))
}

/// Whether `password` matches `stored` (as `hash_password` writes it); a malformed `stored`
/// matches nothing.
pub fn verify_password(stored: &str, password: &str) -> bool {
    let parts: Vec<&str> = stored.split('$').collect();
    let [scheme, iterations, salt, hash] = parts.as_slice() else {
        return false;
    };
    let (Some(rounds), Some(salt), Some(hash)) = (
        iterations.parse().ok().and_then(NonZeroU32::new),
        base64::decode(salt),
        base64::decode(hash),
    ) else {
        return false;
    };
    *scheme == "pbkdf2-sha256"
        && pbkdf2::verify(
            pbkdf2::PBKDF2_HMAC_SHA256,
            rounds,
            &salt,
            password.as_bytes(),
            &hash,
        )
        .is_ok()
}

/// 32 random bytes as hex.
pub fn random_hex() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| "the random source failed".to_string())?;
    Ok(hex(&bytes))
}

pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// A new API token: what the user is given once (`dtk_` and 64 hex digits) and what is kept.
pub fn new_token() -> Result<(String, [u8; 32]), String> {
    let token = format!("{TOKEN_PREFIX}{}", random_hex()?);
    let digest = token_digest(&token);
    Ok((token, digest))
}

pub fn token_digest(token: &str) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// A kept API token: its name and digest, and when it was made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub name: String,
    pub digest: [u8; 32],
    pub created_ms: u64,
}

/// The tokens as the store keeps them: one line per token, `name created_ms digest-hex`.
pub fn encode_tokens(tokens: &[Token]) -> Vec<u8> {
    let mut out = String::new();
    for t in tokens {
        let _ = writeln!(out, "{} {} {}", t.name, t.created_ms, hex(&t.digest));
    }
    out.into_bytes()
}

pub fn decode_tokens(bytes: &[u8]) -> Result<Vec<Token>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "the token list is not text")?;
    let mut tokens = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let bad = || format!("the token list, line {}: malformed", i + 1);
        let mut words = line.split(' ');
        let (Some(name), Some(created), Some(digest), None) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            return Err(bad());
        };
        let created_ms = created.parse().map_err(|_| bad())?;
        if digest.len() != 64 {
            return Err(bad());
        }
        let mut bytes = [0u8; 32];
        for (j, slot) in bytes.iter_mut().enumerate() {
            *slot = u8::from_str_radix(&digest[2 * j..2 * j + 2], 16).map_err(|_| bad())?;
        }
        tokens.push(Token {
            name: name.to_string(),
            digest: bytes,
            created_ms,
        });
    }
    Ok(tokens)
}

/// A token's name: what `ctl admin token` and the API accept.
pub fn check_token_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "'{name}' is not a token name (1 to 64 letters, digits, '-', '_', '.', '@')"
        ))
    }
}

/// One browser session.
#[derive(Clone, Debug)]
pub struct Session {
    pub user: String,
    pub csrf: String,
    pub source: IpAddr,
    created: Instant,
    used: Instant,
}

/// The sessions in memory, by the digest of their cookie value.
pub struct Sessions {
    by_digest: HashMap<[u8; 32], Session>,
    pub idle: Duration,
    pub lifetime: Duration,
}

/// At most this many sessions; the oldest goes first.
const MAX_SESSIONS: usize = 256;

impl Sessions {
    pub fn new(idle: Duration, lifetime: Duration) -> Sessions {
        Sessions {
            by_digest: HashMap::new(),
            idle,
            lifetime,
        }
    }

    /// A new session for `user`: its cookie value and CSRF token.
    pub fn open(
        &mut self,
        user: &str,
        source: IpAddr,
        now: Instant,
    ) -> Result<(String, String), String> {
        self.expire(now);
        if self.by_digest.len() >= MAX_SESSIONS {
            let oldest = self
                .by_digest
                .iter()
                .min_by_key(|(_, s)| s.used)
                .map(|(k, _)| *k);
            if let Some(oldest) = oldest {
                self.by_digest.remove(&oldest);
            }
        }
        let cookie = random_hex()?;
        let csrf = random_hex()?;
        self.by_digest.insert(
            token_digest(&cookie),
            Session {
                user: user.to_string(),
                csrf: csrf.clone(),
                source,
                created: now,
                used: now,
            },
        );
        Ok((cookie, csrf))
    }

    /// The live session of a cookie value, its idle time restarted; None when unknown or
    /// expired (and then forgotten).
    pub fn touch(&mut self, cookie: &str, now: Instant) -> Option<Session> {
        let digest = token_digest(cookie);
        let session = self.by_digest.get_mut(&digest)?;
        let expired = now.saturating_duration_since(session.used) > self.idle
            || now.saturating_duration_since(session.created) > self.lifetime;
        if expired {
            self.by_digest.remove(&digest);
            return None;
        }
        session.used = now;
        Some(session.clone())
    }

    pub fn close(&mut self, cookie: &str) {
        self.by_digest.remove(&token_digest(cookie));
    }

    /// Ends every session (the password changed).
    pub fn close_all(&mut self) {
        self.by_digest.clear();
    }

    pub fn len(&self) -> usize {
        self.by_digest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }

    fn expire(&mut self, now: Instant) {
        let (idle, lifetime) = (self.idle, self.lifetime);
        self.by_digest.retain(|_, s| {
            now.saturating_duration_since(s.used) <= idle
                && now.saturating_duration_since(s.created) <= lifetime
        });
    }
}

/// Failed logins per source: the first `FREE_FAILURES` cost nothing, each one after that
/// doubles a wait (from 1 s, at most `LONGEST_WAIT`) before the next attempt from that source
/// is even looked at. A success forgets the source's failures.
pub struct Throttle {
    sources: HashMap<IpAddr, Failures>,
}

#[derive(Clone, Copy, Debug)]
struct Failures {
    count: u32,
    last: Instant,
    blocked_until: Instant,
}

pub const FREE_FAILURES: u32 = 3;
pub const LONGEST_WAIT: Duration = Duration::from_secs(300);
/// A source that has not failed for this long starts afresh.
const FORGET_AFTER: Duration = Duration::from_secs(3600);
/// Sources remembered at most (a flood of addresses must not grow memory without bound).
const MAX_SOURCES: usize = 4096;

impl Default for Throttle {
    fn default() -> Throttle {
        Throttle::new()
    }
}

impl Throttle {
    pub fn new() -> Throttle {
        Throttle {
            sources: HashMap::new(),
        }
    }

    /// How long `source` must still wait before a login attempt is looked at; None: now.
    pub fn wait(&self, source: IpAddr, now: Instant) -> Option<Duration> {
        let failures = self.sources.get(&source)?;
        let left = failures.blocked_until.saturating_duration_since(now);
        (!left.is_zero()).then_some(left)
    }

    pub fn failed(&mut self, source: IpAddr, now: Instant) {
        if self.sources.len() >= MAX_SOURCES && !self.sources.contains_key(&source) {
            self.sources
                .retain(|_, f| now.saturating_duration_since(f.last) < FORGET_AFTER);
            if self.sources.len() >= MAX_SOURCES {
                let oldest = self
                    .sources
                    .iter()
                    .min_by_key(|(_, f)| f.last)
                    .map(|(k, _)| *k);
                if let Some(oldest) = oldest {
                    self.sources.remove(&oldest);
                }
            }
        }
        let entry = self.sources.entry(source).or_insert(Failures {
            count: 0,
            last: now,
            blocked_until: now,
        });
        if now.saturating_duration_since(entry.last) >= FORGET_AFTER {
            entry.count = 0;
        }
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
        if entry.count > FREE_FAILURES {
            let doublings = (entry.count - FREE_FAILURES - 1).min(16);
            let wait = Duration::from_secs(1u64 << doublings).min(LONGEST_WAIT);
            entry.blocked_until = now + wait;
        }
    }

    pub fn succeeded(&mut self, source: IpAddr) {
        self.sources.remove(&source);
    }
}

/// Unpadded standard base64 (RFC 4648, section 4), as the password hash is written.
pub mod base64 {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub fn encode(bytes: &[u8]) -> String {
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let mut n = 0u32;
            for (i, b) in chunk.iter().enumerate() {
                n |= u32::from(*b) << (16 - 8 * i);
            }
            for i in 0..=chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            }
        }
        out
    }

    /// Padding is accepted and ignored; anything else outside the alphabet is refused.
    pub fn decode(text: &str) -> Option<Vec<u8>> {
        let text = text.trim_end_matches('=');
        let mut out = Vec::with_capacity(text.len() * 3 / 4);
        let mut n = 0u32;
        let mut bits = 0;
        for c in text.bytes() {
            let value = ALPHABET.iter().position(|a| *a == c)? as u32;
            n = n << 6 | value;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((n >> bits) as u8);
                n &= (1 << bits) - 1;
            }
        }
        // A lone sixth of a byte cannot be the end of a valid encoding.
        (bits < 6).then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_and_refuses_garbage() {
        for len in 0..40 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(base64::decode(&base64::encode(&bytes)), Some(bytes));
        }
        assert_eq!(base64::encode(b"salt"), "c2FsdA");
        assert_eq!(base64::decode("c2FsdA=="), Some(b"salt".to_vec()));
        assert_eq!(base64::decode("c2F*dA"), None);
        assert_eq!(base64::decode("c"), None);
    }

    #[test]
    fn a_password_verifies_only_itself() {
        let stored = hash_password("correct horse", 1000).unwrap();
        assert!(stored.starts_with("pbkdf2-sha256$1000$"));
        assert!(verify_password(&stored, "correct horse"));
        assert!(!verify_password(&stored, "correct horsE"));
        assert!(!verify_password(&stored, ""));
        let again = hash_password("correct horse", 1000).unwrap();
        assert_ne!(stored, again, "a fresh salt each time");
        for bad in [
            "",
            "pbkdf2-sha256$0$c2FsdA$aGFzaA",
            "pbkdf2-sha1$1000$c2FsdA$aGFzaA",
            "pbkdf2-sha256$x$c2FsdA$aGFzaA",
            "pbkdf2-sha256$1000$*$aGFzaA",
        ] {
            assert!(!verify_password(bad, "correct horse"), "{bad}");
        }
        assert!(hash_password("short", 1000).is_err());
    }

    #[test]
    fn tokens_are_kept_as_digests_and_read_back() {
        let (token, digest) = new_token().unwrap();
        assert!(token.starts_with(TOKEN_PREFIX) && token.len() == 4 + 64);
        assert_eq!(token_digest(&token), digest);
        let kept = vec![
            Token {
                name: "backup-script".into(),
                digest,
                created_ms: 1_796_515_200_000,
            },
            Token {
                name: "nms@noc".into(),
                digest: [7; 32],
                created_ms: 1,
            },
        ];
        let bytes = encode_tokens(&kept);
        assert!(!String::from_utf8_lossy(&bytes).contains(&token[4..]));
        assert_eq!(decode_tokens(&bytes).unwrap(), kept);
        assert!(decode_tokens(b"name 1 abc\n").is_err());
        assert!(decode_tokens(b"name x 00\n").is_err());
        assert!(check_token_name("nms@noc").is_ok());
        assert!(check_token_name("has space").is_err());
        assert!(check_token_name("").is_err());
    }

    #[test]
    fn sessions_end_when_idle_or_old() {
        let source: IpAddr = "192.0.2.9".parse().unwrap();
        let start = Instant::now();
        let mut sessions = Sessions::new(Duration::from_secs(60), Duration::from_secs(300));
        let (cookie, csrf) = sessions.open("admin", source, start).unwrap();
        let session = sessions
            .touch(&cookie, start + Duration::from_secs(50))
            .unwrap();
        assert_eq!(
            (session.user.as_str(), session.csrf.as_str()),
            ("admin", csrf.as_str())
        );
        // Used at 50 s: still alive at 100 s, not after 61 s idle.
        assert!(sessions
            .touch(&cookie, start + Duration::from_secs(100))
            .is_some());
        assert!(sessions
            .touch(&cookie, start + Duration::from_secs(162))
            .is_none());
        assert!(sessions.is_empty(), "an expired session is forgotten");
        // Kept busy, it still ends at its lifetime.
        let (cookie, _) = sessions.open("admin", source, start).unwrap();
        for s in (30..=300).step_by(30) {
            assert!(sessions
                .touch(&cookie, start + Duration::from_secs(s))
                .is_some());
        }
        assert!(sessions
            .touch(&cookie, start + Duration::from_secs(301))
            .is_none());
        assert!(sessions.touch("not a session", start).is_none());
        let (cookie, _) = sessions.open("admin", source, start).unwrap();
        sessions.close(&cookie);
        assert!(sessions.touch(&cookie, start).is_none());
    }

    #[test]
    fn failed_logins_wait_longer_and_longer_per_source() {
        let now = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let mut throttle = Throttle::new();
        for _ in 0..FREE_FAILURES {
            throttle.failed(a, now);
            assert_eq!(throttle.wait(a, now), None);
        }
        let mut waits = Vec::new();
        for _ in 0..12 {
            throttle.failed(a, now);
            waits.push(throttle.wait(a, now).unwrap().as_secs());
        }
        assert_eq!(waits[..5], [1, 2, 4, 8, 16]);
        assert_eq!(*waits.last().unwrap(), LONGEST_WAIT.as_secs());
        assert_eq!(throttle.wait(b, now), None, "another source is not slowed");
        assert_eq!(throttle.wait(a, now + LONGEST_WAIT), None);
        throttle.succeeded(a);
        throttle.failed(a, now);
        assert_eq!(throttle.wait(a, now), None, "a success starts afresh");
    }

    #[test]
    fn remembered_sources_are_bounded() {
        let now = Instant::now();
        let mut throttle = Throttle::new();
        for i in 0..(MAX_SOURCES as u32 + 100) {
            throttle.failed(IpAddr::from(i.to_be_bytes()), now);
        }
        assert!(throttle.sources.len() <= MAX_SOURCES);
    }
}
