//! authkeys: `auth N` selects the key line `N METHOD [KEY]`.

use super::AUTHKEYS;
use crate::config::import::ldirectord::{parse_number, strip_comment, Report};
use crate::config::import::SET_THE_KEY;

/// authkeys: `auth N` selects the key line `N METHOD [KEY]`. Gives the selected key.
pub(super) fn read_authkeys(text: &str, report: &mut Report) -> Option<String> {
    let mut selected: Option<(u32, usize)> = None;
    let mut keys: Vec<(u32, &str, Option<String>, usize)> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let content = strip_comment(raw).trim();
        let Some((first, rest)) = content
            .split_once(char::is_whitespace)
            .or((!content.is_empty()).then_some((content, "")))
        else {
            continue;
        };
        let rest = rest.trim();
        if first == "auth" {
            match parse_number::<u32>(rest, "a key number") {
                Ok(n) => selected = Some((n, number)),
                Err(why) => report.error(AUTHKEYS, number, format!("`auth`: {why}")),
            }
            continue;
        }
        let n = match parse_number::<u32>(first, "a key number") {
            Ok(n) => n,
            Err(why) => {
                report.error(
                    AUTHKEYS,
                    number,
                    format!("`{first}`: {why}; a line is `auth N` or `N METHOD KEY`"),
                );
                continue;
            }
        };
        let (method, key) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        let key = key.trim();
        match method {
            "sha1" | "md5" if key.is_empty() => {
                report.error(AUTHKEYS, number, format!("key {n}: {method} needs a key"));
            }
            "sha1" | "md5" => keys.push((
                n,
                if method == "sha1" { "sha1" } else { "md5" },
                Some(key.to_string()),
                number,
            )),
            "crc" => keys.push((n, "crc", None, number)),
            "" => report.error(
                AUTHKEYS,
                number,
                format!("key {n} has no method (sha1, md5 or crc)"),
            ),
            other => report.error(
                AUTHKEYS,
                number,
                format!("key {n}: '{other}' is not sha1, md5 or crc"),
            ),
        }
    }
    let Some((n, auth_line)) = selected else {
        report.error(AUTHKEYS, 0, "there is no `auth N` line selecting a key");
        return None;
    };
    let mut chosen = None;
    let mut found = false;
    for (k, method, key, line) in keys {
        if k != n {
            report.note(
                AUTHKEYS,
                line,
                format!("key {k} is not the one `auth {n}` selects; not imported"),
            );
            continue;
        }
        found = true;
        match key {
            None => report.note(
                AUTHKEYS,
                line,
                format!(
                    "`crc` has no key and authenticates nothing: pair.key is left empty; \
                     {SET_THE_KEY}, the same on both boxes"
                ),
            ),
            Some(key) => {
                let mut message = format!(
                    "key {k}: the box authenticates heartbeats with its own HMAC, keyed with this \
                     key; the {method} method is not kept"
                );
                if key.chars().count() < 16 {
                    message.push_str(&format!(
                        "; the key is shorter than the 16 characters the box requires: \
                         {SET_THE_KEY}, the same on both boxes"
                    ));
                }
                report.note(AUTHKEYS, line, message);
                chosen = Some(key);
            }
        }
    }
    if !found {
        report.error(
            AUTHKEYS,
            auth_line,
            format!("`auth {n}` selects key {n}, which is not defined"),
        );
    }
    chosen
}
