//! Keys, users and sessions survive a restart; data files are private.

use std::os::unix::fs::PermissionsExt;

use crate::helpers::*;

#[tokio::test]
async fn a_restart_invalidates_no_session_and_no_token() {
    let first = TestApp::spawn().await;
    first.add_user("alice", "user").await;
    let cookie = first.session_cookie("alice").await;
    let token = first.access_token("alice").await;
    let jwks_before = first
        .client
        .get(first.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (dir, clock) = (first.dir.clone(), first.clock.clone());
    first.stop().await;

    let second = TestApp::spawn_in(dir, clock, |_| {}).await;
    assert_eq!(second.me_with_cookie(&cookie).await.status(), 200);
    assert_eq!(second.me_with_bearer(&token).await.status(), 200);
    let jwks_after = second
        .client
        .get(second.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(jwks_before, jwks_after, "same signing key after restart");
}

#[tokio::test]
async fn data_dir_and_files_are_private() {
    let app = TestApp::spawn().await;
    app.add_user("alice", "user").await;
    app.session_cookie("alice").await;
    let dir = app.dir.path().join("data");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
        files += 1;
    }
    assert!(files >= 2, "database and its WAL");
}

#[tokio::test]
async fn a_second_single_writer_instance_on_the_same_data_dir_is_refused() {
    let first = TestApp::spawn().await;
    let settings = crate::helpers::test_settings(&first.dir);
    let err = tessera_server::startup::Application::build(
        settings,
        std::sync::Arc::new(tessera_core::clock::SystemClock),
    )
    .await
    .err()
    .expect("a second instance must not start");
    assert!(format!("{err:#}").contains("redis_url"), "{err:#}");
    let (dir, clock) = (first.dir.clone(), first.clock.clone());
    first.stop().await;
    // Once the first is gone, the directory is free again.
    let second = TestApp::spawn_in(dir, clock, |_| {}).await;
    assert_eq!(
        second
            .client
            .get(second.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn an_existing_data_dir_open_to_others_is_made_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let app = TestApp::spawn_in(
        dir.clone(),
        tessera_core::clock::ManualClock::new(tessera_core::clock::Clock::now(
            &tessera_core::clock::SystemClock,
        )),
        |_| {},
    )
    .await;
    let mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "data_dir left at {mode:o}");
    app.stop().await;
}
