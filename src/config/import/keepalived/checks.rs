//! keepalived's health checkers (`TCP_CHECK`, `HTTP_GET`, `SSL_GET`, `MISC_CHECK`) and the
//! timing they inherit from their real server and virtual server, as one `Check`.

use super::syntax::Stmt;
use super::Report;
use crate::config::model::{Check, HttpCheck, ProgramCheck, TcpCheck};
use crate::config::types::Span;

/// keepalived's defaults (keepalived.conf(5)): a check every 60 s, connections time out after
/// 5 s, one retry for network checks and none for scripts, 1 s before a retry.
const DELAY_LOOP: Span = Span::from_millis(60_000);
const CONNECT_TIMEOUT: Span = Span::from_millis(5_000);
const RETRY: u32 = 1;
const MISC_RETRY: u32 = 0;
const DELAY_BEFORE_RETRY: Span = Span::from_millis(1_000);

/// Settings that a virtual server passes to its real servers and a real server to its
/// checkers, each level overriding the one above.
#[derive(Clone, Debug, Default)]
pub(super) struct Timing {
    pub delay_loop: Option<Span>,
    pub connect_timeout: Option<Span>,
    pub retry: Option<u32>,
    pub delay_before_retry: Option<Span>,
    pub virtualhost: Option<String>,
}

impl Timing {
    /// Takes the directive if it is one of the inherited settings.
    pub fn take(&mut self, stmt: &Stmt, report: &mut Report) -> bool {
        match stmt.keyword() {
            "delay_loop" => self.delay_loop = report.timer(stmt).or(self.delay_loop),
            "connect_timeout" => self.connect_timeout = report.timer(stmt).or(self.connect_timeout),
            "retry" | "nb_get_retry" => {
                // `fall` is at most retry + 1, so the largest retry must leave room for the one.
                let retry = report.number(stmt, 0, u64::from(u32::MAX - 1));
                self.retry = retry.and_then(|n| u32::try_from(n).ok()).or(self.retry);
            }
            "virtualhost" => {
                self.virtualhost = report
                    .value(stmt)
                    .map(str::to_string)
                    .or(self.virtualhost.take())
            }
            // Read into `fall`; the checker's line says how (see `retry_fall`).
            "delay_before_retry" => {
                self.delay_before_retry = report.timer(stmt).or(self.delay_before_retry)
            }
            "warmup" => {
                report.timer(stmt);
                report.unsupported(
                    stmt,
                    "the first checks are not spread by a random delay; they start at once",
                );
            }
            _ => return false,
        }
        true
    }
}

/// Whether a keyword names a checker at all (supported or not).
pub(super) fn is_checker(keyword: &str) -> bool {
    matches!(
        keyword,
        "TCP_CHECK"
            | "HTTP_GET"
            | "SSL_GET"
            | "MISC_CHECK"
            | "SMTP_CHECK"
            | "DNS_CHECK"
            | "UDP_CHECK"
            | "PING_CHECK"
            | "BFD_CHECK"
            | "FILE_CHECK"
    )
}

/// One checker block as a check; `None` for a kind we do not have (noted) or a broken block.
pub(super) fn checker(stmt: &Stmt, inherited: &Timing, report: &mut Report) -> Option<Check> {
    let kind = stmt.keyword();
    if !matches!(kind, "TCP_CHECK" | "HTTP_GET" | "SSL_GET" | "MISC_CHECK") {
        report.unsupported(
            stmt,
            "this kind of check is not available; use TCP_CHECK, HTTP_GET, SSL_GET or a \
             MISC_CHECK program instead. The real server is not checked by it",
        );
        return None;
    }
    if !report.needs_block(stmt) {
        return None;
    }
    report.extra(stmt, 0);
    let http = matches!(kind, "HTTP_GET" | "SSL_GET");
    let mut timing = inherited.clone();
    let mut port = None;
    let mut urls: Vec<&Stmt> = Vec::new();
    let mut program: Option<ProgramCheck> = None;
    let mut misc_timeout = None;
    for c in stmt.body() {
        if kind == "MISC_CHECK" && matches!(c.keyword(), "connect_timeout" | "connect_port") {
            report.unsupported(c, "a check program makes no connection of its own; ignored");
            continue;
        }
        if timing.take(c, report) {
            continue;
        }
        match c.keyword() {
            "connect_port" => port = report.value(c).and_then(|v| report.port(c, v)),
            "connect_ip" | "bindto" | "bind_port" | "bind_if" | "fwmark" => report.unsupported(
                c,
                "checks go from the box to the real server's own address; other \
                     addresses, source bindings and marks for checks are not supported",
            ),
            "alpha" => report.unsupported(
                c,
                "a real server starts as up here and goes down on its first failed checks",
            ),
            "log_all_failures" => {
                report.unsupported(c, "the box logs changes of state, not every failure")
            }
            "url" if http => urls.push(c),
            "http_protocol" | "fast_recovery" if http => report.unsupported(
                c,
                "HTTP checks use HTTP/1.1 with `Connection: close` and check one URL",
            ),
            "enable_sni" | "sni_name" | "tls_compliant" if kind == "SSL_GET" => report.unsupported(
                c,
                "HTTPS checks send the virtual host as SNI when one is set",
            ),
            "misc_path" if kind == "MISC_CHECK" => program = misc_path(c, report),
            "misc_timeout" if kind == "MISC_CHECK" => {
                misc_timeout = report
                    .number(c, 0, u64::MAX / 1000)
                    .filter(|&secs| secs > 0)
                    .map(|secs| Span::from_millis(secs * 1000))
            }
            "misc_dynamic" if kind == "MISC_CHECK" => report.unsupported(
                c,
                "a program's exit status does not set the weight here; 0 is up, anything else down",
            ),
            "user" if kind == "MISC_CHECK" => report.unsupported(
                c,
                "check programs run as the daemon's user; there is no per-check user",
            ),
            _ => report.unknown(c),
        }
    }
    let interval = timing.delay_loop.unwrap_or(DELAY_LOOP);
    let mut check = Check {
        interval,
        timeout: CONNECT_TIMEOUT,
        rise: 1,
        fall: 1,
        port,
        min_weight: None,
        max_weight: None,
        tcp: None,
        http: None,
        send_expect: None,
        program: None,
    };
    let retry = match kind {
        "MISC_CHECK" => {
            // keepalived lets a script run for a whole delay_loop unless told otherwise.
            check.timeout = misc_timeout.unwrap_or(interval);
            if program.is_none() {
                report.error(stmt.line, "`MISC_CHECK` needs a `misc_path`");
            }
            check.program = program;
            timing.retry.unwrap_or(MISC_RETRY)
        }
        _ => {
            check.timeout = timing.connect_timeout.unwrap_or(CONNECT_TIMEOUT);
            if http {
                check.http = Some(http_check(stmt, kind == "SSL_GET", &urls, &timing, report));
            } else {
                check.tcp = Some(TcpCheck {});
            }
            timing.retry.unwrap_or(RETRY)
        }
    };
    let retry_delay = timing.delay_before_retry.unwrap_or(DELAY_BEFORE_RETRY);
    check.fall = retry_fall(retry, retry_delay, interval);
    if retry > 0 {
        report.note(
            stmt.line,
            retry_note(kind, retry, retry_delay, interval, check.fall),
        );
    }
    if check.timeout > check.interval && check.interval.as_millis() > 0 {
        report.note(
            stmt.line,
            format!(
                "`{kind}`: the timeout {} is longer than the check interval {}; a check here \
                 ends before the next starts, so the timeout is shortened to {}",
                check.timeout, check.interval, check.interval
            ),
        );
        check.timeout = check.interval;
    }
    Some(check)
}

/// The box's `fall` for keepalived's retries. keepalived retries a failed check `retry` times,
/// `retry_delay` apart, and marks the server down when all of them fail: about
/// retry × retry_delay after the first failure. The box has no retry delay: it checks every
/// `interval` and marks down after `fall` failures in a row, (fall - 1) × interval after the
/// first. So fall is 1 plus that time in whole intervals, rounded to the nearest: 1 when the
/// retries take less than half an interval (the usual case: 1 s against a delay_loop of many
/// seconds), and never more than keepalived's number of attempts.
fn retry_fall(retry: u32, retry_delay: Span, interval: Span) -> u32 {
    let interval = interval.as_millis().max(1);
    let retrying = u64::from(retry).saturating_mul(retry_delay.as_millis());
    let extra = retrying.saturating_add(interval / 2) / interval;
    let fall = extra
        .saturating_add(1)
        .min(u64::from(retry).saturating_add(1));
    u32::try_from(fall).unwrap_or(u32::MAX)
}

/// The note on a checker with retries: what keepalived did, and what the box does instead.
fn retry_note(kind: &str, retry: u32, retry_delay: Span, interval: Span, fall: u32) -> String {
    let retrying = Span::from_millis(u64::from(retry).saturating_mul(retry_delay.as_millis()));
    let detected = Span::from_millis(u64::from(fall - 1).saturating_mul(interval.as_millis()));
    let mapping = if fall == 1 {
        format!(
            "so fall = 1: the first failed check takes the real server out, because the \
             retries ({retrying}) are short against the interval {interval} and waiting for \
             another check would take far longer than keepalived did; a single failure that a \
             retry would have forgiven now takes it out until its next check passes"
        )
    } else {
        format!(
            "so fall = {fall}: it is taken out after {fall} failed checks in a row, about \
             {detected} after the first, the nearest the interval {interval} allows to \
             keepalived's {retrying}"
        )
    };
    format!(
        "`{kind}`: keepalived retried a failed check {retry} time(s), {retry_delay} apart \
         (delay_before_retry), and marked the real server down only when all failed, about \
         {retrying} after the first failure. The box has no separate retry delay: it checks \
         every {interval} (delay_loop) and marks a real server down after `fall` failed checks \
         in a row; {mapping}"
    )
}

fn http_check(
    stmt: &Stmt,
    tls: bool,
    urls: &[&Stmt],
    timing: &Timing,
    report: &mut Report,
) -> HttpCheck {
    let mut http = HttpCheck {
        tls,
        // keepalived's SSL_GET does not verify the server's certificate.
        verify: false,
        path: "/".into(),
        host: timing.virtualhost.clone(),
        status: Vec::new(),
        expect: None,
        ca: None,
        weight_header: None,
    };
    let Some(first) = urls.first() else {
        report.note(
            stmt.line,
            format!(
                "`{}` has no `url` block; the check asks for /",
                stmt.keyword()
            ),
        );
        http.status = (200..=299).collect();
        return http;
    };
    for later in urls.iter().skip(1) {
        report.unsupported(
            later,
            &format!(
                "an HTTP check asks for one URL here; only the first (line {}) is checked",
                first.line
            ),
        );
    }
    if report.needs_block(first) {
        report.extra(first, 0);
        for c in first.body() {
            match c.keyword() {
                "path" => {
                    if let Some(path) = report.value(c) {
                        http.path = path.to_string();
                    }
                }
                "status_code" => http.status.extend(status_codes(c, report)),
                "virtualhost" => http.host = report.value(c).map(str::to_string),
                "regex" => http.expect = report.value(c).map(str::to_string),
                "digest" => {
                    report.value(c);
                    report.unsupported(
                        c,
                        "the MD5 digest of the page is not compared; match its content with a \
                         regular expression (http.expect) instead",
                    )
                }
                "regex_no_match" | "regex_options" | "regex_stack" | "regex_min_offset"
                | "regex_max_offset" => report.unsupported(
                    c,
                    "the page must match http.expect; inverted matches, options and \
                     offsets are not supported",
                ),
                "tls_compliant" => report.unsupported(c, "HTTPS checks always close TLS properly"),
                _ => report.unknown(c),
            }
        }
    }
    // Without status_code keepalived accepts any 2xx answer.
    if http.status.is_empty() {
        http.status = (200..=299).collect();
    }
    http
}

/// `status_code 200 301-302 ...` as the codes it accepts.
fn status_codes(stmt: &Stmt, report: &mut Report) -> Vec<u16> {
    let mut codes = Vec::new();
    if stmt.args().is_empty() {
        report.error(
            stmt.line,
            "`status_code` needs a code or a range like 200-299",
        );
    }
    for arg in stmt.args() {
        let (low, high) = arg.split_once('-').unwrap_or((arg, arg));
        let low = report.number_in(stmt, low, 100, 599);
        let high = report.number_in(stmt, high, 100, 599);
        if let (Some(low), Some(high)) = (low, high) {
            codes.extend((low..=high).filter_map(|c| u16::try_from(c).ok()));
        }
    }
    codes.sort_unstable();
    codes.dedup();
    codes
}

/// `misc_path "/path/script arg 'an arg'"`: the program and its arguments, split on spaces
/// except inside single quotes, as keepalived runs it.
fn misc_path(stmt: &Stmt, report: &mut Report) -> Option<ProgramCheck> {
    if stmt.args().is_empty() {
        report.error(stmt.line, "`misc_path` needs a program");
        return None;
    }
    let line = stmt.args().join(" ");
    let mut words = Vec::new();
    let mut word = String::new();
    let mut started = false;
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                started = true;
            }
            c if c.is_whitespace() && !quoted => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            c => {
                word.push(c);
                started = true;
            }
        }
    }
    if started {
        words.push(word);
    }
    let mut words = words.into_iter();
    let path = words.next()?;
    Some(ProgramCheck {
        path,
        args: words.collect(),
    })
}
