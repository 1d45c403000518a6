//! `director ctl --host HOST ...`: the command line to a box over its admin API, with an API
//! token and the box's certificate pinned by its fingerprint (both from the flags or from
//! `DIRECTOR_TOKEN` and `DIRECTOR_FINGERPRINT`).

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;

use serde_json::{json, Value};

use crate::admin::cert::parse_fingerprint;
use crate::admin::client::{Client, Response};

pub const USAGE: &str = "\
usage: director ctl --host HOST[:PORT] [--token TOKEN] [--fingerprint SHA256] <command>

The token (`director ctl admin token new NAME` on the box) and the certificate's fingerprint
(on the box's console, or `director ctl admin fingerprint`) may come from DIRECTOR_TOKEN and
DIRECTOR_FINGERPRINT instead. The port defaults to 3636.

commands:
  status                      the box's state as JSON (role, peer, channels, IPVS, health, log)
  takeover | release | reboot
  drain VS RS | enable VS RS  take a real server out of rotation or back (a new revision)
  weight VS RS N              set a real server's weight (a new revision)
  config show                 the configuration in force, with its revision
  config history              the revisions
  config diff A [B]           the changes from revision A to B (default: the current one)
  config import FILE          store a director TOML file as a new revision [-m COMMENT]
  config rollback N           put revision N in force again, as a new revision
";

/// Runs one remote command; `args` are what follows `director ctl`.
pub fn run(args: &[String]) -> ExitCode {
    if args
        .iter()
        .any(|a| matches!(a.as_str(), "help" | "--help" | "-h"))
    {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    match parse(args).and_then(|(client, words, comment)| execute(client, &words, comment)) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("director ctl: {why}");
            ExitCode::FAILURE
        }
    }
}

fn parse(args: &[String]) -> Result<(Client, Vec<String>, Option<String>), String> {
    let mut host = None;
    let mut token = std::env::var("DIRECTOR_TOKEN").ok();
    let mut fingerprint = std::env::var("DIRECTOR_FINGERPRINT").ok();
    let mut comment = None;
    let mut words = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let slot = match arg.as_str() {
            "--host" => &mut host,
            "--token" => &mut token,
            "--fingerprint" => &mut fingerprint,
            "-m" | "--comment" => &mut comment,
            word => {
                words.push(word.to_string());
                continue;
            }
        };
        *slot = Some(iter.next().ok_or(format!("{arg} needs a value"))?.clone());
    }
    let host = host.ok_or("--host is needed")?;
    let address = address(&host)?;
    let fingerprint = fingerprint.ok_or(
        "the box's certificate fingerprint is needed (--fingerprint or DIRECTOR_FINGERPRINT): \
         it is on the box's console and from `director ctl admin fingerprint` there",
    )?;
    let pin = parse_fingerprint(&fingerprint)?;
    let token = token.ok_or(
        "an API token is needed (--token or DIRECTOR_TOKEN): `director ctl admin token new NAME` on the box",
    )?;
    Ok((Client::new(address, pin).with_token(&token), words, comment))
}

/// `HOST`, `HOST:PORT`, `[V6]:PORT` or a bare IPv6 address; port 3636 unless given.
fn address(host: &str) -> Result<SocketAddr, String> {
    if let Ok(address) = host.parse::<SocketAddr>() {
        return Ok(address);
    }
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, 3636));
    }
    let with_port = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:3636")
    };
    with_port
        .to_socket_addrs()
        .map_err(|e| format!("{host}: {e}"))?
        .next()
        .ok_or(format!("{host}: no address"))
}

fn execute(
    mut client: Client,
    words: &[String],
    comment: Option<String>,
) -> Result<String, String> {
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let io = |e: std::io::Error| format!("the box did not answer properly: {e}");
    let response = match words.as_slice() {
        ["status"] => client.get("/api/status").map_err(io)?,
        [action @ ("takeover" | "release" | "reboot")] => client
            .send_json("POST", &format!("/api/{action}"), &json!({}))
            .map_err(io)?,
        [action @ ("drain" | "enable"), vs, rs] => client
            .send_json(
                "POST",
                "/api/real-server",
                &json!({ "virtual_server": vs, "real_server": rs, "action": action }),
            )
            .map_err(io)?,
        ["weight", vs, rs, weight] => {
            let weight: u64 = weight
                .parse()
                .map_err(|_| format!("weight: '{weight}' is not a number"))?;
            client
                .send_json(
                    "POST",
                    "/api/real-server",
                    &json!({ "virtual_server": vs, "real_server": rs, "action": "weight", "weight": weight }),
                )
                .map_err(io)?
        }
        ["config", "show"] => {
            let response = client.get("/api/config").map_err(io)?;
            let value = ok(&response)?;
            let revision = match value["revision"].as_u64() {
                Some(n) => format!("# revision {n}\n"),
                None => "# the built-in default (no revision stored)\n".into(),
            };
            return Ok(format!(
                "{revision}{}",
                value["toml"].as_str().unwrap_or("")
            ));
        }
        ["config", "history"] => {
            let response = client.get("/api/config/history").map_err(io)?;
            let value = ok(&response)?;
            let mut out = String::new();
            for r in value["revisions"].as_array().into_iter().flatten() {
                out.push_str(&format!(
                    "{}{:>5}  {}  {}  {}\n",
                    if r["current"] == true { '*' } else { ' ' },
                    r["revision"],
                    crate::daemon::configuration::utc(r["time_ms"].as_u64().unwrap_or(0)),
                    r["author"].as_str().unwrap_or(""),
                    r["comment"].as_str().unwrap_or("")
                ));
            }
            return Ok(out);
        }
        ["config", "diff", from, rest @ ..] if rest.len() <= 1 => {
            let mut path = format!("/api/config/diff?from={from}");
            if let Some(to) = rest.first() {
                path.push_str(&format!("&to={to}"));
            }
            let response = client.get(&path).map_err(io)?;
            return Ok(ok(&response)?["diff"].as_str().unwrap_or("").to_string());
        }
        ["config", "import", file] => {
            let text = std::fs::read_to_string(file).map_err(|e| format!("reading {file}: {e}"))?;
            let comment = comment.unwrap_or_else(|| format!("import {file}"));
            client
                .send_json(
                    "PUT",
                    "/api/config",
                    &json!({ "toml": text, "comment": comment }),
                )
                .map_err(io)?
        }
        ["config", "rollback", n] => {
            let n: u64 = n
                .parse()
                .map_err(|_| format!("rollback: '{n}' is not a revision number"))?;
            client
                .send_json("POST", "/api/config/rollback", &json!({ "revision": n }))
                .map_err(io)?
        }
        _ => {
            return Err(format!(
                "not a remote command: '{}'\n{USAGE}",
                words.join(" ")
            ))
        }
    };
    let value = ok(&response)?;
    Ok(format!(
        "{}\n",
        serde_json::to_string_pretty(&value).unwrap_or_default()
    ))
}

/// The body of a successful response; otherwise the API's error, with every problem of a
/// refused configuration on a line of its own.
fn ok(response: &Response) -> Result<Value, String> {
    if response.status < 300 {
        return Ok(response.json());
    }
    let value = response.json();
    let mut why = response.error();
    for problem in value["problems"].as_array().into_iter().flatten() {
        why.push_str(&format!(
            "\n  {}: {}",
            problem["path"].as_str().unwrap_or("?"),
            problem["message"].as_str().unwrap_or("?")
        ));
    }
    if let Some(syntax) = value.get("syntax") {
        why.push_str(&format!(
            "\n  line {}, column {}: {}",
            syntax["line"],
            syntax["column"],
            syntax["message"].as_str().unwrap_or("?")
        ));
    }
    Err(why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_take_the_default_port() {
        assert_eq!(
            address("192.0.2.2").unwrap(),
            "192.0.2.2:3636".parse().unwrap()
        );
        assert_eq!(
            address("192.0.2.2:8443").unwrap(),
            "192.0.2.2:8443".parse().unwrap()
        );
        assert_eq!(
            address("2001:db8::2").unwrap(),
            "[2001:db8::2]:3636".parse().unwrap()
        );
        assert_eq!(
            address("[2001:db8::2]:1").unwrap(),
            "[2001:db8::2]:1".parse().unwrap()
        );
        assert!(address("").is_err());
    }

    #[test]
    fn flags_are_needed_and_read() {
        let args = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let pin = "AB".repeat(32);
        let err = parse(&args(&["status"])).err().unwrap();
        assert!(err.contains("--host"), "{err}");
        let ok = parse(&args(&[
            "--host",
            "192.0.2.2",
            "--token",
            "dtk_x",
            "--fingerprint",
            &pin,
            "status",
        ]));
        assert_eq!(
            ok.map(|(_, words, _)| words),
            Ok(vec!["status".to_string()])
        );
        let err = parse(&args(&[
            "--host",
            "192.0.2.2",
            "--token",
            "dtk_x",
            "--fingerprint",
            "AB",
        ]))
        .err()
        .unwrap();
        assert!(err.contains("fingerprint"), "{err}");
    }
}
