//! The `tessera` binary itself: the README walkthrough, user creation from stdin, and
//! configuration errors at start-up.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_tessera");

fn tessera(dir: &std::path::Path) -> Command {
    let mut c = Command::new(BIN);
    c.env("TESSERA_DATA_DIR", dir.join("data"))
        .env_remove("RUST_LOG");
    c
}

fn add_user(dir: &std::path::Path, name: &str, role: &str, password: &str) -> std::process::Output {
    let mut child = tessera(dir)
        .args(["user", "add", name, "--role", role])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Kills the server when the test ends, pass or fail.
struct Server(std::process::Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(dir: &std::path::Path) -> (Server, String) {
    serve_with(tessera(dir))
}

fn serve_with(mut cmd: Command) -> (Server, String) {
    let mut child = cmd
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("tessera listening on ")
        .unwrap()
        .to_owned();
    (Server(child), base)
}

#[tokio::test]
async fn the_readme_walkthrough_works_against_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let out = add_user(dir.path(), "alice", "admin", "wonderland");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("created user alice"));
    let (_server, base) = serve(dir.path());
    let http = reqwest::Client::new();

    // Session mode.
    let res = http
        .post(format!("{base}/v1/login"))
        .json(&serde_json::json!({"username":"alice","password":"wonderland"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let cookie = res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let me: Value = http
        .get(format!("{base}/v1/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["auth"], "session");
    assert_eq!(me["username"], "alice");
    let res = http
        .post(format!("{base}/v1/logout"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(
        http.get(format!("{base}/v1/me"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

    // JWT mode.
    let tok: Value = http
        .post(format!("{base}/v1/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "wonderland"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let at = tok["access_token"].as_str().unwrap();
    let me: Value = http
        .get(format!("{base}/v1/me"))
        .bearer_auth(at)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["auth"], "jwt");
    assert_eq!(me["username"], "alice");
}

#[test]
fn user_add_refuses_a_duplicate_and_a_weak_password() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        add_user(dir.path(), "bob", "user", "long enough")
            .status
            .success()
    );
    let dup = add_user(dir.path(), "bob", "user", "long enough");
    assert!(!dup.status.success());
    assert!(String::from_utf8_lossy(&dup.stderr).contains("username taken"));
    let weak = add_user(dir.path(), "carol", "user", "short");
    assert!(!weak.status.success());
}

#[test]
fn invalid_configuration_fails_at_start_with_a_fix() {
    let dir = tempfile::tempdir().unwrap();
    let out = tessera(dir.path())
        .args(["serve"])
        .env("TESSERA_ACCESS_TOKEN_TTL", "2h")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("access_token_ttl") && err.contains("1h"),
        "{err}"
    );

    let out = tessera(dir.path())
        .args(["serve"])
        .env("TESSERA_LISTN", "x")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("TESSERA_LISTN"));

    let cfg = dir.path().join("tessera.toml");
    std::fs::write(&cfg, "listen = 8080\n").unwrap();
    let out = tessera(dir.path())
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("listen"));
}

#[tokio::test]
async fn sigkill_and_restart_lose_no_session_family_or_key() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        add_user(dir.path(), "alice", "user", "wonderland")
            .status
            .success()
    );
    let (mut server, base) = serve(dir.path());
    let http = reqwest::Client::new();
    let res = http
        .post(format!("{base}/v1/login"))
        .json(&serde_json::json!({"username":"alice","password":"wonderland"}))
        .send()
        .await
        .unwrap();
    let cookie = res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let pair: Value = http
        .post(format!("{base}/v1/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "wonderland"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwks = http
        .get(format!("{base}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    server.0.kill().unwrap(); // SIGKILL: no shutdown, no checkpoint
    server.0.wait().unwrap();
    let (_server, base) = serve(dir.path());
    assert_eq!(
        http.get(format!("{base}/v1/me"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        http.get(format!("{base}/v1/me"))
            .bearer_auth(pair["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let res = http
        .post(format!("{base}/v1/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", pair["refresh_token"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "the refresh family survived");
    assert_eq!(
        http.get(format!("{base}/.well-known/jwks.json"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        jwks
    );
    assert_eq!(
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        http.get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn no_password_token_or_cookie_reaches_the_log_even_at_debug() {
    let dir = tempfile::tempdir().unwrap();
    let password = "s3cret-p4ssw0rd-in-logs?";
    assert!(
        add_user(dir.path(), "alice", "user", password)
            .status
            .success()
    );
    let log = dir.path().join("server.log");
    let mut child = tessera(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("tessera listening on ")
        .unwrap()
        .to_owned();
    let server = Server(child);
    let http = reqwest::Client::new();
    let res = http
        .post(format!("{base}/v1/login"))
        .json(&serde_json::json!({"username":"alice","password":password}))
        .send()
        .await
        .unwrap();
    let cookie = res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    http.get(format!("{base}/v1/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let pair: Value = http
        .post(format!("{base}/v1/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", password),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = pair["access_token"].as_str().unwrap();
    let refresh = pair["refresh_token"].as_str().unwrap();
    http.get(format!("{base}/v1/me"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    http.post(format!("{base}/v1/token"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])
        .send()
        .await
        .unwrap();
    http.post(format!("{base}/v1/login"))
        .json(&serde_json::json!({"username":"alice","password":"wrong-guess-in-logs"}))
        .send()
        .await
        .unwrap();
    http.post(format!("{base}/v1/logout"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    drop(server);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("session opened"),
        "debug logging was on: {}",
        &text[..text.len().min(500)]
    );
    let session_token = cookie.split_once('=').unwrap().1;
    for secret in [
        password,
        "wrong-guess-in-logs",
        session_token,
        access,
        refresh,
    ] {
        assert!(!text.contains(secret), "a secret reached the log");
    }
    // Nor the signature part of a token, or the private key.
    assert!(!text.contains(access.rsplit('.').next().unwrap()));
    assert!(!text.contains("PRIVATE KEY"));
}

#[tokio::test]
async fn a_running_server_picks_up_a_rotation_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = tessera(dir.path());
    cmd.env("TESSERA_KEY_RELOAD_INTERVAL", "100ms");
    let (_server, base) = serve_with(cmd);
    let kids = || async {
        let v: Value = reqwest::get(format!("{base}/.well-known/jwks.json"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["keys"].as_array().unwrap().len()
    };
    assert_eq!(kids().await, 1);
    let out = tessera(dir.path())
        .args(["keys", "rotate", "--algorithm", "ES256"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while kids().await < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "rotation not picked up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let list = tessera(dir.path()).args(["keys", "list"]).output().unwrap();
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        text.contains("active") && text.contains("next") && text.contains("ES256"),
        "{text}"
    );
}
