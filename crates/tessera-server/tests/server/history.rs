//! A history checker for the revocation invariant, over two instances on shared stores.
//!
//! # The invariant
//! Once the response to a revocation has been sent — logout, logout-all, RFC 7009 revoke,
//! password change, role change, disable, admin revoke, refresh-token reuse detection —
//! no request that *starts* later is accepted with a credential it ended: on the instance
//! that answered the revocation from then on, on the other instance from [`BOUND`] later.
//! A user-wide revocation ends every credential of the user whose issuing request
//! *started* before the revocation started (so a grant or login already in flight, which
//! may have read the user as they were before, must not survive it either; one that starts
//! later reads the user as the revocation left them), except what the event keeps: a password change
//! keeps the caller's refresh family (bearer caller), and the new cookie it hands out.
//!
//! What each revocation ends, as encoded in [`check`]: session logout → that cookie;
//! bearer logout → that `jti` and its whole family; RFC 7009 → that `jti`, or the refresh
//! token's family; logout-all, role change, disable, admin revoke → everything of the user
//! (see above); password change → everything of the user but the bearer caller's family
//! and the cookie it returns (the session caller's old cookie ends); a refresh answered 400
//! `invalid_grant` for a token a successful refresh had already spent → that family (reuse),
//! unless another revocation of the family had started before (then that refusal may be
//! the other revocation's doing, which binds from its own response). An access token is
//! ended with its family. A successful refresh presents its family; every request that
//! succeeded with a credential is checked (`/v1/me`, refresh, logout, logout-all,
//! password change), 503s count as refusals. Violations are labelled "issued before"
//! (the credential's issuing request ended before the revocation started) or "issued
//! concurrently" (it overlapped the revocation) for user-wide revocations.
//!
//! # The test
//! A seeded random workload (logins, grants, refreshes — some replaying spent tokens —,
//! `/v1/me`, logouts, logout-all, password changes, RFC 7009 revocations, disable/enable,
//! role changes, admin revocations) runs on K concurrent workers against two instances
//! sharing their stores, while a [`TcpRelay`] in front of Redis is cut and restored at
//! random moments and the shared `ManualClock` jumps past the refresh grace period now and
//! then. Every request is recorded (instance, start and end `Instant`, kind, credentials
//! presented and issued, status); [`check`] then reports every accepted request the
//! invariant forbids.
//!
//! Configurations: two instances on one SQLite data directory + Redis, and two instances
//! on one PostgreSQL database + Redis.
//!
//! Environment: `HISTORY_SEED` (decimal or 0x-hex) forces the seed; `HISTORY_OPS` sets the
//! operations per worker (default 100); `HISTORY_SECS` runs each configuration for that
//! many seconds instead (one seed). A long run:
//! `HISTORY_SECS=600 cargo test -p tessera-server --test server history -- --nocapture`.
//! `HISTORY_CONTEXT=n` prints the first n violations with every op of the user around them;
//! `HISTORY_DUMP=<dir>` writes each history there, one op a line.
//! A seed replays the workers' choices, not the scheduling: interleavings differ per run.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use tessera_core::clock::{Clock, ManualClock, SystemClock};
use tessera_server::config::Secret;
use tessera_testkit::{RedisServer, TcpRelay, shared_postgres};

use crate::helpers::*;

/// `revocation_poll_interval` of both instances.
const POLL: Duration = Duration::from_millis(200);

/// How long after a revocation's response the *other* instance may still accept what it
/// ended. While the relay is up the push arrives within milliseconds; when a push is lost
/// (relay cut mid-flight) the other instance's next feed poll applies it (at most one poll
/// interval, plus one more if the poll was in flight when the revocation committed); when
/// the channel is down the instance stops trusting its session cache and reads the store.
/// 300 ms of slack covers scheduling on a loaded 2-core machine.
const BOUND: Duration = Duration::from_millis(2 * 200 + 300);

/// The default `refresh_grace_period`, seconds; each clock jump is longer, so that a
/// replayed spent token after a jump is reuse.
const GRACE_SECS: i64 = 10;
const CLOCK_STEP: i64 = GRACE_SECS + 1;

/// Concurrent workers, ordinary users (plus one admin, never revoked).
const WORKERS: usize = 8;
const USERS: usize = 6;
const DEFAULT_OPS: usize = 100;
const FIXED_SEED: u64 = 0x7e55_e7a0_2024;

/// The two passwords each user alternates between.
const PASSWORDS: [&str; 2] = [PASSWORD, "another horse battery"];

// ---------------------------------------------------------------------------------------
// The history and its checker
// ---------------------------------------------------------------------------------------

/// A credential, by its id: session cookie (`name=value`), access token `jti`, refresh
/// family id (`sid`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Cred {
    Session(String),
    Access(String),
    Family(String),
}

impl Cred {
    fn short(&self) -> String {
        let (k, v) = match self {
            Cred::Session(v) => ("session", v.split_once('=').map_or(v.as_str(), |p| p.1)),
            Cred::Access(v) => ("jti", v.as_str()),
            Cred::Family(v) => ("family", v.as_str()),
        };
        format!("{k}:{}", &v[..v.len().min(10)])
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    Login,
    Grant,
    Refresh,
    Me,
    Logout,
    LogoutAll,
    Password,
    Revoke7009,
    Disable,
    Enable,
    Role,
    AdminRevoke,
}

/// What an operation ends when it succeeds.
#[derive(Clone, Debug)]
enum Ends {
    Nothing,
    /// Exactly these (an access token's family is listed separately when it ends too).
    Creds(Vec<Cred>),
    /// Every credential of the op's user whose issuing request started before this op
    /// started, except the family `keep` (and its access tokens) and what this op issued.
    User {
        keep: Option<String>,
    },
}

#[derive(Clone, Debug)]
struct Issued {
    cred: Cred,
    /// The family of an access token.
    family: Option<String>,
}

#[derive(Clone, Debug)]
struct Op {
    inst: usize,
    start: Instant,
    end: Instant,
    kind: Kind,
    /// The user acted for (the owner of the presented credential, or the admin's target).
    user: usize,
    /// The credential the request authenticated with (checked when the request succeeds).
    presented: Option<Cred>,
    /// The refresh token presented (refresh ops): to recognise reuse of a spent one.
    refresh_token: Option<String>,
    /// HTTP status; 0 when no response arrived.
    status: u16,
    /// The `error` code of an error body.
    code: String,
    issued: Vec<Issued>,
    ends: Ends,
}

impl Op {
    fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

#[derive(Debug)]
struct Violation {
    op: usize,
    revocation: usize,
    /// The credential presented.
    cred: Cred,
    same_instance: bool,
    /// For a user-wide revocation: whether the credential was issued before the revocation
    /// started ("before") or by a request overlapping it ("concurrently").
    issued: Option<&'static str>,
}

#[derive(Debug, Default)]
struct Report {
    /// Accepted requests that presented a credential.
    checked: usize,
    /// Completed revocations (including detected refresh reuse).
    revocations: usize,
    reuse_detections: usize,
    /// Accepted on the other instance after a revocation that ended the credential, within
    /// [`BOUND`]; the longest such delay.
    tolerated: usize,
    max_lag: Duration,
    violations: Vec<Violation>,
}

struct CredInfo {
    user: usize,
    issuers: Vec<usize>,
}

/// Every accepted request in `ops` that presented a credential ended by a revocation whose
/// response was received before the request started (same instance), or more than `bound`
/// before (other instance). Times are the client's: a request's start is taken just before
/// sending and a response's end just after reading it, which can only hide violations.
fn check(ops: &[Op], bound: Duration) -> Report {
    let mut report = Report::default();
    // Who issued what.
    let mut creds: HashMap<&Cred, CredInfo> = HashMap::new();
    let mut family_of: HashMap<&str, &str> = HashMap::new();
    for (i, op) in ops.iter().enumerate() {
        if !op.ok() {
            continue;
        }
        for is in &op.issued {
            creds
                .entry(&is.cred)
                .or_insert(CredInfo {
                    user: op.user,
                    issuers: Vec::new(),
                })
                .issuers
                .push(i);
            if let (Cred::Access(j), Some(f)) = (&is.cred, &is.family) {
                family_of.insert(j, f);
            }
        }
    }
    // A spent refresh token: one a successful refresh presented; when that was first known.
    let mut spent: HashMap<&str, Instant> = HashMap::new();
    for op in ops {
        if let (Kind::Refresh, true, Some(t)) = (op.kind, op.ok(), &op.refresh_token) {
            let e = spent.entry(t).or_insert(op.end);
            *e = (*e).min(op.end);
        }
    }
    // The revocations, indexed by what they end.
    let mut by_cred: HashMap<Cred, Vec<usize>> = HashMap::new();
    let mut by_user: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut keeps: HashMap<usize, Option<&str>> = HashMap::new();
    let mut reuse: Vec<(usize, &str)> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        if !op.ok() {
            if op.kind == Kind::Refresh
                && op.status == 400
                && op.code == "invalid_grant"
                && let (Some(t), Some(Cred::Family(f))) = (&op.refresh_token, &op.presented)
                && spent.get(t.as_str()).is_some_and(|at| *at < op.start)
            {
                reuse.push((i, f));
            }
            continue;
        }
        match &op.ends {
            Ends::Nothing => continue,
            Ends::Creds(list) => {
                for c in list {
                    by_cred.entry(c.clone()).or_default().push(i);
                }
            }
            Ends::User { keep } => {
                by_user.entry(op.user).or_default().push(i);
                keeps.insert(i, keep.as_deref());
            }
        }
        report.revocations += 1;
    }
    // A spent refresh token presented again and refused: reuse detected, the family ended
    // from this response on — unless another revocation of the family had already started
    // (then the refusal may be that revocation's doing, which binds only from its own
    // response; a reuse detected earlier counts as such a revocation).
    reuse.sort_by_key(|&(i, _)| ops[i].start);
    for (i, f) in reuse {
        let fam = Cred::Family(f.into());
        let before = |r: &usize| ops[*r].start < ops[i].end;
        let direct = by_cred.get(&fam).is_some_and(|v| v.iter().any(before));
        let user_wide = creds.get(&fam).is_some_and(|info| {
            by_user.get(&info.user).is_some_and(|v| {
                v.iter().filter(|r| before(r)).any(|&r| {
                    keeps.get(&r).copied().flatten() != Some(f)
                        && info
                            .issuers
                            .iter()
                            .any(|&k| k != r && ops[k].start < ops[r].start)
                })
            })
        });
        if !direct && !user_wide {
            by_cred.entry(fam).or_default().push(i);
            report.reuse_detections += 1;
            report.revocations += 1;
        }
    }
    for list in by_user.values_mut() {
        list.sort_by_key(|&i| ops[i].end);
    }

    for (p, op) in ops.iter().enumerate() {
        let Some(c) = op.presented.as_ref().filter(|_| op.ok()) else {
            continue;
        };
        report.checked += 1;
        let family = match c {
            Cred::Access(j) => family_of.get(j.as_str()).copied(),
            Cred::Family(f) => Some(f.as_str()),
            Cred::Session(_) => None,
        };
        // (revocation, how the credential was issued relative to it)
        let mut candidates: Vec<(usize, Option<&'static str>)> = Vec::new();
        for key in [Some(c.clone()), family.map(|f| Cred::Family(f.into()))]
            .into_iter()
            .flatten()
        {
            for &r in by_cred.get(&key).into_iter().flatten() {
                candidates.push((r, None));
            }
        }
        // User-wide: decided on the family for a token (its first issuance), else on the
        // credential itself.
        let target = family.map_or_else(|| c.clone(), |f| Cred::Family(f.into()));
        if let Some(info) = creds.get(&target).or_else(|| creds.get(c)) {
            let list = by_user.get(&info.user).map_or(&[][..], |v| v.as_slice());
            let first_issue = info.issuers.iter().map(|&i| ops[i].start).min();
            let lo = first_issue.map_or(list.len(), |t| list.partition_point(|&r| ops[r].end <= t));
            let hi = list.partition_point(|&r| ops[r].end < op.start);
            for &r in list.get(lo..hi.max(lo)).into_iter().flatten() {
                if family.is_some() && keeps.get(&r).copied().flatten() == family {
                    continue;
                }
                let others: Vec<usize> = info.issuers.iter().copied().filter(|&i| i != r).collect();
                let Some(start) = others.iter().map(|&i| ops[i].start).min() else {
                    continue;
                };
                // A login takes effect at its read of the user: one that started after the
                // revocation began may have read the user as the revocation left them, and
                // is then a login *after* it (README, The revocation invariant).
                if start >= ops[r].start {
                    continue;
                }
                let before = others.iter().any(|&i| ops[i].end < ops[r].start);
                candidates.push((r, Some(if before { "before" } else { "concurrently" })));
            }
        }
        candidates.sort_by_key(|&(r, _)| ops[r].end);
        let mut lag = None;
        let mut found = None;
        for (r, issued) in candidates {
            let rev = &ops[r];
            if r == p || rev.end >= op.start {
                continue;
            }
            let same = rev.inst == op.inst;
            if same || rev.end + bound < op.start {
                found = Some(Violation {
                    op: p,
                    revocation: r,
                    cred: c.clone(),
                    same_instance: same,
                    issued,
                });
                break;
            }
            let l = op.start - rev.end;
            lag = Some(lag.map_or(l, |m: Duration| m.max(l)));
        }
        if let Some(v) = found {
            report.violations.push(v);
        } else if let Some(l) = lag {
            report.tolerated += 1;
            report.max_lag = report.max_lag.max(l);
        }
    }
    report
}

fn ms(t0: Instant, t: Instant) -> f64 {
    t.saturating_duration_since(t0).as_secs_f64() * 1000.0
}

fn describe(ops: &[Op], t0: Instant, i: usize) -> String {
    let o = &ops[i];
    let cred = o.presented.as_ref().map_or("-".into(), Cred::short);
    format!(
        "#{i} {:?} on {} [{:.1} ms .. {:.1} ms] user u{} with {cred} -> {}{}",
        o.kind,
        ["A", "B"][o.inst],
        ms(t0, o.start),
        ms(t0, o.end),
        o.user,
        o.status,
        if o.code.is_empty() {
            String::new()
        } else {
            format!(" {}", o.code)
        }
    )
}

/// The ops that issued `c` (for an access token, also those that opened its family).
fn issuers_of(ops: &[Op], c: &Cred) -> Vec<usize> {
    let family = match c {
        Cred::Access(_) => ops
            .iter()
            .flat_map(|o| &o.issued)
            .find(|is| is.cred == *c)
            .and_then(|is| is.family.clone()),
        _ => None,
    };
    ops.iter()
        .enumerate()
        .filter(|(_, o)| {
            o.ok()
                && o.issued.iter().any(|is| {
                    is.cred == *c
                        || family
                            .as_ref()
                            .is_some_and(|f| is.cred == Cred::Family(f.clone()))
                })
        })
        .map(|(i, _)| i)
        .take(4)
        .collect()
}

/// Whether the relay to Redis was cut at `t`.
fn relay_at(cuts: &[(Instant, Instant)], t: Instant) -> &'static str {
    if cuts.iter().any(|(a, b)| *a <= t && t <= *b) {
        "cut"
    } else {
        "up"
    }
}

/// Print the report; the number of violations.
fn print_report(label: &str, ops: &[Op], cuts: &[(Instant, Instant)], report: &Report) -> usize {
    let t0 = ops
        .iter()
        .map(|o| o.start)
        .min()
        .unwrap_or_else(Instant::now);
    let mut counts: BTreeMap<Kind, (usize, usize)> = BTreeMap::new();
    for o in ops {
        let e = counts.entry(o.kind).or_default();
        e.0 += 1;
        e.1 += usize::from(o.ok());
    }
    let counts: Vec<String> = counts
        .iter()
        .map(|(k, (n, ok))| format!("{k:?} {ok}/{n}"))
        .collect();
    eprintln!("[{label}] ops (succeeded/total): {}", counts.join(", "));
    let mut failures: BTreeMap<(Kind, u16, &str), usize> = BTreeMap::new();
    for o in ops.iter().filter(|o| !o.ok()) {
        *failures
            .entry((o.kind, o.status, o.code.as_str()))
            .or_default() += 1;
    }
    let failures: Vec<String> = failures
        .iter()
        .map(|((k, s, c), n)| format!("{k:?} {s} {c}: {n}"))
        .collect();
    eprintln!("[{label}] refused/failed: {}", failures.join(", "));
    eprintln!(
        "[{label}] checked {} accepted requests against {} revocations ({} refresh reuse); \
         {} accepted on the other instance within the bound {BOUND:?}, longest {:?}; {} violations",
        report.checked,
        report.revocations,
        report.reuse_detections,
        report.tolerated,
        report.max_lag,
        report.violations.len()
    );
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for v in &report.violations {
        let key = format!(
            "{:?} after {:?} ({}{})",
            ops[v.op].kind,
            ops[v.revocation].kind,
            if v.same_instance {
                "same instance"
            } else {
                "other instance"
            },
            v.issued.map_or(String::new(), |s| format!(", issued {s}"))
        );
        *kinds.entry(key).or_default() += 1;
    }
    for (k, n) in &kinds {
        eprintln!("[{label}]   {n:4} x {k}");
    }
    let rare = |v: &Violation| v.issued != Some("concurrently");
    let first_rare = report.violations.iter().filter(|v| rare(v)).take(3);
    let listed = report.violations.iter().take(3).chain(first_rare);
    let mut seen = HashSet::new();
    for v in listed.filter(|v| seen.insert(v.op)) {
        let (o, r) = (&ops[v.op], &ops[v.revocation]);
        eprintln!(
            "[{label}] VIOLATION: {} accepted {:.1} ms after the response to",
            describe(ops, t0, v.op),
            ms(r.end, o.start)
        );
        eprintln!(
            "[{label}]     (relay to Redis {} when the revocation was answered, {} when the request started)",
            relay_at(cuts, r.end),
            relay_at(cuts, o.start)
        );
        eprintln!(
            "[{label}]     revocation {} which ended {}{}",
            describe(ops, t0, v.revocation),
            v.cred.short(),
            v.issued.map_or(String::new(), |s| format!(
                " (issued {} it)",
                if s == "before" {
                    "before"
                } else {
                    "concurrently with"
                }
            ))
        );
        let issuers = issuers_of(ops, &v.cred);
        for &i in &issuers {
            let (a, b) = (ops[i].start, ops[i].end);
            let rel = |t: Instant| {
                if t < r.end {
                    format!("{:.1} ms before", ms(t, r.end))
                } else {
                    format!("{:.1} ms after", ms(r.end, t))
                }
            };
            eprintln!(
                "[{label}]     issued by {} (started {}, answered {} the revocation's response)",
                describe(ops, t0, i),
                rel(a),
                rel(b)
            );
        }
    }
    // The first violations in context: every op of the user from the credential's issuance
    // to the violating request.
    // (Also the first of the rarer kinds: issued before the revocation, or a direct one.)
    let contexts = env_number("HISTORY_CONTEXT").unwrap_or(1) as usize;
    let rare = [
        report
            .violations
            .iter()
            .position(|v| v.issued == Some("before")),
        report.violations.iter().position(|v| v.issued.is_none()),
    ];
    let shown = report
        .violations
        .iter()
        .enumerate()
        .filter(|(i, _)| *i < contexts || rare.contains(&Some(*i)))
        .map(|(_, v)| v);
    for v in shown {
        let o = &ops[v.op];
        let from = ops[v.revocation].start - Duration::from_millis(300);
        eprintln!(
            "[{label}] context of #{}: every op of u{} from {:.1} ms",
            v.op,
            o.user,
            ms(t0, from)
        );
        let mut lines: Vec<(Instant, String)> = ops
            .iter()
            .enumerate()
            .filter(|(_, x)| x.user == o.user && x.end >= from && x.start <= o.end)
            .map(|(i, x)| {
                let issued: Vec<String> = x.issued.iter().map(|is| is.cred.short()).collect();
                let issued = if issued.is_empty() || !x.ok() {
                    String::new()
                } else {
                    format!(" issued {}", issued.join(" "))
                };
                (x.start, format!("{}{issued}", describe(ops, t0, i)))
            })
            .collect();
        for (a, b) in cuts {
            if *b >= from && *a <= o.end {
                lines.push((
                    *a,
                    format!("relay cut [{:.1} ms .. {:.1} ms]", ms(t0, *a), ms(t0, *b)),
                ));
            }
        }
        lines.sort_by_key(|l| l.0);
        for (_, l) in lines.iter().take(80) {
            eprintln!("[{label}]   {l}");
        }
    }
    report.violations.len()
}

// ---------------------------------------------------------------------------------------
// The workload
// ---------------------------------------------------------------------------------------

struct UserSlot {
    id: String,
    name: String,
    /// Index into [`PASSWORDS`] of the current password.
    password: Mutex<usize>,
    /// Password changes of one user run one at a time, so that the current one is known.
    changing: tokio::sync::Mutex<()>,
    auditor: AtomicBool,
}

#[derive(Clone)]
struct Tok {
    user: usize,
    token: String,
    jti: String,
    sid: String,
    confidential: bool,
}

#[derive(Clone)]
struct Rt {
    user: usize,
    token: String,
    sid: String,
    confidential: bool,
}

/// A credential a worker can present.
#[derive(Clone)]
enum Held {
    Cookie(usize, String),
    Bearer(Tok),
}

impl Held {
    fn user(&self) -> usize {
        match self {
            Held::Cookie(u, _) => *u,
            Held::Bearer(t) => t.user,
        }
    }

    fn cred(&self) -> Cred {
        match self {
            Held::Cookie(_, c) => Cred::Session(c.clone()),
            Held::Bearer(t) => Cred::Access(t.jti.clone()),
        }
    }

    fn apply(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Held::Cookie(_, c) => req.header("cookie", c),
            Held::Bearer(t) => req.bearer_auth(&t.token),
        }
    }

    /// What logging out with it ends.
    fn logout_ends(&self) -> Vec<Cred> {
        match self {
            Held::Cookie(_, c) => vec![Cred::Session(c.clone())],
            Held::Bearer(t) => vec![Cred::Access(t.jti.clone()), Cred::Family(t.sid.clone())],
        }
    }
}

#[derive(Default)]
struct Pool {
    sessions: Vec<(usize, String)>,
    tokens: Vec<Tok>,
    refresh: Vec<Rt>,
    seen_refresh: HashSet<String>,
}

/// Mostly one of the newest, otherwise any.
fn pick<T: Clone>(v: &[T], rng: &mut StdRng) -> Option<T> {
    if v.is_empty() {
        return None;
    }
    let i = if rng.random_bool(0.65) {
        v.len() - 1 - rng.random_range(0..v.len().min(8))
    } else {
        rng.random_range(0..v.len())
    };
    Some(v[i].clone())
}

fn claims(token: &str) -> (String, String) {
    let payload = token.split('.').nth(1).unwrap();
    let v: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    (
        v["jti"].as_str().unwrap().to_owned(),
        v["sid"].as_str().unwrap().to_owned(),
    )
}

struct Resp {
    status: u16,
    code: String,
    headers: HeaderMap,
    body: Value,
    start: Instant,
    end: Instant,
}

async fn send(req: reqwest::RequestBuilder) -> Resp {
    let start = Instant::now();
    let (status, headers, body) = match req.timeout(Duration::from_secs(10)).send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            let headers = r.headers().clone();
            let body = r.json::<Value>().await.unwrap_or(Value::Null);
            (status, headers, body)
        }
        Err(_) => (0, HeaderMap::new(), Value::Null),
    };
    let code = body["error"].as_str().unwrap_or_default().to_owned();
    Resp {
        status,
        code,
        headers,
        body,
        start,
        end: Instant::now(),
    }
}

struct World {
    apps: Vec<TestApp>,
    users: Vec<UserSlot>,
    admin_cookie: String,
    client: TestClient,
    pool: Mutex<Pool>,
    history: Mutex<Vec<Op>>,
}

impl World {
    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        inst: usize,
        kind: Kind,
        user: usize,
        presented: Option<Cred>,
        refresh_token: Option<String>,
        r: &Resp,
        issued: Vec<Issued>,
        ends: Ends,
    ) {
        self.history.lock().unwrap().push(Op {
            inst,
            start: r.start,
            end: r.end,
            kind,
            user,
            presented,
            refresh_token,
            status: r.status,
            code: r.code.clone(),
            issued,
            ends,
        });
    }

    fn pick_held(&self, rng: &mut StdRng) -> Option<Held> {
        let pool = self.pool.lock().unwrap();
        let cookie = pick(&pool.sessions, rng).map(|(u, c)| Held::Cookie(u, c));
        let bearer = pick(&pool.tokens, rng).map(Held::Bearer);
        if rng.random_bool(0.5) {
            cookie.or(bearer)
        } else {
            bearer.or(cookie)
        }
    }

    fn post(&self, inst: usize, path: &str) -> reqwest::RequestBuilder {
        let app = &self.apps[inst];
        app.client.post(app.url(path))
    }

    fn admin(&self, inst: usize, path: String) -> reqwest::RequestBuilder {
        self.post(inst, &path).header("cookie", &self.admin_cookie)
    }

    fn add_pair(&self, user: usize, body: &Value, confidential: bool) -> Option<(String, String)> {
        let at = body["access_token"].as_str()?;
        let rt = body["refresh_token"].as_str()?;
        let (jti, sid) = claims(at);
        let mut pool = self.pool.lock().unwrap();
        if !pool.tokens.iter().any(|t| t.jti == jti) {
            pool.tokens.push(Tok {
                user,
                token: at.into(),
                jti: jti.clone(),
                sid: sid.clone(),
                confidential,
            });
        }
        if pool.seen_refresh.insert(rt.into()) {
            pool.refresh.push(Rt {
                user,
                token: rt.into(),
                sid: sid.clone(),
                confidential,
            });
        }
        Some((jti, sid))
    }

    /// Try the password believed current, then the other one (a password change whose
    /// response was lost, e.g. a 503 after the change, leaves the belief wrong); the
    /// first that works becomes the current one.
    async fn with_password<F, Fut>(&self, u: usize, mut attempt: F)
    where
        F: FnMut(&'static str) -> Fut,
        Fut: std::future::Future<Output = u16>,
    {
        let user = &self.users[u];
        let current = *user.password.lock().unwrap();
        for i in [current, 1 - current] {
            match attempt(PASSWORDS[i]).await {
                200 => {
                    *user.password.lock().unwrap() = i;
                    return;
                }
                // Wrong password (or a disabled user): try the other one.
                400 | 401 => {}
                _ => return,
            }
        }
    }

    async fn login(&self, inst: usize, u: usize) {
        let name = self.users[u].name.clone();
        self.with_password(u, |pw| {
            let name = name.clone();
            async move {
                let r = send(
                    self.post(inst, "/v1/login")
                        .json(&json!({"username": name, "password": pw})),
                )
                .await;
                let mut issued = Vec::new();
                if r.status == 200
                    && let Some(c) = cookie_pair(&r.headers)
                {
                    self.pool.lock().unwrap().sessions.push((u, c.clone()));
                    issued.push(Issued {
                        cred: Cred::Session(c),
                        family: None,
                    });
                }
                self.record(inst, Kind::Login, u, None, None, &r, issued, Ends::Nothing);
                r.status
            }
        })
        .await;
    }

    async fn grant(&self, inst: usize, u: usize, confidential: bool) {
        let name = self.users[u].name.clone();
        self.with_password(u, |pw| {
            let name = name.clone();
            async move {
                let mut req = self.post(inst, "/v1/token").form(&[
                    ("grant_type", "password"),
                    ("username", name.as_str()),
                    ("password", pw),
                ]);
                if confidential {
                    req = req.basic_auth(&self.client.id, Some(&self.client.secret));
                }
                let r = send(req).await;
                let mut issued = Vec::new();
                if r.status == 200
                    && let Some((jti, sid)) = self.add_pair(u, &r.body, confidential)
                {
                    issued.push(Issued {
                        cred: Cred::Family(sid.clone()),
                        family: None,
                    });
                    issued.push(Issued {
                        cred: Cred::Access(jti),
                        family: Some(sid),
                    });
                }
                self.record(inst, Kind::Grant, u, None, None, &r, issued, Ends::Nothing);
                r.status
            }
        })
        .await;
    }

    async fn refresh(&self, inst: usize, rng: &mut StdRng) {
        let Some(rt) = pick(&self.pool.lock().unwrap().refresh, rng) else {
            return;
        };
        let mut req = self.post(inst, "/v1/token").form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt.token.as_str()),
        ]);
        if rt.confidential {
            req = req.basic_auth(&self.client.id, Some(&self.client.secret));
        }
        let r = send(req).await;
        let mut issued = Vec::new();
        if r.status == 200
            && let Some((jti, sid)) = self.add_pair(rt.user, &r.body, rt.confidential)
        {
            assert_eq!(sid, rt.sid, "a refresh stays in its family");
            issued.push(Issued {
                cred: Cred::Access(jti),
                family: Some(sid),
            });
        }
        self.record(
            inst,
            Kind::Refresh,
            rt.user,
            Some(Cred::Family(rt.sid.clone())),
            Some(rt.token.clone()),
            &r,
            issued,
            Ends::Nothing,
        );
    }

    async fn me(&self, inst: usize, rng: &mut StdRng) {
        let Some(h) = self.pick_held(rng) else { return };
        let app = &self.apps[inst];
        let r = send(h.apply(app.client.get(app.url("/v1/me")))).await;
        self.record(
            inst,
            Kind::Me,
            h.user(),
            Some(h.cred()),
            None,
            &r,
            vec![],
            Ends::Nothing,
        );
    }

    async fn logout(&self, inst: usize, rng: &mut StdRng, all: bool) {
        let Some(h) = self.pick_held(rng) else { return };
        let (path, kind, ends) = if all {
            ("/v1/logout-all", Kind::LogoutAll, Ends::User { keep: None })
        } else {
            ("/v1/logout", Kind::Logout, Ends::Creds(h.logout_ends()))
        };
        let r = send(h.apply(self.post(inst, path))).await;
        self.record(inst, kind, h.user(), Some(h.cred()), None, &r, vec![], ends);
    }

    async fn change_password(&self, inst: usize, rng: &mut StdRng) {
        let Some(h) = self.pick_held(rng) else { return };
        let u = h.user();
        let user = &self.users[u];
        let _one_at_a_time = user.changing.lock().await;
        let current = *user.password.lock().unwrap();
        let r = send(h.apply(self.post(inst, "/v1/password")).json(&json!({
            "current_password": PASSWORDS[current],
            "new_password": PASSWORDS[1 - current],
        })))
        .await;
        let mut issued = Vec::new();
        if r.status == 204 || r.code == "invalid_current_password" {
            // (A wrong current password means an earlier change's outcome was not seen.)
            *user.password.lock().unwrap() = 1 - current;
        }
        if r.status == 204
            && let Held::Cookie(..) = h
            && let Some(c) = cookie_pair(&r.headers)
        {
            self.pool.lock().unwrap().sessions.push((u, c.clone()));
            issued.push(Issued {
                cred: Cred::Session(c),
                family: None,
            });
        }
        let keep = match &h {
            Held::Bearer(t) => Some(t.sid.clone()),
            Held::Cookie(..) => None,
        };
        self.record(
            inst,
            Kind::Password,
            u,
            Some(h.cred()),
            None,
            &r,
            issued,
            Ends::User { keep },
        );
    }

    async fn revoke_7009(&self, inst: usize, rng: &mut StdRng) {
        let (token, user, ends) = {
            let pool = self.pool.lock().unwrap();
            if rng.random_bool(0.5) {
                let v: Vec<Tok> = pool
                    .tokens
                    .iter()
                    .filter(|t| t.confidential)
                    .cloned()
                    .collect();
                let Some(t) = pick(&v, rng) else { return };
                (t.token, t.user, vec![Cred::Access(t.jti)])
            } else {
                let v: Vec<Rt> = pool
                    .refresh
                    .iter()
                    .filter(|t| t.confidential)
                    .cloned()
                    .collect();
                let Some(t) = pick(&v, rng) else { return };
                (t.token, t.user, vec![Cred::Family(t.sid)])
            }
        };
        let r = send(
            self.post(inst, "/v1/revoke")
                .basic_auth(&self.client.id, Some(&self.client.secret))
                .form(&[("token", token.as_str())]),
        )
        .await;
        self.record(
            inst,
            Kind::Revoke7009,
            user,
            None,
            None,
            &r,
            vec![],
            Ends::Creds(ends),
        );
    }

    async fn disable_enable(&self, inst: usize, u: usize, rng: &mut StdRng) {
        let id = &self.users[u].id;
        let r = send(self.admin(inst, format!("/v1/admin/users/{id}/disable"))).await;
        self.record(
            inst,
            Kind::Disable,
            u,
            None,
            None,
            &r,
            vec![],
            Ends::User { keep: None },
        );
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..60))).await;
        for _ in 0..100 {
            let inst = rng.random_range(0..2);
            let r = send(self.admin(inst, format!("/v1/admin/users/{id}/enable"))).await;
            self.record(inst, Kind::Enable, u, None, None, &r, vec![], Ends::Nothing);
            if r.status == 204 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("could not re-enable u{u}");
    }

    async fn set_role(&self, inst: usize, u: usize) {
        let user = &self.users[u];
        let to_auditor = !user.auditor.load(Ordering::SeqCst);
        let role = if to_auditor { "auditor" } else { "user" };
        let r = send(
            self.admin(inst, format!("/v1/admin/users/{}/role", user.id))
                .json(&json!({ "role": role })),
        )
        .await;
        if r.status == 200 {
            user.auditor.store(to_auditor, Ordering::SeqCst);
        }
        self.record(
            inst,
            Kind::Role,
            u,
            None,
            None,
            &r,
            vec![],
            Ends::User { keep: None },
        );
    }

    async fn admin_revoke(&self, inst: usize, u: usize) {
        let id = &self.users[u].id;
        let r = send(self.admin(inst, format!("/v1/admin/users/{id}/revoke"))).await;
        self.record(
            inst,
            Kind::AdminRevoke,
            u,
            None,
            None,
            &r,
            vec![],
            Ends::User { keep: None },
        );
    }

    async fn step(&self, rng: &mut StdRng) {
        let inst = rng.random_range(0..2);
        let u = rng.random_range(0..USERS);
        // Per mille. User-wide revocations are rare enough that most credentials live a
        // while (so that accepted requests abound), frequent enough to race with grants.
        match rng.random_range(0..1000) {
            0..580 => self.me(inst, rng).await,
            580..700 => self.refresh(inst, rng).await,
            700..780 => self.login(inst, u).await,
            780..860 => {
                let confidential = rng.random_bool(0.3);
                self.grant(inst, u, confidential).await
            }
            860..910 => self.logout(inst, rng, false).await,
            910..920 => self.logout(inst, rng, true).await,
            920..930 => self.change_password(inst, rng).await,
            930..956 => self.revoke_7009(inst, rng).await,
            956..964 => self.disable_enable(inst, u, rng).await,
            964..972 => self.set_role(inst, u).await,
            972..980 => self.admin_revoke(inst, u).await,
            _ => self.me(inst, rng).await,
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Config {
    SqliteRedis,
    PostgresRedis,
}

#[derive(Clone, Copy)]
enum Plan {
    Ops(usize),
    For(Duration),
}

async fn wait_connected(app: &TestApp) {
    let start = Instant::now();
    while !app.state.core.revocations.cache_usable() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "push channel never connected"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// One run: two instances, the workload, the chaos; the history and the relay's cuts.
async fn run(config: Config, seed: u64, plan: Plan) -> (Vec<Op>, Vec<(Instant, Instant)>) {
    let redis = RedisServer::start();
    let relay = Arc::new(TcpRelay::start(redis.port));
    let clock = ManualClock::new(SystemClock.now());
    let db = match config {
        Config::SqliteRedis => None,
        Config::PostgresRedis => Some(shared_postgres().database().await),
    };
    let shared_dir = Arc::new(tempfile::tempdir().unwrap());
    let mut apps = Vec::new();
    for _ in 0..2 {
        let (db, redis_url) = (db.clone(), relay.url());
        let dir = match config {
            // One data directory for both: with Redis configured, no exclusive lock.
            Config::SqliteRedis => shared_dir.clone(),
            Config::PostgresRedis => Arc::new(tempfile::tempdir().unwrap()),
        };
        apps.push(
            TestApp::spawn_in(dir, clock.clone(), move |s| {
                s.database_url = db.map(Secret);
                s.redis_url = Some(Secret(redis_url));
                s.revocation_poll_interval = POLL;
                s.login_throttle_account = 1_000_000;
                s.login_throttle_ip = 1_000_000;
            })
            .await,
        );
    }
    for app in &apps {
        wait_connected(app).await;
    }
    let mut users = Vec::new();
    for i in 0..USERS {
        let name = format!("u{i}");
        let u = apps[0].add_user(&name, "user").await;
        users.push(UserSlot {
            id: u.id,
            name,
            password: Mutex::new(0),
            changing: tokio::sync::Mutex::new(()),
            auditor: AtomicBool::new(false),
        });
    }
    apps[0].add_user("root", "admin").await;
    let admin_cookie = apps[0].session_cookie("root").await;
    let client = apps[0].add_client("history").await;
    let world = Arc::new(World {
        apps,
        users,
        admin_cookie,
        client,
        pool: Mutex::new(Pool::default()),
        history: Mutex::new(Vec::new()),
    });
    // Something to present from the start.
    for u in 0..USERS {
        world.login(u % 2, u).await;
        world.grant(1 - u % 2, u, u % 2 == 0).await;
    }

    let done = Arc::new(AtomicBool::new(false));
    let cuts = Arc::new(AtomicU64::new(0));
    let jumps = Arc::new(AtomicU64::new(0));
    let cut_log: Arc<Mutex<Vec<(Instant, Instant)>>> = Arc::default();
    let chaos = {
        let (relay, done, cuts, log) = (relay.clone(), done.clone(), cuts.clone(), cut_log.clone());
        let mut rng = StdRng::seed_from_u64(seed ^ 0xc4a05);
        tokio::spawn(async move {
            while !done.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(rng.random_range(300..2000))).await;
                let at = Instant::now();
                relay.cut();
                cuts.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(rng.random_range(50..500))).await;
                relay.restore();
                log.lock().unwrap().push((at, Instant::now()));
            }
        })
    };
    let ticker = {
        let (clock, done, jumps) = (clock.clone(), done.clone(), jumps.clone());
        let mut rng = StdRng::seed_from_u64(seed ^ 0x71c4);
        tokio::spawn(async move {
            while !done.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(rng.random_range(400..1600))).await;
                clock.advance(CLOCK_STEP);
                jumps.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let world = world.clone();
        let mut rng =
            StdRng::seed_from_u64(seed ^ (w as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        workers.push(tokio::spawn(async move {
            let mut n = 0;
            loop {
                match plan {
                    Plan::Ops(max) if n >= max => break,
                    Plan::For(d) if started.elapsed() >= d => break,
                    _ => {}
                }
                n += 1;
                world.step(&mut rng).await;
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    done.store(true, Ordering::SeqCst);
    chaos.abort();
    ticker.abort();
    let _ = chaos.await;
    let _ = ticker.await;
    if relay.is_cut() {
        // Aborted while cut.
        cut_log
            .lock()
            .unwrap()
            .push((Instant::now() - Duration::from_secs(1), Instant::now()));
    }
    relay.restore();
    let elapsed = started.elapsed();
    let world = Arc::try_unwrap(world).ok().unwrap();
    for app in world.apps {
        app.stop().await;
    }
    let (forwarded, refused) = relay.counts();
    eprintln!(
        "[{config:?} seed {seed:#x}] workload ran {elapsed:.1?}: {} relay cuts \
         ({forwarded} Redis connections forwarded, {refused} refused), {} clock jumps of {CLOCK_STEP}s",
        cuts.load(Ordering::SeqCst),
        jumps.load(Ordering::SeqCst)
    );
    drop(relay);
    drop(redis);
    let cuts = cut_log.lock().unwrap().clone();
    (world.history.into_inner().unwrap(), cuts)
}

/// Every op, one a line, in start order (for `HISTORY_DUMP=<dir>`).
fn dump(ops: &[Op], cuts: &[(Instant, Instant)], path: &std::path::Path) {
    let t0 = ops
        .iter()
        .map(|o| o.start)
        .min()
        .unwrap_or_else(Instant::now);
    let mut lines: Vec<(Instant, String)> = ops
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let issued: Vec<String> = o.issued.iter().map(|is| is.cred.short()).collect();
            let rt = o
                .refresh_token
                .as_deref()
                .map_or(String::new(), |t| format!(" rt:{}", &t[..8]));
            (
                o.start,
                format!(
                    "{}{rt} issued [{}] ends {:?}",
                    describe(ops, t0, i),
                    issued.join(" "),
                    o.ends
                ),
            )
        })
        .collect();
    for (a, b) in cuts {
        lines.push((
            *a,
            format!("relay cut [{:.1} ms .. {:.1} ms]", ms(t0, *a), ms(t0, *b)),
        ));
    }
    lines.sort_by_key(|l| l.0);
    let text: Vec<String> = lines.into_iter().map(|l| l.1).collect();
    std::fs::write(path, text.join("\n")).unwrap();
}

fn env_number(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    Some(match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).unwrap(),
        None => v.parse().unwrap(),
    })
}

async fn history_test(config: Config) {
    let secs = env_number("HISTORY_SECS");
    let plan = match secs {
        Some(s) => Plan::For(Duration::from_secs(s)),
        None => Plan::Ops(env_number("HISTORY_OPS").map_or(DEFAULT_OPS, |n| n as usize)),
    };
    let seeds = match (env_number("HISTORY_SEED"), secs) {
        (Some(seed), _) => vec![seed],
        (None, Some(_)) => vec![rand::random()],
        (None, None) => vec![FIXED_SEED, rand::random(), rand::random()],
    };
    eprintln!(
        "[{config:?}] seeds {:?} (replay one with HISTORY_SEED=<seed>)",
        seeds.iter().map(|s| format!("{s:#x}")).collect::<Vec<_>>()
    );
    let test_start = Instant::now();
    let mut failed = Vec::new();
    for seed in seeds {
        let (ops, cuts) = run(config, seed, plan).await;
        let report = check(&ops, BOUND);
        let label = format!("{config:?} seed {seed:#x}");
        let n = print_report(&label, &ops, &cuts, &report);
        if let Ok(dir) = std::env::var("HISTORY_DUMP") {
            let path = std::path::Path::new(&dir).join(format!("{config:?}-{seed:#x}.txt"));
            dump(&ops, &cuts, &path);
            eprintln!("[{label}] history written to {}", path.display());
        }
        if n > 0 {
            failed.push(format!("seed {seed:#x}: {n} violations"));
        }
    }
    eprintln!("[{config:?}] total {:.1?}", test_start.elapsed());
    assert!(
        failed.is_empty(),
        "revocation invariant violated ({config:?}): {}",
        failed.join("; ")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_two_instances_on_sqlite_and_redis_respect_revocations() {
    history_test(Config::SqliteRedis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_two_instances_on_postgres_and_redis_respect_revocations() {
    history_test(Config::PostgresRedis).await;
}

// ---------------------------------------------------------------------------------------
// The checker itself, on hand-made histories
// ---------------------------------------------------------------------------------------

mod checker {
    use super::*;

    struct H {
        t0: Instant,
        ops: Vec<Op>,
    }

    impl H {
        fn new() -> Self {
            Self {
                t0: Instant::now(),
                ops: Vec::new(),
            }
        }

        #[allow(clippy::too_many_arguments)]
        fn op(
            &mut self,
            inst: usize,
            at: (u64, u64),
            kind: Kind,
            user: usize,
            presented: Option<Cred>,
            status: u16,
            issued: Vec<Issued>,
            ends: Ends,
        ) -> usize {
            self.ops.push(Op {
                inst,
                start: self.t0 + Duration::from_millis(at.0),
                end: self.t0 + Duration::from_millis(at.1),
                kind,
                user,
                presented,
                refresh_token: None,
                status,
                code: String::new(),
                issued,
                ends,
            });
            self.ops.len() - 1
        }

        fn me(&mut self, inst: usize, at: u64, user: usize, c: Cred, status: u16) -> usize {
            self.op(
                inst,
                (at, at + 1),
                Kind::Me,
                user,
                Some(c),
                status,
                vec![],
                Ends::Nothing,
            )
        }
    }

    fn session(s: &str) -> Cred {
        Cred::Session(s.into())
    }

    fn issued(c: Cred) -> Vec<Issued> {
        vec![Issued {
            cred: c,
            family: None,
        }]
    }

    fn pair(jti: &str, sid: &str) -> Vec<Issued> {
        vec![
            Issued {
                cred: Cred::Family(sid.into()),
                family: None,
            },
            Issued {
                cred: Cred::Access(jti.into()),
                family: Some(sid.into()),
            },
        ]
    }

    /// A history with every kind of forbidden acceptance, and allowed look-alikes; when
    /// `with_violations` is false the forbidden ones are refused (401).
    fn history(with_violations: bool) -> (H, Vec<usize>) {
        let bad = if with_violations { 200 } else { 401 };
        let mut h = H::new();
        let mut expected = Vec::new();
        // Session logout on A.
        h.op(
            0,
            (0, 10),
            Kind::Login,
            0,
            None,
            200,
            issued(session("a")),
            Ends::Nothing,
        );
        h.me(1, 20, 0, session("a"), 200);
        h.op(
            0,
            (30, 40),
            Kind::Logout,
            0,
            Some(session("a")),
            204,
            vec![],
            Ends::Creds(vec![session("a")]),
        );
        h.me(0, 35, 0, session("a"), 200); // started before the response: allowed
        expected.push(h.me(0, 41, 0, session("a"), bad)); // same instance, after: forbidden
        h.me(1, 50, 0, session("a"), 200); // other instance within the bound: allowed
        expected.push(h.me(1, 800, 0, session("a"), bad)); // past the bound: forbidden
        h.me(0, 45, 0, session("a"), 401);

        // Logout-all of u1 on A while a grant for u1 runs on B: the grant's token must die.
        h.op(
            1,
            (0, 5),
            Kind::Login,
            1,
            None,
            200,
            issued(session("b")),
            Ends::Nothing,
        );
        h.op(
            1,
            (100, 300),
            Kind::Grant,
            1,
            None,
            200,
            pair("j", "f"),
            Ends::Nothing,
        );
        h.op(
            0,
            (150, 200),
            Kind::LogoutAll,
            1,
            Some(session("b")),
            204,
            vec![],
            Ends::User { keep: None },
        );
        h.op(
            1,
            (250, 260),
            Kind::Grant,
            1,
            None,
            200,
            pair("k", "g"),
            Ends::Nothing,
        ); // after: lives
        expected.push(h.me(0, 310, 1, Cred::Access("j".into()), bad));
        h.me(0, 320, 1, Cred::Access("k".into()), 200);
        expected.push(h.me(0, 330, 1, session("b"), bad));
        // A refresh of the dead family, and the token it returned.
        let r = h.op(
            0,
            (400, 410),
            Kind::Refresh,
            1,
            Some(Cred::Family("f".into())),
            bad,
            vec![Issued {
                cred: Cred::Access("j2".into()),
                family: Some("f".into()),
            }],
            Ends::Nothing,
        );
        expected.push(r);
        if with_violations {
            expected.push(h.me(0, 420, 1, Cred::Access("j2".into()), 200));
        }

        // Reuse detection: a spent refresh token refused after its successor was issued.
        h.op(
            0,
            (1000, 1010),
            Kind::Grant,
            2,
            None,
            200,
            pair("m", "r"),
            Ends::Nothing,
        );
        let mut spend = h.ops.len();
        h.op(
            1,
            (1020, 1030),
            Kind::Refresh,
            2,
            Some(Cred::Family("r".into())),
            200,
            vec![Issued {
                cred: Cred::Access("m2".into()),
                family: Some("r".into()),
            }],
            Ends::Nothing,
        );
        h.ops[spend].refresh_token = Some("rt0".into());
        spend = h.op(
            1,
            (1040, 1050),
            Kind::Refresh,
            2,
            Some(Cred::Family("r".into())),
            400,
            vec![],
            Ends::Nothing,
        );
        h.ops[spend].refresh_token = Some("rt0".into());
        h.ops[spend].code = "invalid_grant".into();
        expected.push(h.me(1, 1060, 2, Cred::Access("m2".into()), bad));
        h.me(0, 1060, 2, Cred::Access("m".into()), 200); // other instance, within the bound

        // A spent token refused while a revocation of its user is in flight: that refusal
        // may be the revocation's doing, which binds only from its own response.
        h.op(
            0,
            (5000, 5010),
            Kind::Grant,
            4,
            None,
            200,
            pair("n", "q"),
            Ends::Nothing,
        );
        let i = h.op(
            0,
            (5020, 5030),
            Kind::Refresh,
            4,
            Some(Cred::Family("q".into())),
            200,
            vec![Issued {
                cred: Cred::Access("n2".into()),
                family: Some("q".into()),
            }],
            Ends::Nothing,
        );
        h.ops[i].refresh_token = Some("rt1".into());
        h.op(
            1,
            (5035, 5500),
            Kind::AdminRevoke,
            4,
            None,
            204,
            vec![],
            Ends::User { keep: None },
        );
        let i = h.op(
            0,
            (5040, 5050),
            Kind::Refresh,
            4,
            Some(Cred::Family("q".into())),
            400,
            vec![],
            Ends::Nothing,
        );
        h.ops[i].refresh_token = Some("rt1".into());
        h.ops[i].code = "invalid_grant".into();
        h.me(0, 5060, 4, Cred::Access("n2".into()), 200);
        expected.push(h.me(1, 5600, 4, Cred::Access("n2".into()), bad));

        // A bearer password change keeps the caller's family, ends the rest.
        h.op(
            0,
            (2000, 2010),
            Kind::Grant,
            3,
            None,
            200,
            pair("p", "keep"),
            Ends::Nothing,
        );
        h.op(
            0,
            (2000, 2010),
            Kind::Login,
            3,
            None,
            200,
            issued(session("c")),
            Ends::Nothing,
        );
        h.op(
            1,
            (2020, 2030),
            Kind::Password,
            3,
            Some(Cred::Access("p".into())),
            204,
            vec![],
            Ends::User {
                keep: Some("keep".into()),
            },
        );
        h.me(1, 2040, 3, Cred::Access("p".into()), 200);
        expected.push(h.me(1, 2050, 3, session("c"), bad));
        // A session password change: the old cookie ends, the new one (its own) lives.
        h.op(
            0,
            (3000, 3010),
            Kind::Password,
            3,
            Some(session("c2")),
            204,
            issued(session("c3")),
            Ends::User { keep: None },
        );
        h.me(0, 3020, 3, session("c3"), 200);
        // A failed revocation ends nothing; other users are untouched.
        h.op(
            0,
            (4000, 4010),
            Kind::AdminRevoke,
            0,
            None,
            503,
            vec![],
            Ends::User { keep: None },
        );
        h.op(
            0,
            (4000, 4010),
            Kind::Login,
            0,
            None,
            200,
            issued(session("d")),
            Ends::Nothing,
        );
        h.me(0, 4020, 0, session("d"), 200);
        h.me(0, 4030, 2, session("zz"), 200);
        (h, expected)
    }

    #[test]
    fn the_checker_reports_exactly_the_forbidden_acceptances() {
        let (h, mut expected) = history(true);
        let report = check(&h.ops, BOUND);
        let mut found: Vec<usize> = report.violations.iter().map(|v| v.op).collect();
        found.sort();
        expected.sort();
        assert_eq!(found, expected);
        let concurrent = report
            .violations
            .iter()
            .find(|v| v.cred == Cred::Access("j".into()))
            .unwrap();
        assert_eq!(concurrent.issued, Some("concurrently"));
        assert!(concurrent.same_instance);
        assert_eq!(report.reuse_detections, 1);
        assert!(report.tolerated >= 2);
        assert!(report.max_lag >= Duration::from_millis(10));
    }

    #[test]
    fn the_checker_accepts_a_history_without_violations() {
        let (h, _) = history(false);
        let report = check(&h.ops, BOUND);
        assert!(report.violations.is_empty(), "{:?}", report.violations);
        assert!(report.checked > 10);
    }
}

/// The relay forwards, cuts live connections, closes new ones while cut, and recovers.
#[test]
fn the_relay_forwards_cuts_and_restores() {
    use std::io::{Read, Write};
    let ping = |port: u16| -> Option<String> {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        c.write_all(b"PING\r\n").ok()?;
        let mut buf = [0u8; 64];
        let n = c.read(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    };
    let redis = RedisServer::start();
    let relay = TcpRelay::start(redis.port);
    assert_eq!(ping(relay.port()).as_deref(), Some("+PONG\r\n"));
    let mut live = std::net::TcpStream::connect(("127.0.0.1", relay.port())).unwrap();
    live.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    live.write_all(b"PING\r\n").unwrap();
    let mut buf = [0u8; 64];
    let n = live.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"+PONG\r\n");
    relay.cut();
    assert!(relay.is_cut());
    let _ = live.write_all(b"PING\r\n");
    assert!(
        matches!(live.read(&mut buf), Ok(0) | Err(_)),
        "a live connection is closed by the cut"
    );
    assert_ne!(
        ping(relay.port()).as_deref(),
        Some("+PONG\r\n"),
        "new connections are closed while cut"
    );
    relay.restore();
    assert_eq!(ping(relay.port()).as_deref(), Some("+PONG\r\n"));
    let (forwarded, refused) = relay.counts();
    assert_eq!((forwarded, refused), (3, 1));
}
