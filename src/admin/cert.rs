//! The admin endpoint's identity: the certificate chain and private key it presents. On first
//! boot the box makes its own (an ECDSA P-256 key from ring and a self-signed X.509 v3
//! certificate naming the box), keeps it in the store and shows its SHA-256 fingerprint on the
//! console, so that a browser's warning can be checked and a script can pin it. An uploaded
//! certificate and key (PEM) replace it once they are shown to belong together.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;

use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

/// A certificate chain (the box's own first) and its private key, DER.
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    pub chain: Vec<Vec<u8>>,
    /// PKCS#8, SEC1 or PKCS#1, as `rustls` reads them.
    pub key: Vec<u8>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        write!(f, "Identity({})", fingerprint(self.leaf()))
    }
}

impl Identity {
    /// The box's own certificate.
    pub fn leaf(&self) -> &[u8] {
        self.chain.first().map_or(&[], Vec::as_slice)
    }

    /// The chain and key as rustls signs with, once it has checked that they belong together.
    pub fn certified(&self, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, String> {
        let chain: Vec<CertificateDer<'static>> = self
            .chain
            .iter()
            .map(|c| CertificateDer::from(c.clone()))
            .collect();
        let key = PrivateKeyDer::try_from(self.key.clone())
            .map_err(|e| format!("the private key: {e}"))?;
        let certified = CertifiedKey::from_der(chain, key, provider).map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => {
                "the private key does not belong to the first certificate".to_string()
            }
            e => format!("the certificate and key: {e}"),
        })?;
        Ok(Arc::new(certified))
    }

    /// Reads an uploaded certificate chain and key (PEM). Refused unless the key signs for
    /// the first certificate and every certificate parses.
    pub fn from_pem(
        chain_pem: &str,
        key_pem: &str,
        provider: &CryptoProvider,
    ) -> Result<Identity, String> {
        let mut chain = Vec::new();
        for (i, cert) in CertificateDer::pem_slice_iter(chain_pem.as_bytes()).enumerate() {
            let cert = cert.map_err(|e| format!("certificate {}: {e}", i + 1))?;
            webpki::EndEntityCert::try_from(&cert).map_err(|e| {
                format!(
                    "certificate {}: not a usable X.509 certificate ({e})",
                    i + 1
                )
            })?;
            chain.push(cert.to_vec());
        }
        if chain.is_empty() {
            return Err("no certificate (a PEM block 'BEGIN CERTIFICATE') in the upload".into());
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| format!("the private key: {e}"))?;
        let identity = Identity {
            chain,
            key: key.secret_der().to_vec(),
        };
        let certified = identity.certified(provider)?;
        certified.keys_match().map_err(|e| {
            format!("the private key does not belong to the first certificate ({e})")
        })?;
        Ok(identity)
    }
}

/// `SHA256 AB:CD:...`: what browsers show as the certificate's fingerprint.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let mut out = String::from("SHA256 ");
    for (i, byte) in digest.as_ref().iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        let _ = write!(out, "{byte:02X}");
    }
    out
}

/// Reads a fingerprint as `fingerprint` writes it, or as bare hex with or without colons.
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32], String> {
    let hex: String = text
        .trim()
        .trim_start_matches("SHA256")
        .trim_start_matches("sha256")
        .trim_start_matches([' ', ':', '='])
        .chars()
        .filter(|c| *c != ':')
        .collect();
    let mut out = [0u8; 32];
    if hex.len() != 64 {
        return Err(format!(
            "'{text}' is not a SHA-256 fingerprint (64 hex digits, colons allowed)"
        ));
    }
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
            .map_err(|_| format!("'{text}' is not a SHA-256 fingerprint: not hex"))?;
    }
    Ok(out)
}

/// A new key and a self-signed certificate for `name` (its common name and a DNS name) and
/// `addresses` (IP names), valid from a day before `now` (seconds since the Unix epoch) with no
/// end (RFC 5280's 99991231235959Z): the box's clock may be wrong, and the fingerprint, not the
/// dates, is what an operator checks.
pub fn self_signed(name: &str, addresses: &[IpAddr], now: u64) -> Result<Identity, String> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
        .map_err(|_| "generating a P-256 key failed".to_string())?;
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
        .map_err(|e| format!("reading back the new key: {e}"))?;
    let mut serial = [0u8; 16];
    rng.fill(&mut serial)
        .map_err(|_| "the random source failed".to_string())?;
    serial[0] &= 0x7f;
    serial[0] |= 0x01;
    let algorithm = der::seq(&[&der::oid(ECDSA_WITH_SHA256)]);
    let subject = der::seq(&[&der::set(&[&der::seq(&[
        &der::oid(COMMON_NAME),
        &der::tlv(der::UTF8_STRING, name.as_bytes()),
    ])])]);
    let validity = der::seq(&[&der::time(now.saturating_sub(86_400)), &der::NO_END]);
    let key_info = der::seq(&[
        &der::seq(&[&der::oid(EC_PUBLIC_KEY), &der::oid(PRIME256V1)]),
        &der::bit_string(pair.public_key().as_ref()),
    ]);
    let mut names = Vec::new();
    if !name.is_empty() {
        names.extend(der::tlv(0x82, name.as_bytes()));
    }
    for address in addresses {
        let octets = match address {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        };
        names.extend(der::tlv(0x87, &octets));
    }
    let mut extensions = vec![
        // basicConstraints, critical: not a CA.
        der::seq(&[
            &der::oid(BASIC_CONSTRAINTS),
            &der::TRUE,
            &der::tlv(der::OCTET_STRING, &der::seq(&[])),
        ]),
        // keyUsage, critical: digitalSignature.
        der::seq(&[
            &der::oid(KEY_USAGE),
            &der::TRUE,
            &der::tlv(der::OCTET_STRING, &der::tlv(0x03, &[0x07, 0x80])),
        ]),
        // extKeyUsage: serverAuth.
        der::seq(&[
            &der::oid(EXT_KEY_USAGE),
            &der::tlv(der::OCTET_STRING, &der::seq(&[&der::oid(SERVER_AUTH)])),
        ]),
    ];
    if !names.is_empty() {
        extensions.push(der::seq(&[
            &der::oid(SUBJECT_ALT_NAME),
            &der::tlv(der::OCTET_STRING, &der::tlv(0x30, &names)),
        ]));
    }
    let extensions: Vec<&[u8]> = extensions.iter().map(Vec::as_slice).collect();
    let tbs = der::seq(&[
        &der::tlv(0xa0, &der::integer(&[2])),
        &der::integer(&serial),
        &algorithm,
        &subject,
        &validity,
        &subject,
        &key_info,
        &der::tlv(0xa3, &der::seq(&extensions)),
    ]);
    let signature = pair
        .sign(&rng, &tbs)
        .map_err(|_| "signing the certificate failed".to_string())?;
    let cert = der::seq(&[&tbs, &algorithm, &der::bit_string(signature.as_ref())]);
    Ok(Identity {
        chain: vec![cert],
        key: pkcs8.as_ref().to_vec(),
    })
}

const ECDSA_WITH_SHA256: &[u64] = &[1, 2, 840, 10045, 4, 3, 2];
const EC_PUBLIC_KEY: &[u64] = &[1, 2, 840, 10045, 2, 1];
const PRIME256V1: &[u64] = &[1, 2, 840, 10045, 3, 1, 7];
const COMMON_NAME: &[u64] = &[2, 5, 4, 3];
const BASIC_CONSTRAINTS: &[u64] = &[2, 5, 29, 19];
const KEY_USAGE: &[u64] = &[2, 5, 29, 15];
const EXT_KEY_USAGE: &[u64] = &[2, 5, 29, 37];
const SUBJECT_ALT_NAME: &[u64] = &[2, 5, 29, 17];
const SERVER_AUTH: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 3, 1];

/// Just enough DER (ITU-T X.690) to write a certificate.
mod der {
    pub const UTF8_STRING: u8 = 0x0c;
    pub const OCTET_STRING: u8 = 0x04;
    /// BOOLEAN TRUE.
    pub const TRUE: [u8; 3] = [0x01, 0x01, 0xff];
    /// GeneralizedTime 99991231235959Z: no well-defined expiration (RFC 5280, 4.1.2.5).
    pub const NO_END: [u8; 17] = *b"\x18\x0f99991231235959Z";

    pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = content.len();
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes = len.to_be_bytes();
            let skip = bytes.iter().take_while(|b| **b == 0).count();
            out.push(0x80 | (bytes.len() - skip) as u8);
            out.extend(&bytes[skip..]);
        }
        out.extend(content);
        out
    }

    pub fn seq(parts: &[&[u8]]) -> Vec<u8> {
        tlv(0x30, &parts.concat())
    }

    pub fn set(parts: &[&[u8]]) -> Vec<u8> {
        tlv(0x31, &parts.concat())
    }

    /// A non-negative INTEGER from big-endian bytes.
    pub fn integer(bytes: &[u8]) -> Vec<u8> {
        let skip = bytes
            .iter()
            .take_while(|b| **b == 0)
            .count()
            .min(bytes.len().saturating_sub(1));
        let mut content = Vec::new();
        if bytes.get(skip).is_some_and(|b| b & 0x80 != 0) {
            content.push(0);
        }
        content.extend(&bytes[skip..]);
        tlv(0x02, &content)
    }

    pub fn bit_string(bytes: &[u8]) -> Vec<u8> {
        let mut content = vec![0];
        content.extend(bytes);
        tlv(0x03, &content)
    }

    pub fn oid(arcs: &[u64]) -> Vec<u8> {
        let mut content = Vec::new();
        let (first, second) = (arcs.first().copied().unwrap_or(0), arcs.get(1).copied());
        let mut rest = vec![first * 40 + second.unwrap_or(0)];
        rest.extend(arcs.iter().skip(2));
        for arc in rest {
            let mut groups = vec![(arc & 0x7f) as u8];
            let mut value = arc >> 7;
            while value > 0 {
                groups.push((value & 0x7f) as u8 | 0x80);
                value >>= 7;
            }
            content.extend(groups.iter().rev());
        }
        tlv(0x06, &content)
    }

    /// UTCTime before 2050, GeneralizedTime from then on (RFC 5280, 4.1.2.5).
    pub fn time(unix: u64) -> Vec<u8> {
        let days = unix / 86_400;
        let seconds = unix % 86_400;
        let (year, month, day) = civil(days);
        let clock = format!(
            "{month:02}{day:02}{:02}{:02}{:02}Z",
            seconds / 3600,
            seconds / 60 % 60,
            seconds % 60
        );
        if year < 2050 {
            tlv(0x17, format!("{:02}{clock}", year % 100).as_bytes())
        } else {
            tlv(0x18, format!("{year:04}{clock}").as_bytes())
        }
    }

    /// The proleptic Gregorian date `days` days after 1970-01-01.
    pub fn civil(days: u64) -> (u64, u64, u64) {
        // Count in 400-year eras from 0000-03-01, where leap days fall at the end of a year.
        let z = days + 719_468;
        let era = z / 146_097;
        let day_of_era = z % 146_097;
        let year_of_era =
            (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let shifted_month = (5 * day_of_year + 2) / 153;
        let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
        let month = if shifted_month < 10 {
            shifted_month + 3
        } else {
            shifted_month - 9
        };
        let year = year_of_era + era * 400 + u64::from(month <= 2);
        (year, month, day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> CryptoProvider {
        rustls::crypto::ring::default_provider()
    }

    #[test]
    fn dates_are_calendar_dates() {
        assert_eq!(der::civil(0), (1970, 1, 1));
        assert_eq!(der::civil(59), (1970, 3, 1));
        assert_eq!(der::civil(11_016), (2000, 2, 29));
        assert_eq!(der::civil(20_793), (2026, 12, 6));
        assert_eq!(der::time(1_796_515_200), b"\x17\x0d261206000000Z".to_vec());
        assert_eq!(der::time(2_556_144_000)[0], 0x18, "2051 is GeneralizedTime");
    }

    #[test]
    fn der_lengths_and_numbers() {
        assert_eq!(der::tlv(4, &[1, 2]), vec![4, 2, 1, 2]);
        assert_eq!(der::tlv(4, &[0; 200])[..3], [4, 0x81, 200]);
        assert_eq!(der::tlv(4, &[0; 300])[..4], [4, 0x82, 1, 44]);
        assert_eq!(der::integer(&[0x80]), vec![2, 2, 0, 0x80]);
        assert_eq!(der::integer(&[0, 0, 5]), vec![2, 1, 5]);
        assert_eq!(der::integer(&[0]), vec![2, 1, 0]);
        // 1.2.840.10045.2.1
        assert_eq!(
            der::oid(EC_PUBLIC_KEY),
            vec![6, 7, 0x2a, 0x86, 0x48, 0xce, 0x3d, 2, 1]
        );
    }

    #[test]
    fn a_self_signed_certificate_is_valid_for_its_names() {
        let address: IpAddr = "192.0.2.10".parse().unwrap();
        let identity = self_signed("lvs-a", &[address], 1_796_601_600).unwrap();
        let der = CertificateDer::from(identity.leaf().to_vec());
        let cert = webpki::EndEntityCert::try_from(&der).unwrap();
        for name in ["lvs-a", "192.0.2.10"] {
            let name = rustls::pki_types::ServerName::try_from(name).unwrap();
            cert.verify_is_valid_for_subject_name(&name).unwrap();
        }
        let other = rustls::pki_types::ServerName::try_from("lvs-b").unwrap();
        assert!(cert.verify_is_valid_for_subject_name(&other).is_err());
        let certified = identity.certified(&provider()).unwrap();
        certified.keys_match().unwrap();
    }

    #[test]
    fn each_certificate_is_new() {
        let one = self_signed("lvs-a", &[], 1_796_601_600).unwrap();
        let two = self_signed("lvs-a", &[], 1_796_601_600).unwrap();
        assert_ne!(fingerprint(one.leaf()), fingerprint(two.leaf()));
        assert_ne!(one.key, two.key);
    }

    #[test]
    fn fingerprints_read_back() {
        let identity = self_signed("lvs-a", &[], 1_796_601_600).unwrap();
        let shown = fingerprint(identity.leaf());
        assert!(shown.starts_with("SHA256 ") && shown.len() == 7 + 32 * 3 - 1);
        let digest = ring::digest::digest(&ring::digest::SHA256, identity.leaf());
        assert_eq!(parse_fingerprint(&shown).unwrap(), digest.as_ref());
        let bare: String = shown[7..].chars().filter(|c| *c != ':').collect();
        assert_eq!(parse_fingerprint(&bare).unwrap(), digest.as_ref());
        assert!(parse_fingerprint("SHA256 AB:CD").is_err());
        assert!(parse_fingerprint(&"zz".repeat(32)).is_err());
    }

    fn pem(label: &str, der: &[u8]) -> String {
        let mut text = crate::admin::auth::base64::encode(der);
        while text.len() % 4 != 0 {
            text.push('=');
        }
        let lines: Vec<&str> = text
            .as_bytes()
            .chunks(64)
            .map(|l| std::str::from_utf8(l).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    }

    #[test]
    fn an_upload_is_taken_only_with_its_own_key() {
        let one = self_signed("lvs-a", &[], 1_796_601_600).unwrap();
        let two = self_signed("lvs-a", &[], 1_796_601_600).unwrap();
        let cert = pem("CERTIFICATE", one.leaf());
        let key = pem("PRIVATE KEY", &one.key);
        let read = Identity::from_pem(&cert, &key, &provider()).unwrap();
        assert_eq!(read, one);
        let wrong = pem("PRIVATE KEY", &two.key);
        let err = Identity::from_pem(&cert, &wrong, &provider()).unwrap_err();
        assert!(err.contains("does not belong"), "{err}");
        let err = Identity::from_pem("", &key, &provider()).unwrap_err();
        assert!(err.contains("no certificate"), "{err}");
        let err = Identity::from_pem(&cert, "junk", &provider()).unwrap_err();
        assert!(err.contains("private key"), "{err}");
        let garbage = pem("CERTIFICATE", b"not a certificate at all");
        let err = Identity::from_pem(&garbage, &key, &provider()).unwrap_err();
        assert!(err.contains("certificate 1"), "{err}");
    }
}
