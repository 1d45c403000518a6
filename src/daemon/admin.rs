//! The admin endpoint inside the daemon: its certificate from the store (made on first boot,
//! its fingerprint on the console), the API's backend (the daemon's own commands and state),
//! the `[admin]` section followed as it changes, and the `admin ...` commands of the control
//! socket (the console's way to set the password and make tokens).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use log::{error, info, warn};
use serde_json::{json, Value};

use super::{execute, in_force, pair_of, Shared};
use crate::admin::api::{Api, Backend, Listed};
use crate::admin::auth::{self, Token};
use crate::admin::cert::{self, Identity};
use crate::admin::server::Endpoint;
use crate::config::{model::Admin, Config};
use crate::control::Request;

/// Store names of the endpoint's data.
const CERTIFICATE: &str = "certificate";
const KEY: &str = "key";
const TOKENS: &str = "tokens";

/// A session ends after this long unused, and after this long in all.
const SESSION_IDLE: Duration = Duration::from_secs(30 * 60);
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// The running endpoint, for the control socket's `admin` commands.
pub struct Service {
    endpoint: Arc<Endpoint>,
    backend: Arc<DaemonBackend>,
}

/// Starts the endpoint on the `[admin]` section of the configuration in force and follows it.
pub(super) fn start(shared: &Arc<Shared>) -> Option<Service> {
    let runtime = tokio::runtime::Handle::current();
    let backend = Arc::new(DaemonBackend {
        shared: Arc::downgrade(shared),
        runtime,
        endpoint: Mutex::new(Weak::new()),
    });
    let identity = match backend.identity() {
        Ok(identity) => identity,
        Err(why) => {
            error!("admin: no certificate, the endpoint stays closed: {why}");
            return None;
        }
    };
    info!(
        "admin: certificate fingerprint {}",
        cert::fingerprint(identity.leaf())
    );
    let api = Arc::new(Api::new(
        Arc::clone(&backend) as Arc<dyn Backend>,
        SESSION_IDLE,
        SESSION_LIFETIME,
    ));
    let endpoint = match Endpoint::start(api, &identity) {
        Ok(endpoint) => endpoint,
        Err(why) => {
            error!("{why}");
            return None;
        }
    };
    if let Ok(mut slot) = backend.endpoint.lock() {
        *slot = Arc::downgrade(&endpoint);
    }
    let changes = match shared.configuration.lock() {
        Ok(configuration) => configuration.subscribe(),
        Err(_) => return None,
    };
    tokio::spawn(follow(changes, Arc::clone(&endpoint)));
    Some(Service { endpoint, backend })
}

/// Listens where `[admin]` says, again whenever it changes.
async fn follow(mut changes: tokio::sync::watch::Receiver<Arc<Config>>, endpoint: Arc<Endpoint>) {
    let mut last: Option<Admin> = None;
    loop {
        let admin = changes.borrow_and_update().admin.clone();
        let moved = last.as_ref().is_none_or(|l| {
            (l.listen, l.port, &l.allowed) != (admin.listen, admin.port, &admin.allowed)
        });
        if moved {
            let address = SocketAddr::new(admin.listen, admin.port);
            match endpoint.listen(address, &admin.allowed) {
                Ok(local) => {
                    if admin.allowed.is_empty() {
                        warn!("admin: every source address may connect to {local} (admin.allowed is empty)");
                    } else {
                        let list: Vec<String> =
                            admin.allowed.iter().map(|p| p.to_string()).collect();
                        info!("admin: {local} admits {}", list.join(", "));
                    }
                    if admin.password_hash.is_none() {
                        warn!("admin: no password is set, nobody can log in: set one with `director ctl admin password`");
                    }
                }
                Err(why) => error!("{why}"),
            }
        }
        last = Some(admin);
        if changes.changed().await.is_err() {
            return;
        }
    }
}

impl Service {
    /// `admin ...` from the control socket.
    pub fn handle(&self, request: &Request) -> Result<String, String> {
        let words: Vec<&str> = request.words.iter().map(String::as_str).collect();
        match words.as_slice() {
            ["admin", "fingerprint"] => {
                let identity = self.backend.identity()?;
                Ok(format!("{}\n", cert::fingerprint(identity.leaf())))
            }
            ["admin", "password"] => {
                // The password travels as the body; only its hash is kept.
                let password = request.body.trim_end_matches(['\r', '\n']);
                let hash = auth::hash_password(password, auth::ITERATIONS)?;
                let change = Request {
                    words: ["config", "set", "admin.password_hash"]
                        .map(String::from)
                        .to_vec(),
                    author: request.author.clone(),
                    comment: Some("the admin password changed".into()),
                    body: hash,
                };
                self.backend.command(&change)
            }
            ["admin", "token", "new", name] => {
                let token = self.endpoint.api().add_token(name).map_err(|(_, why)| why)?;
                info!("admin: API token '{name}' made on the console");
                Ok(format!("{token}\n"))
            }
            ["admin", "token", "list"] => {
                let tokens = self.endpoint.api().tokens()?;
                if tokens.is_empty() {
                    return Ok("no API token\n".into());
                }
                Ok(tokens
                    .iter()
                    .map(|t| format!("{}  made {}\n", t.name, super::configuration::utc(t.created_ms)))
                    .collect())
            }
            ["admin", "token", "remove", name] => {
                self.endpoint
                    .api()
                    .remove_token(name)
                    .map_err(|(_, why)| why)?;
                info!("admin: API token '{name}' withdrawn on the console");
                Ok(format!("token '{name}' withdrawn\n"))
            }
            _ => Err(format!(
                "unknown admin command '{}' (admin fingerprint | admin password | admin token new NAME | admin token list | admin token remove NAME)",
                words.get(1..).unwrap_or_default().join(" ")
            )),
        }
    }
}

/// The API's way into the daemon.
struct DaemonBackend {
    shared: Weak<Shared>,
    runtime: tokio::runtime::Handle,
    endpoint: Mutex<Weak<Endpoint>>,
}

impl DaemonBackend {
    fn shared(&self) -> Result<Arc<Shared>, String> {
        self.shared
            .upgrade()
            .ok_or_else(|| "the daemon is stopping".into())
    }

    fn configuration<T>(
        &self,
        f: impl FnOnce(&mut super::configuration::Configuration) -> Result<T, String>,
    ) -> Result<T, String> {
        let shared = self.shared()?;
        let mut configuration = shared
            .configuration
            .lock()
            .map_err(|_| "the configuration service failed earlier; restart the daemon")?;
        f(&mut configuration)
    }

    /// The stored certificate and key, or new ones (kept before they are used).
    fn identity(&self) -> Result<Identity, String> {
        let kept = self.configuration(|c| Ok((c.admin_data(CERTIFICATE)?, c.admin_data(KEY)?)))?;
        if let (Some(chain), Some(key)) = kept {
            return decode_chain(&chain).map(|chain| Identity { chain, key });
        }
        let config = self.configuration(|c| Ok(c.in_force()))?;
        let addresses: Vec<std::net::IpAddr> = config
            .network
            .interfaces
            .iter()
            .flat_map(|i| i.addresses.iter().map(|p| p.addr))
            .collect();
        let identity = cert::self_signed(&config.node.hostname, &addresses, self.now_ms() / 1000)?;
        self.configuration(|c| {
            c.keep_admin_data(KEY, &identity.key)?;
            c.keep_admin_data(CERTIFICATE, &encode_chain(&identity.chain))
        })?;
        info!(
            "admin: made a self-signed certificate for {}",
            config.node.hostname
        );
        Ok(identity)
    }
}

/// A chain as kept: each certificate's length (4 bytes, big-endian) then its DER.
fn encode_chain(chain: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for cert in chain {
        out.extend_from_slice(&(cert.len() as u32).to_be_bytes());
        out.extend_from_slice(cert);
    }
    out
}

fn decode_chain(mut bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut chain = Vec::new();
    while !bytes.is_empty() {
        let (len, rest) = bytes
            .split_first_chunk::<4>()
            .ok_or("the kept certificate chain is damaged")?;
        let len = u32::from_be_bytes(*len) as usize;
        if rest.len() < len {
            return Err("the kept certificate chain is damaged".into());
        }
        chain.push(rest[..len].to_vec());
        bytes = &rest[len..];
    }
    if chain.is_empty() {
        return Err("the kept certificate chain is empty".into());
    }
    Ok(chain)
}

impl Backend for DaemonBackend {
    fn command(&self, request: &Request) -> Result<String, String> {
        let shared = self.shared()?;
        let _context = self.runtime.enter();
        execute(request, &shared)
    }

    fn status(&self) -> Value {
        let Ok(shared) = self.shared() else {
            return json!({ "error": "the daemon is stopping" });
        };
        let _context = self.runtime.enter();
        let config = in_force(&shared).ok();
        let revision = shared.configuration.lock().ok().and_then(|c| c.revision());
        let pair = match pair_of(&shared) {
            Some(pair) => match self.runtime.block_on(pair.status()) {
                Some(status) => crate::ctl::pair::json(&status),
                None => json!({ "error": "the pair has stopped" }),
            },
            None if config.as_ref().is_some_and(|c| c.pair.is_some()) => {
                json!({ "error": "the pair is not running (see the log)" })
            }
            None => Value::Null,
        };
        let ipvs = match execute(&Request::new(&["ipvs", "--json"]), &shared) {
            Ok(text) => serde_json::from_str(&text)
                .unwrap_or_else(|e| json!({ "error": format!("unreadable table: {e}") })),
            Err(why) => json!({ "error": why }),
        };
        let log: Vec<String> = {
            let all = shared.logger.recent();
            let skip = all.len().saturating_sub(100);
            all[skip..].to_vec()
        };
        json!({
            "hostname": config.as_ref().map(|c| c.node.hostname.clone()),
            "version": env!("CARGO_PKG_VERSION"),
            "pid": std::process::id(),
            "uptime_s": shared.started.elapsed().as_secs(),
            "revision": revision,
            "pair": pair,
            "ipvs": ipvs,
            "log": log,
        })
    }

    fn config(&self) -> (Option<u64>, Arc<Config>) {
        match self.configuration(|c| Ok((c.revision(), c.in_force()))) {
            Ok(pair) => pair,
            Err(_) => (None, Arc::new(crate::config::builtin_default())),
        }
    }

    fn history(&self) -> Result<Vec<Listed>, String> {
        self.configuration(|c| c.listed())
    }

    fn tokens(&self) -> Result<Vec<Token>, String> {
        match self.configuration(|c| c.admin_data(TOKENS))? {
            Some(bytes) => auth::decode_tokens(&bytes),
            None => Ok(Vec::new()),
        }
    }

    fn keep_tokens(&self, tokens: &[Token]) -> Result<(), String> {
        let bytes = auth::encode_tokens(tokens);
        self.configuration(|c| c.keep_admin_data(TOKENS, &bytes))
    }

    fn replace_certificate(&self, chain_pem: &str, key_pem: &str) -> Result<String, String> {
        let provider = rustls::crypto::ring::default_provider();
        let identity = Identity::from_pem(chain_pem, key_pem, &provider)?;
        let endpoint = self
            .endpoint
            .lock()
            .ok()
            .and_then(|e| e.upgrade())
            .ok_or("the endpoint is not running")?;
        // Kept first: a certificate presented but not kept would be gone at the next start.
        self.configuration(|c| {
            c.keep_admin_data(KEY, &identity.key)?;
            c.keep_admin_data(CERTIFICATE, &encode_chain(&identity.chain))
        })?;
        endpoint.present(&identity)?;
        let fingerprint = cert::fingerprint(identity.leaf());
        info!("admin: certificate fingerprint {fingerprint}");
        Ok(fingerprint)
    }

    fn reboot(&self) -> Result<(), String> {
        // Only our own init reads SIGTERM as "reboot"; on a development host PID 1 is another
        // program.
        let ours = std::fs::read_link("/proc/self/exe").ok();
        let init = std::fs::read_link("/proc/1/exe").ok();
        if ours.is_none() || ours != init {
            return Err(
                "PID 1 is not the director's init: reboot the machine by its own means".into(),
            );
        }
        let signal = crate::power::signal_for("reboot").ok_or("no reboot signal")?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(1), signal)
            .map_err(|e| format!("signalling PID 1: {e}"))
    }

    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_are_kept_and_read_back() {
        let chain = vec![vec![1, 2, 3], vec![], vec![9; 300]];
        assert_eq!(decode_chain(&encode_chain(&chain)).unwrap(), chain);
        assert!(decode_chain(&[0, 0, 0, 5, 1]).is_err());
        assert!(decode_chain(&[0, 0]).is_err());
        assert!(decode_chain(&[]).is_err());
    }
}
