//! `tessera bench`: the session/JWT trade-off, measured on the user's own hardware.
//!
//! For each credential kind it starts a throwaway `tessera serve` (this same binary, on a
//! free loopback port, in a temporary data directory), creates a user, obtains the
//! credential, and loads `GET /v1/me` from a bounded number of connections for a bounded
//! time. It also measures the login paths (session login, password grant, refresh grant)
//! and, with Redis, how long a revocation on one instance takes to be enforced by another.
//!
//! Reported per row: requests/s, p50 and p99 latency, server CPU per request (from the
//! child's `/proc/<pid>/stat`), and the credential's size on the wire. The load generator
//! runs in this process, on the same machine: compare rows with each other, not with
//! numbers from other tools.
//!
//! Safety rails: loopback targets only; every run is bounded in time and requests; every
//! process started is killed when the bench ends, however it ends.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// What to measure and how hard.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Measured time per row.
    pub duration: Duration,
    /// Concurrent connections of the load generator.
    pub connections: usize,
    /// Upper bound on requests per row.
    pub max_requests: u64,
    /// Redis for the `session-redis` row and the revocation-propagation row; rows that
    /// need it are skipped without it.
    pub redis_url: Option<String>,
    /// An already running tessera to measure instead of starting one (loopback only).
    pub url: Option<String>,
    /// Where the Markdown report and the SVG chart go.
    pub out: PathBuf,
    /// Only rows whose name contains one of these.
    pub only: Vec<String>,
}

/// One measured row.
#[derive(Debug, Clone)]
pub struct Row {
    /// Row name, e.g. `me/jwt-eddsa`.
    pub name: String,
    /// Requests per second.
    pub rps: f64,
    /// Median latency, microseconds.
    pub p50_us: u64,
    /// 99th percentile latency, microseconds.
    pub p99_us: u64,
    /// Server CPU per request, microseconds (None when the server is not our child).
    pub cpu_us_per_req: Option<f64>,
    /// Size of the credential header value on the wire, bytes.
    pub credential_bytes: Option<usize>,
    /// Non-success responses.
    pub errors: u64,
}

/// A `tessera serve` child, killed on drop.
struct Server {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn cpu_ticks(&self) -> Option<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        // Fields after the command name, which is in parentheses and may contain spaces.
        let rest = stat.rsplit_once(')')?.1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Start a server with extra `TESSERA_*` settings; `data_dir` shares a directory. A free
/// port can be taken by someone else before the child binds it: then try another.
fn start(env: &[(&str, String)], data_dir: Option<&Path>) -> anyhow::Result<Server> {
    let dir = tempfile::tempdir()?;
    let data = data_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dir.path().join("data"));
    for _attempt in 0..3 {
        let port = free_port()?;
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("TESSERA_DATA_DIR", &data)
            .env("TESSERA_LOGIN_THROTTLE_ACCOUNT", "1000000")
            .env("TESSERA_LOGIN_THROTTLE_IP", "1000000")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().context("starting tessera serve")?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(Server {
                    child,
                    base: format!("http://127.0.0.1:{port}"),
                    _dir: dir,
                });
            }
            if matches!(child.try_wait(), Ok(Some(_))) {
                break; // exited (port taken?): next attempt
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("tessera serve did not start on port {port}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    bail!("tessera serve exited at start three times (run `tessera serve` by hand to see why)")
}

const PASSWORD: &str = "bench password 1";

async fn signup(http: &reqwest::Client, base: &str, name: &str) -> anyhow::Result<()> {
    let res = http
        .post(format!("{base}/v1/signup"))
        .json(&serde_json::json!({"username": name, "password": PASSWORD}))
        .send()
        .await?;
    if !(res.status().is_success() || res.status() == reqwest::StatusCode::CONFLICT) {
        bail!(
            "signup at {base} failed: {} (is signup enabled?)",
            res.status()
        );
    }
    Ok(())
}

async fn cookie(http: &reqwest::Client, base: &str, name: &str) -> anyhow::Result<String> {
    let res = http
        .post(format!("{base}/v1/login"))
        .json(&serde_json::json!({"username": name, "password": PASSWORD}))
        .send()
        .await?;
    let set = res
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .context("login gave no cookie")?;
    Ok(set.split(';').next().unwrap_or_default().to_owned())
}

async fn token_pair(
    http: &reqwest::Client,
    base: &str,
    name: &str,
) -> anyhow::Result<serde_json::Value> {
    let res = http
        .post(format!("{base}/v1/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", name),
            ("password", PASSWORD),
        ])
        .send()
        .await?;
    if !res.status().is_success() {
        bail!("password grant failed: {}", res.status());
    }
    Ok(res.json().await?)
}

/// What one load-generator request is.
#[derive(Clone)]
enum Load {
    Get {
        url: String,
        header: (&'static str, String),
    },
    Login {
        url: String,
        user: String,
    },
    PasswordGrant {
        url: String,
        user: String,
    },
    RefreshGrant {
        url: String,
        user: String,
    },
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Run `load` from `connections` workers for the configured time; the row.
async fn run(
    name: &str,
    load: Load,
    server: Option<&Server>,
    opts: &BenchOptions,
    credential_bytes: Option<usize>,
) -> anyhow::Result<Row> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(opts.connections)
        .build()?;
    let done = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let cpu0 = server.and_then(Server::cpu_ticks);
    let mut workers = Vec::new();
    for _ in 0..opts.connections {
        let (http, load, done, count, errors, max) = (
            http.clone(),
            load.clone(),
            done.clone(),
            count.clone(),
            errors.clone(),
            opts.max_requests,
        );
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut refresh: Option<String> = None;
            while !done.load(Ordering::Relaxed) && count.fetch_add(1, Ordering::Relaxed) < max {
                let t = Instant::now();
                let res = match &load {
                    Load::Get { url, header } => {
                        http.get(url).header(header.0, &header.1).send().await
                    }
                    Load::Login { url, user } => {
                        http.post(url)
                            .json(&serde_json::json!({"username": user, "password": PASSWORD}))
                            .send()
                            .await
                    }
                    Load::PasswordGrant { url, user } => {
                        http.post(url)
                            .form(&[
                                ("grant_type", "password"),
                                ("username", user.as_str()),
                                ("password", PASSWORD),
                            ])
                            .send()
                            .await
                    }
                    Load::RefreshGrant { url, user } => {
                        let form: Vec<(&str, &str)> = match &refresh {
                            Some(rt) => vec![
                                ("grant_type", "refresh_token"),
                                ("refresh_token", rt.as_str()),
                            ],
                            None => vec![
                                ("grant_type", "password"),
                                ("username", user.as_str()),
                                ("password", PASSWORD),
                            ],
                        };
                        let r = http.post(url).form(&form).send().await;
                        match r {
                            Ok(r) if r.status().is_success() => {
                                let v: serde_json::Value = r.json().await.unwrap_or_default();
                                let first = refresh.is_none();
                                refresh = v["refresh_token"].as_str().map(str::to_owned);
                                if first {
                                    continue; // the password grant that opened the family is not measured
                                }
                                lat.push(t.elapsed().as_micros() as u64);
                                continue;
                            }
                            other => other,
                        }
                    }
                };
                match res {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        lat.push(t.elapsed().as_micros() as u64);
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            lat
        }));
    }
    let progress = indicatif::ProgressBar::new(opts.duration.as_millis() as u64);
    progress.set_style(
        indicatif::ProgressStyle::with_template("{prefix:>24} [{bar:30}] {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    progress.set_prefix(name.to_owned());
    while start.elapsed() < opts.duration && count.load(Ordering::Relaxed) < opts.max_requests {
        tokio::time::sleep(Duration::from_millis(100)).await;
        progress.set_position(start.elapsed().as_millis() as u64);
        let n = count.load(Ordering::Relaxed);
        progress.set_message(format!(
            "{:.0} req/s",
            n as f64 / start.elapsed().as_secs_f64()
        ));
    }
    done.store(true, Ordering::Relaxed);
    let mut lat = Vec::new();
    for w in workers {
        lat.extend(w.await?);
    }
    let elapsed = start.elapsed().as_secs_f64();
    progress.finish_and_clear();
    let cpu1 = server.and_then(Server::cpu_ticks);
    lat.sort_unstable();
    let ok = lat.len() as u64;
    let tck = 100.0; // USER_HZ on Linux
    let cpu_us_per_req = match (cpu0, cpu1) {
        (Some(a), Some(b)) if ok > 0 => Some((b.saturating_sub(a)) as f64 / tck * 1e6 / ok as f64),
        _ => None,
    };
    Ok(Row {
        name: name.to_owned(),
        rps: ok as f64 / elapsed,
        p50_us: percentile(&lat, 0.50),
        p99_us: percentile(&lat, 0.99),
        cpu_us_per_req,
        credential_bytes,
        errors: errors.load(Ordering::Relaxed),
    })
}

/// Revocation on `a` enforced on `b`: `samples` delays, microseconds, sorted.
async fn revocation_delay(
    a: &str,
    b: &str,
    user: &str,
    samples: usize,
) -> anyhow::Result<Vec<u64>> {
    let http = reqwest::Client::new();
    let mut delays = Vec::new();
    for _ in 0..samples {
        let pair = token_pair(&http, a, user).await?;
        let token = pair["access_token"]
            .as_str()
            .context("no access token")?
            .to_owned();
        if !http
            .get(format!("{b}/v1/me"))
            .bearer_auth(&token)
            .send()
            .await?
            .status()
            .is_success()
        {
            bail!("the second instance does not accept the first one's token");
        }
        http.post(format!("{a}/v1/logout"))
            .bearer_auth(&token)
            .send()
            .await?;
        let t = Instant::now();
        loop {
            if http
                .get(format!("{b}/v1/me"))
                .bearer_auth(&token)
                .send()
                .await?
                .status()
                == reqwest::StatusCode::UNAUTHORIZED
            {
                break;
            }
            if t.elapsed() > Duration::from_secs(10) {
                bail!("revocation not enforced on the second instance within 10 s");
            }
        }
        delays.push(t.elapsed().as_micros() as u64);
    }
    delays.sort_unstable();
    Ok(delays)
}

fn loopback_only(url: &str) -> anyhow::Result<()> {
    let parsed = url::Url::parse(url).context("--url")?;
    let ok = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    if !ok {
        bail!("tessera bench only targets loopback addresses (127.0.0.0/8, ::1, localhost)");
    }
    Ok(())
}

/// Run the benchmark and write the report; the rows and the revocation delays.
pub async fn bench(opts: BenchOptions) -> anyhow::Result<(Vec<Row>, Option<Vec<u64>>)> {
    let wanted =
        |name: &str| opts.only.is_empty() || opts.only.iter().any(|o| name.contains(o.as_str()));
    let http = reqwest::Client::new();
    let mut rows = Vec::new();
    if let Some(url) = &opts.url {
        loopback_only(url)?;
        let base = url.trim_end_matches('/').to_owned();
        let user = format!("bench{}", std::process::id());
        signup(&http, &base, &user).await?;
        let c = cookie(&http, &base, &user).await?;
        let t = format!(
            "Bearer {}",
            token_pair(&http, &base, &user).await?["access_token"]
                .as_str()
                .unwrap_or_default()
        );
        for (name, header) in [
            ("me/session", ("cookie", c)),
            ("me/jwt", ("authorization", t)),
        ] {
            if wanted(name) {
                let bytes = header.1.len();
                rows.push(
                    run(
                        name,
                        Load::Get {
                            url: format!("{base}/v1/me"),
                            header,
                        },
                        None,
                        &opts,
                        Some(bytes),
                    )
                    .await?,
                );
            }
        }
        return finish(&opts, rows, None);
    }
    let jwt_modes: [(&str, Vec<(&str, String)>); 4] = [
        ("me/jwt-eddsa", vec![]),
        (
            "me/jwt-es256",
            vec![("TESSERA_SIGNING_ALGORITHM", "ES256".into())],
        ),
        (
            "me/jwt-rs256",
            vec![("TESSERA_SIGNING_ALGORITHM", "RS256".into())],
        ),
        (
            "me/jwt-hs256",
            vec![(
                "TESSERA_HS256_SECRET",
                "tessera-bench-shared-secret-0123456789abcdef".into(),
            )],
        ),
    ];
    for (name, env) in jwt_modes {
        if !wanted(name) {
            continue;
        }
        let server = start(&env, None)?;
        signup(&http, &server.base, "alice").await?;
        let token = token_pair(&http, &server.base, "alice").await?["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let header = ("authorization", format!("Bearer {token}"));
        let bytes = header.1.len();
        rows.push(
            run(
                name,
                Load::Get {
                    url: format!("{}/v1/me", server.base),
                    header,
                },
                Some(&server),
                &opts,
                Some(bytes),
            )
            .await?,
        );
    }
    if wanted("login-flood") {
        // /v1/me while logins keep every Argon2 slot busy: the hashing bound is what keeps
        // the rest of the server responsive.
        let server = start(&[], None)?;
        signup(&http, &server.base, "alice").await?;
        let token = token_pair(&http, &server.base, "alice").await?["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let stop = Arc::new(AtomicBool::new(false));
        let mut flood = Vec::new();
        for _ in 0..16 {
            let (http, url, stop) = (
                http.clone(),
                format!("{}/v1/login", server.base),
                stop.clone(),
            );
            flood.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let _ = http
                        .post(&url)
                        .json(&serde_json::json!({"username": "alice", "password": PASSWORD}))
                        .send()
                        .await;
                }
            }));
        }
        let header = ("authorization", format!("Bearer {token}"));
        let bytes = header.1.len();
        let row = run(
            "me/jwt-eddsa+login-flood",
            Load::Get {
                url: format!("{}/v1/me", server.base),
                header,
            },
            Some(&server),
            &opts,
            Some(bytes),
        )
        .await;
        stop.store(true, Ordering::Relaxed);
        for f in flood {
            let _ = f.await;
        }
        rows.push(row?);
    }
    let mut session_modes = vec![("me/session-sqlite", vec![])];
    if let Some(r) = &opts.redis_url {
        session_modes.push((
            "me/session-redis",
            vec![
                ("TESSERA_REDIS_URL", r.clone()),
                ("TESSERA_SESSION_STORE", "redis".into()),
            ],
        ));
    }
    for (name, env) in session_modes {
        if !wanted(name) {
            continue;
        }
        let server = start(&env, None)?;
        signup(&http, &server.base, "alice").await?;
        let c = cookie(&http, &server.base, "alice").await?;
        let bytes = c.len();
        rows.push(
            run(
                name,
                Load::Get {
                    url: format!("{}/v1/me", server.base),
                    header: ("cookie", c),
                },
                Some(&server),
                &opts,
                Some(bytes),
            )
            .await?,
        );
    }
    type MakeLoad = fn(String, String) -> Load;
    let logins: [(&str, MakeLoad, &str); 3] = [
        (
            "login/session",
            |url, user| Load::Login { url, user },
            "/v1/login",
        ),
        (
            "login/password-grant",
            |url, user| Load::PasswordGrant { url, user },
            "/v1/token",
        ),
        (
            "login/refresh-grant",
            |url, user| Load::RefreshGrant { url, user },
            "/v1/token",
        ),
    ];
    for (name, make, path) in logins {
        if !wanted(name) {
            continue;
        }
        let server = start(&[], None)?;
        signup(&http, &server.base, "alice").await?;
        rows.push(
            run(
                name,
                make(format!("{}{path}", server.base), "alice".into()),
                Some(&server),
                &opts,
                None,
            )
            .await?,
        );
    }
    let mut delays = None;
    if let Some(r) = &opts.redis_url
        && wanted("revocation")
    {
        // Two instances on one SQLite file, kept in step by the Redis push channel.
        let shared = tempfile::tempdir()?;
        let env = [("TESSERA_REDIS_URL", r.clone())];
        let a = start(&env, Some(shared.path()))?;
        let b = start(&env, Some(shared.path()))?;
        signup(&http, &a.base, "alice").await?;
        tokio::time::sleep(Duration::from_millis(500)).await; // both subscribed
        delays = Some(revocation_delay(&a.base, &b.base, "alice", 50).await?);
    }
    finish(&opts, rows, delays)
}

fn finish(
    opts: &BenchOptions,
    rows: Vec<Row>,
    delays: Option<Vec<u64>>,
) -> anyhow::Result<(Vec<Row>, Option<Vec<u64>>)> {
    println!("{}", table(&rows, delays.as_deref()));
    std::fs::create_dir_all(&opts.out)?;
    std::fs::write(
        opts.out.join("report.md"),
        report(opts, &rows, delays.as_deref()),
    )?;
    std::fs::write(opts.out.join("throughput.svg"), svg(&rows))?;
    println!("report: {}", opts.out.join("report.md").display());
    Ok((rows, delays))
}

/// The Markdown table (also printed to the terminal).
pub fn table(rows: &[Row], delays: Option<&[u64]>) -> String {
    let mut s = String::from(
        "| row | req/s | p50 ms | p99 ms | server CPU µs/req | credential bytes | errors |\n|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let cpu = r.cpu_us_per_req.map_or("-".into(), |c| format!("{c:.0}"));
        let cred = r.credential_bytes.map_or("-".into(), |b| b.to_string());
        let _ = writeln!(
            s,
            "| {} | {:.0} | {:.2} | {:.2} | {} | {} | {} |",
            r.name,
            r.rps,
            r.p50_us as f64 / 1000.0,
            r.p99_us as f64 / 1000.0,
            cpu,
            cred,
            r.errors
        );
    }
    if let Some(d) = delays {
        let _ = writeln!(
            s,
            "\nRevocation delay between two instances (Redis push), {} samples: p50 {:.2} ms, p99 {:.2} ms",
            d.len(),
            percentile(d, 0.5) as f64 / 1000.0,
            percentile(d, 0.99) as f64 / 1000.0
        );
    }
    s
}

fn report(opts: &BenchOptions, rows: &[Row], delays: Option<&[u64]>) -> String {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    format!(
        "# tessera bench\n\nMachine: {cores} CPU(s), {}. Load: {} connections for {:?} per row (at most {} requests), generated in the same process and on the same machine as the servers: compare rows with each other.\n\n{}\n![throughput](throughput.svg)\n",
        std::env::consts::ARCH,
        opts.connections,
        opts.duration,
        opts.max_requests,
        table(rows, delays)
    )
}

/// A horizontal bar chart of requests/s per row.
pub fn svg(rows: &[Row]) -> String {
    let max = rows.iter().map(|r| r.rps).fold(1.0, f64::max);
    let (w, bar_h, label_w) = (720.0, 22.0, 190.0);
    let h = 30.0 + rows.len() as f64 * (bar_h + 8.0);
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12"><text x="8" y="18" font-weight="bold">requests/s</text>"#
    );
    for (i, r) in rows.iter().enumerate() {
        let y = 28.0 + i as f64 * (bar_h + 8.0);
        let len = (w - label_w - 90.0) * r.rps / max;
        let _ = write!(
            s,
            r##"<text x="8" y="{ty}">{name}</text><rect x="{label_w}" y="{y}" width="{len:.1}" height="{bar_h}" fill="#4a7bd0"/><text x="{tx:.1}" y="{ty}">{rps:.0}</text>"##,
            ty = y + 15.0,
            name = r.name,
            tx = label_w + len + 6.0,
            rps = r.rps
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_loopback_targets_are_accepted() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://127.9.9.9",
            "http://localhost:1",
            "http://[::1]:80",
        ] {
            assert!(loopback_only(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.1",
            "http://192.168.1.1:80",
            "http://example.com",
            "http://8.8.8.8",
        ] {
            assert!(loopback_only(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn percentiles_and_chart() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), 51);
        assert_eq!(percentile(&v, 0.99), 99);
        let rows = vec![Row {
            name: "me/jwt-eddsa".into(),
            rps: 1000.0,
            p50_us: 500,
            p99_us: 900,
            cpu_us_per_req: Some(40.0),
            credential_bytes: Some(300),
            errors: 0,
        }];
        assert!(svg(&rows).contains("me/jwt-eddsa"));
        assert!(
            table(&rows, Some(&[1000, 2000]))
                .contains("| me/jwt-eddsa | 1000 | 0.50 | 0.90 | 40 | 300 | 0 |")
        );
    }
}
