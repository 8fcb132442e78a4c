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
