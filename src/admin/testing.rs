//! A backend for the admin endpoint's tests: the configuration in memory, `config import`
//! and `config set` applied as the daemon would, every command recorded.

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use super::api::{Backend, Listed};
use super::auth::{self, Token};
use crate::config::{self, Config};
use crate::control::Request;

/// The admin password the fakes are made with.
pub const PASSWORD: &str = "s3cret-enough";

/// A backend with the configuration in memory: commands are recorded, and `config import`
/// and `config set` change it as the daemon would.
pub struct Fake {
    pub config: Mutex<(Option<u64>, Arc<Config>)>,
    pub commands: Mutex<Vec<Request>>,
    pub tokens: Mutex<Vec<Token>>,
}

impl Fake {
    pub fn new(password: Option<&str>) -> Arc<Fake> {
        let mut config = Config::default();
        config.admin.password_hash = password.map(|p| auth::hash_password(p, 1000).unwrap());
        Arc::new(Fake {
            config: Mutex::new((None, Arc::new(config))),
            commands: Mutex::new(Vec::new()),
            tokens: Mutex::new(Vec::new()),
        })
    }

    pub fn commands(&self) -> Vec<Vec<String>> {
        self.commands
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.words.clone())
            .collect()
    }
}

impl Backend for Fake {
    fn command(&self, request: &Request) -> Result<String, String> {
        self.commands.lock().unwrap().push(request.clone());
        let words: Vec<&str> = request.words.iter().map(String::as_str).collect();
        let mut state = self.config.lock().unwrap();
        let next = match words.as_slice() {
            ["config", "import"] => config::from_toml(&request.body).map_err(|e| e.to_string())?,
            ["config", "set", path] => {
                crate::daemon::configuration::edit(&state.1, path, Some(&request.body))?
            }
            _ => return Ok("done\n".into()),
        };
        let number = state.0.unwrap_or(0) + 1;
        *state = (Some(number), Arc::new(next));
        Ok(format!("revision {number}\n"))
    }

    fn status(&self) -> Value {
        json!({ "role": "active" })
    }

    fn config(&self) -> (Option<u64>, Arc<Config>) {
        self.config.lock().unwrap().clone()
    }

    fn history(&self) -> Result<Vec<Listed>, String> {
        let (current, _) = self.config();
        Ok((1..=current.unwrap_or(0))
            .map(|number| Listed {
                number,
                time_ms: number * 1000,
                author: "someone".into(),
                comment: "a change".into(),
            })
            .collect())
    }

    fn tokens(&self) -> Result<Vec<Token>, String> {
        Ok(self.tokens.lock().unwrap().clone())
    }

    fn keep_tokens(&self, tokens: &[Token]) -> Result<(), String> {
        *self.tokens.lock().unwrap() = tokens.to_vec();
        Ok(())
    }

    fn replace_certificate(&self, _chain: &str, _key: &str) -> Result<String, String> {
        Err("not in this test".into())
    }

    fn reboot(&self) -> Result<(), String> {
        Err("not in this test".into())
    }

    fn now_ms(&self) -> u64 {
        1_796_515_200_000
    }
}
