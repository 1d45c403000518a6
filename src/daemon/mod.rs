//! `director daemon`: the control plane. For now it logs, answers on its control socket, says
//! when it is ready, and stops cleanly on SIGTERM; the network, IPVS, health checks, the pair
//! and the admin endpoint join it in their own modules.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use log::{error, info, warn, LevelFilter};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::signal::unix::{signal, SignalKind};

use crate::control;
use crate::logging::{self, ConsoleLogger};

/// Recent log lines kept for `director ctl log`.
const LOG_RING: usize = 1000;

struct Options {
    socket: PathBuf,
    level: LevelFilter,
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut socket = None;
    let mut level = std::env::var("DIRECTOR_LOG").ok();
    let mut words = args.iter();
    while let Some(word) = words.next() {
        match word.as_str() {
            "--socket" => socket = Some(words.next().ok_or("--socket needs a path")?.clone()),
            "--log" => level = Some(words.next().ok_or("--log needs a level")?.clone()),
            other => return Err(format!("unexpected argument '{other}'")),
        }
    }
    let level = match level {
        None => LevelFilter::Info,
        Some(text) => logging::parse_level(&text).ok_or_else(|| {
            format!("log level '{text}' is not one of off error warn info debug trace")
        })?,
    };
    Ok(Options {
        socket: control::socket_path(socket.as_deref()),
        level,
    })
}

pub fn run(args: &[String]) -> ExitCode {
    let options = match parse_args(args) {
        Ok(options) => options,
        Err(why) => {
            eprintln!("director daemon: {why}");
            return ExitCode::from(2);
        }
    };
    let Some(logger) = logging::install(options.level, LOG_RING) else {
        eprintln!("director daemon: logger already installed");
        return ExitCode::FAILURE;
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            error!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(&options.socket, logger)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            error!("{why}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(socket: &Path, logger: &'static ConsoleLogger) -> Result<(), String> {
    let started = Instant::now();
    info!(
        "director daemon {} starting (pid {})",
        env!("CARGO_PKG_VERSION"),
        std::process::id()
    );
    let mut terminate =
        signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM handler: {e}"))?;
    let mut interrupt =
        signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT handler: {e}"))?;
    let listener = bind(socket)?;
    info!(
        "ready: control socket {} ({} ms after start)",
        socket.display(),
        started.elapsed().as_millis()
    );
    let why = loop {
        tokio::select! {
            _ = terminate.recv() => break "SIGTERM",
            _ = interrupt.recv() => break "SIGINT",
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(answer(stream, logger, started));
                }
                Err(e) => warn!("control socket accept: {e}"),
            },
        }
    };
    info!("stopping on {why}");
    let _ = std::fs::remove_file(socket);
    Ok(())
}

fn bind(socket: &Path) -> Result<UnixListener, String> {
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    }
    // A socket file left by a crashed daemon would make bind fail with EADDRINUSE.
    match std::fs::remove_file(socket) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("remove stale {}: {e}", socket.display())),
    }
    UnixListener::bind(socket).map_err(|e| format!("bind {}: {e}", socket.display()))
}

async fn answer(stream: UnixStream, logger: &'static ConsoleLogger, started: Instant) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read.take(control::MAX_REQUEST as u64));
    let result = match reader.read_line(&mut line).await {
        Ok(_) if !line.ends_with('\n') => Err("request too long or not ended by a newline".into()),
        Ok(_) => execute(line.trim(), logger, started),
        Err(e) => Err(format!("reading the request: {e}")),
    };
    let _ = write
        .write_all(control::encode_reply(&result).as_bytes())
        .await;
    let _ = write.shutdown().await;
}

fn execute(request: &str, logger: &ConsoleLogger, started: Instant) -> Result<String, String> {
    let words: Vec<&str> = request.split_whitespace().collect();
    match words.as_slice() {
        ["status"] => Ok(format!(
            "daemon pid {}\nversion {}\nuptime {} s\n",
            std::process::id(),
            env!("CARGO_PKG_VERSION"),
            started.elapsed().as_secs()
        )),
        ["log"] => Ok(lines(&logger.recent(), usize::MAX)),
        ["log", count] => {
            let count: usize = count
                .parse()
                .map_err(|_| format!("log: '{count}' is not a number of lines"))?;
            Ok(lines(&logger.recent(), count))
        }
        [] => Err("empty request".into()),
        [other, ..] => Err(format!("unknown command '{other}'")),
    }
}

fn lines(all: &[String], count: usize) -> String {
    let skip = all.len().saturating_sub(count);
    all[skip..].iter().map(|l| format!("{l}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_tail_takes_the_newest() {
        let all = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        assert_eq!(lines(&all, 2), "b\nc\n");
        assert_eq!(lines(&all, 10), "a\nb\nc\n");
    }

    #[test]
    fn args_are_checked() {
        assert!(parse_args(&["--socket".into()]).is_err());
        assert!(parse_args(&["--log".into(), "chatty".into()]).is_err());
        let options = parse_args(&["--socket".into(), "/tmp/x.sock".into()]).unwrap();
        assert_eq!(options.socket, PathBuf::from("/tmp/x.sock"));
    }
}
