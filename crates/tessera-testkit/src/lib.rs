//! Real `redis-server` and PostgreSQL processes on free loopback ports in temp dirs, which
//! tests can kill and restart. Each process is watched by a small shell loop that kills it
//! when the test binary exits, so nothing outlives the run; its log is printed when a test
//! fails.
//!
//! Shared by the integration tests of every crate (the store conformance suite in
//! `tessera-core`, the server's tests, the binary's).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tempfile::TempDir;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false)
}

/// Run `program args` so that it dies with the test process: a watchdog subshell kills the
/// server (which replaced the shell through `exec`) once the parent is gone.
fn guarded(program: &Path, args: &[String], log: &Path, as_postgres: bool) -> Child {
    let mut cmd = if as_postgres && is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "sh",
        ]);
        c
    } else {
        Command::new("sh")
    };
    let script = r#"parent=$PPID; ( while [ -d "/proc/$parent" ]; do sleep 1; done; kill -9 $$ 2>/dev/null ) & exec "$@""#;
    cmd.arg("-c").arg(script).arg("sh").arg(program).args(args);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    cmd.spawn().unwrap()
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn print_log_if_panicking(name: &str, log: &Path) {
    if std::thread::panicking() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        eprintln!("---- {name} log (last 40 lines) ----");
        for l in tail.into_iter().rev() {
            eprintln!("{l}");
        }
    }
}

/// A `redis-server` of our own.
pub struct RedisServer {
    pub port: u16,
    dir: TempDir,
    child: Option<Child>,
    durable: bool,
}

impl RedisServer {
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// With an append-only file synced on every write: survives SIGKILL.
    pub fn start_durable() -> Self {
        Self::start_with(true)
    }

    fn start_with(durable: bool) -> Self {
        let mut r = Self {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
            durable,
        };
        r.restart();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// Start (again) on the same port.
    pub fn restart(&mut self) {
        let args: Vec<String> = [
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            if self.durable { "yes" } else { "no" },
            "--appendfsync",
            "always",
            "--dir",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([self.dir.path().display().to_string()])
        .collect();
        self.child = Some(guarded(
            Path::new("redis-server"),
            &args,
            &self.log(),
            false,
        ));
        wait_for_port(self.port, "redis-server");
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        print_log_if_panicking("redis", &self.log());
        self.kill();
    }
}

fn pg_bin(name: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed (scripts/test installs it)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join(name).exists())
        .collect();
    dirs.sort();
    dirs.pop().expect("no PostgreSQL binaries").join(name)
}

/// A PostgreSQL server of our own (`initdb` + `postgres`, as the `postgres` user when
/// running as root, since `initdb` refuses root).
pub struct PostgresServer {
    pub port: u16,
    dir: TempDir,
    child: Option<Child>,
}

static DATABASES: AtomicU32 = AtomicU32::new(0);

impl PostgresServer {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        if is_root() {
            let status = Command::new("chown")
                .arg("postgres:postgres")
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success());
        }
        let data = dir.path().join("data");
        let mut init = if is_root() {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=postgres", "--regid=postgres", "--init-groups"])
                .arg(pg_bin("initdb"));
            c
        } else {
            Command::new(pg_bin("initdb"))
        };
        let out = init
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut pg = Self {
            port: free_port(),
            dir,
            child: None,
        };
        pg.restart();
        pg
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// Start (again) on the same port and data directory.
    pub fn restart(&mut self) {
        let args: Vec<String> = vec![
            "-D".into(),
            self.dir.path().join("data").display().to_string(),
            "-p".into(),
            self.port.to_string(),
            "-h".into(),
            "127.0.0.1".into(),
            "-k".into(),
            self.dir.path().display().to_string(),
            "-c".into(),
            "fsync=off".into(),
        ];
        // After a SIGKILL the old backends may hold the data directory for a moment:
        // retry until a new postmaster takes it.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut child = guarded(&pg_bin("postgres"), &args, &self.log(), true);
            let started = Instant::now();
            let ready = loop {
                let ok = Command::new(pg_bin("pg_isready"))
                    .args([
                        "-h",
                        "127.0.0.1",
                        "-p",
                        &self.port.to_string(),
                        "-U",
                        "postgres",
                    ])
                    .stdout(Stdio::null())
                    .status()
                    .map(|s| s.success())
                    .unwrap_or(false);
                if ok {
                    break true;
                }
                if matches!(child.try_wait(), Ok(Some(_)))
                    || started.elapsed() > Duration::from_secs(20)
                {
                    break false;
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            if ready {
                self.child = Some(child);
                return;
            }
            let _ = child.kill();
            let _ = child.wait();
            assert!(Instant::now() < deadline, "postgres never became ready");
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// A fresh database; its URL.
    pub async fn database(&self) -> String {
        let name = format!(
            "t{}_{}",
            std::process::id(),
            DATABASES.fetch_add(1, Ordering::SeqCst)
        );
        let admin = format!("postgres://postgres@127.0.0.1:{}/postgres", self.port);
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
            .await
            .unwrap();
        sqlx::Executor::execute(
            &mut conn,
            sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")),
        )
        .await
        .unwrap();
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        print_log_if_panicking("postgres", &self.log());
        self.kill();
    }
}

/// One PostgreSQL for the tests that only need a database of their own.
pub fn shared_postgres() -> &'static PostgresServer {
    static PG: std::sync::OnceLock<PostgresServer> = std::sync::OnceLock::new();
    PG.get_or_init(PostgresServer::start)
}

/// One forwarded connection: both sockets, so that a cut can shut them down.
struct Pipe {
    client: std::net::TcpStream,
    upstream: std::net::TcpStream,
}

impl Pipe {
    fn close(&self) {
        let _ = self.client.shutdown(std::net::Shutdown::Both);
        let _ = self.upstream.shutdown(std::net::Shutdown::Both);
    }
}

#[derive(Default)]
struct RelayState {
    /// While set, live connections have been closed and new ones are closed on accept.
    cut: bool,
    /// Set by `Drop`: the accept loop ends.
    stopping: bool,
    next_id: u64,
    pipes: std::collections::HashMap<u64, Pipe>,
    threads: Vec<std::thread::JoinHandle<()>>,
    /// Connections accepted and forwarded, and those closed on accept while cut.
    forwarded: u64,
    refused: u64,
}

type Shared = std::sync::Arc<std::sync::Mutex<RelayState>>;

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, RelayState> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// A TCP relay on a free loopback port that forwards every connection to `target`, and
/// that a test can [`cut`](TcpRelay::cut) — every live connection closed, new ones closed
/// as soon as they are accepted — and [`restore`](TcpRelay::restore). Put it between a
/// server and its Redis to simulate a network partition without killing Redis.
///
/// Plain threads (one accept loop, two per live connection), all joined on drop.
pub struct TcpRelay {
    port: u16,
    state: Shared,
    accept: Option<std::thread::JoinHandle<()>>,
}

impl TcpRelay {
    /// Listen on a free loopback port, forwarding to `127.0.0.1:target_port`.
    pub fn start(target_port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state: Shared = Shared::default();
        let st = state.clone();
        let accept = std::thread::Builder::new()
            .name(format!("relay-{port}"))
            .spawn(move || accept_loop(listener, target_port, st))
            .unwrap();
        Self {
            port,
            state,
            accept: Some(accept),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<relay port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Close every live forwarded connection, and every new one as soon as it is accepted,
    /// until [`restore`](Self::restore).
    pub fn cut(&self) {
        let pipes: Vec<Pipe> = {
            let mut s = lock(&self.state);
            s.cut = true;
            s.pipes.drain().map(|(_, p)| p).collect()
        };
        for p in &pipes {
            p.close();
        }
    }

    /// Forward new connections again.
    pub fn restore(&self) {
        lock(&self.state).cut = false;
    }

    pub fn is_cut(&self) -> bool {
        lock(&self.state).cut
    }

    /// Connections forwarded so far, and connections closed on accept while cut.
    pub fn counts(&self) -> (u64, u64) {
        let s = lock(&self.state);
        (s.forwarded, s.refused)
    }
}

fn accept_loop(listener: TcpListener, target_port: u16, state: Shared) {
    for conn in listener.incoming() {
        if lock(&state).stopping {
            return;
        }
        let Ok(client) = conn else { continue };
        {
            let mut s = lock(&state);
            if s.cut {
                s.refused += 1;
                drop(s);
                let _ = client.shutdown(std::net::Shutdown::Both);
                continue;
            }
        }
        let Ok(upstream) = std::net::TcpStream::connect(("127.0.0.1", target_port)) else {
            let _ = client.shutdown(std::net::Shutdown::Both);
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = upstream.set_nodelay(true);
        let clones = (|| {
            Some((
                client.try_clone().ok()?,
                upstream.try_clone().ok()?,
                upstream.try_clone().ok()?,
                client.try_clone().ok()?,
            ))
        })();
        let Some((c_read, u_write, u_read, c_write)) = clones else {
            continue;
        };
        // Register under the lock that `cut` takes: a connection is either closed by the
        // cut or accepted after the restore, never forwarded in between.
        let mut s = lock(&state);
        if s.cut || s.stopping {
            s.refused += 1;
            drop(s);
            let _ = client.shutdown(std::net::Shutdown::Both);
            let _ = upstream.shutdown(std::net::Shutdown::Both);
            continue;
        }
        let id = s.next_id;
        s.next_id += 1;
        s.forwarded += 1;
        s.pipes.insert(id, Pipe { client, upstream });
        s.threads.retain(|t| !t.is_finished());
        for (from, to) in [(c_read, u_write), (u_read, c_write)] {
            let st = state.clone();
            let t = std::thread::Builder::new()
                .name("relay-pipe".into())
                .spawn(move || copy_until_closed(from, to, id, st));
            if let Ok(t) = t {
                s.threads.push(t);
            }
        }
    }
}

fn copy_until_closed(
    mut from: std::net::TcpStream,
    mut to: std::net::TcpStream,
    id: u64,
    state: Shared,
) {
    use std::io::{Read, Write};
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    // One direction ended: end the whole connection (Redis connections are not
    // half-closed in normal operation).
    let _ = from.shutdown(std::net::Shutdown::Both);
    let _ = to.shutdown(std::net::Shutdown::Both);
    lock(&state).pipes.remove(&id);
}

impl Drop for TcpRelay {
    fn drop(&mut self) {
        let (pipes, threads) = {
            let mut s = lock(&self.state);
            s.stopping = true;
            s.cut = true;
            let pipes: Vec<Pipe> = s.pipes.drain().map(|(_, p)| p).collect();
            (pipes, std::mem::take(&mut s.threads))
        };
        for p in &pipes {
            p.close();
        }
        // Wake the accept loop so that it sees `stopping`.
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        for t in threads {
            let _ = t.join();
        }
        // Threads spawned between the take above and the accept loop's exit.
        let rest = std::mem::take(&mut lock(&self.state).threads);
        for t in rest {
            let _ = t.join();
        }
    }
}
