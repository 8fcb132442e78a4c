//! `tessera bench` runs end to end, on the embedded default and with Redis, and writes its
//! report. (What it measures is not asserted here: performance lives in benchmarks.)

use std::process::Command;

use tessera_testkit::RedisServer;

fn bench(args: &[&str]) -> (String, std::path::PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    let res = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("bench")
        .args(["--seconds", "1", "--connections", "4", "--out"])
        .arg(&out)
        .args(args)
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    (String::from_utf8_lossy(&res.stdout).into_owned(), out, dir)
}

#[test]
fn bench_runs_on_the_embedded_default_and_writes_a_report() {
    let (stdout, out, _dir) = bench(&[
        "--only",
        "jwt",
        "--only",
        "session-sqlite",
        "--only",
        "login/",
    ]);
    for row in [
        "me/jwt-eddsa",
        "me/jwt-es256",
        "me/jwt-rs256",
        "me/jwt-hs256",
        "me/session-sqlite",
        "login/session",
        "login/password-grant",
        "login/refresh-grant",
    ] {
        assert!(
            stdout.contains(&format!("| {row} |")),
            "{row} missing:\n{stdout}"
        );
    }
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("| me/jwt-eddsa |") && report.contains("throughput.svg"));
    let svg = std::fs::read_to_string(out.join("throughput.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("me/session-sqlite"));
    // Each row measured something and no request failed.
    for line in stdout
        .lines()
        .filter(|l| l.starts_with("| me/") || l.starts_with("| login/"))
    {
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        assert!(cols[2].parse::<f64>().unwrap() > 0.0, "{line}");
        assert_eq!(cols[7], "0", "errors in {line}");
    }
}

#[test]
fn bench_with_redis_measures_sessions_and_revocation_delay() {
    let redis = RedisServer::start();
    let (stdout, _, _dir) = bench(&[
        "--redis-url",
        &redis.url(),
        "--only",
        "session-redis",
        "--only",
        "revocation",
    ]);
    assert!(stdout.contains("| me/session-redis |"), "{stdout}");
    assert!(
        stdout.contains("Revocation delay between two instances"),
        "{stdout}"
    );
}

#[test]
fn bench_refuses_non_loopback_targets() {
    let res = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["bench", "--url", "http://192.0.2.1:8080"])
        .output()
        .unwrap();
    assert!(!res.status.success());
    assert!(String::from_utf8_lossy(&res.stderr).contains("loopback"));
}
