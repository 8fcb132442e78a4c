//! `TestApp`: a real tessera server on an ephemeral loopback port, with its own data
//! directory and a clock the test controls.

use std::sync::Arc;

use reqwest::header::{HeaderMap, SET_COOKIE};
use reqwest::{Client, Response};
use serde_json::Value;
use tempfile::TempDir;
use tessera_core::clock::{Clock, ManualClock, SystemClock};
use tessera_core::store::User;
use tessera_server::config::Settings;
use tessera_server::http::AppState;
use tessera_server::startup::Application;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const ISSUER: &str = "http://tessera.test";
pub const PASSWORD: &str = "correct horse battery";

pub struct TestApp {
    pub base: String,
    pub clock: ManualClock,
    pub dir: Arc<TempDir>,
    pub state: AppState,
    pub client: Client,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<std::io::Result<()>>>,
}

pub fn test_settings(dir: &TempDir) -> Settings {
    Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().join("data"),
        public_url: ISSUER.into(),
        // Throttling has its own tests; elsewhere tests log in freely.
        login_throttle_account: 10_000,
        login_throttle_ip: 10_000,
        ..Default::default()
    }
    .validated()
    .unwrap()
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(f: impl FnOnce(&mut Settings)) -> Self {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        Self::spawn_in(dir, ManualClock::new(SystemClock.now()), f).await
    }

    /// A server whose public URL (issuer) is its real address, for clients that discover
    /// it and check the issuer.
    pub async fn spawn_public(f: impl FnOnce(&mut Settings)) -> Self {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let clock = ManualClock::new(SystemClock.now());
        Self::start(listener, dir, clock, |s| {
            s.public_url = format!("http://{addr}");
            f(s)
        })
        .await
    }

    /// A server on an existing data directory (to test restarts).
    pub async fn spawn_in(
        dir: Arc<TempDir>,
        clock: ManualClock,
        f: impl FnOnce(&mut Settings),
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start(listener, dir, clock, f).await
    }

    async fn start(
        listener: tokio::net::TcpListener,
        dir: Arc<TempDir>,
        clock: ManualClock,
        f: impl FnOnce(&mut Settings),
    ) -> Self {
        let mut settings = test_settings(&dir);
        f(&mut settings);
        let settings = settings.validated().unwrap();
        let app = Application::build_on(listener, settings, Arc::new(clock.clone()))
            .await
            .unwrap();
        let base = format!("http://{}", app.local_addr().unwrap());
        let state = app.state().clone();
        let (tx, rx) = oneshot::channel();
        let handle = tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        let client = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self {
            base,
            clock,
            dir,
            state,
            client,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    /// Stop serving and wait for in-flight requests to finish.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.unwrap().unwrap();
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn add_user(&self, name: &str, role: &str) -> User {
        self.state
            .core
            .create_user(name, PASSWORD.into(), role)
            .await
            .unwrap()
    }

    pub async fn post_json(&self, path: &str, body: Value) -> Response {
        self.client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn login(&self, name: &str, password: &str) -> Response {
        self.post_json(
            "/v1/login",
            serde_json::json!({"username": name, "password": password}),
        )
        .await
    }

    /// Log in and return the `name=value` of the session cookie.
    pub async fn session_cookie(&self, name: &str) -> String {
        let res = self.login(name, PASSWORD).await;
        assert_eq!(res.status(), 200);
        cookie_pair(res.headers()).unwrap()
    }

    pub async fn password_grant(&self, name: &str, password: &str) -> Response {
        self.client
            .post(self.url("/v1/token"))
            .form(&[
                ("grant_type", "password"),
                ("username", name),
                ("password", password),
            ])
            .send()
            .await
            .unwrap()
    }

    pub async fn access_token(&self, name: &str) -> String {
        let res = self.password_grant(name, PASSWORD).await;
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn me_with_cookie(&self, cookie: &str) -> Response {
        self.client
            .get(self.url("/v1/me"))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap()
    }

    pub async fn me_with_bearer(&self, token: &str) -> Response {
        self.client
            .get(self.url("/v1/me"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }
}

/// The `name=value` part of the first `Set-Cookie`.
pub fn cookie_pair(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(SET_COOKIE)?.to_str().ok()?;
    Some(v.split(';').next()?.to_owned())
}

/// The full first `Set-Cookie` value.
pub fn set_cookie(headers: &HeaderMap) -> Option<String> {
    Some(headers.get(SET_COOKIE)?.to_str().ok()?.to_owned())
}

/// Assert an error response: status, JSON `error` code.
pub async fn assert_error(res: Response, status: u16, code: &str) -> HeaderMap {
    assert_eq!(res.status(), status, "status for expected {code}");
    let headers = res.headers().clone();
    assert!(
        headers
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "error bodies are JSON"
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], code, "{body}");
    headers
}

/// A registered confidential client.
pub struct TestClient {
    pub id: String,
    pub secret: String,
}

impl TestApp {
    /// The full token response of a password grant.
    pub async fn token_pair(&self, name: &str) -> Value {
        let res = self.password_grant(name, PASSWORD).await;
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }

    pub async fn refresh(&self, refresh_token: &str) -> Response {
        self.client
            .post(self.url("/v1/token"))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ])
            .send()
            .await
            .unwrap()
    }

    pub async fn add_client(&self, name: &str) -> TestClient {
        let new = self.state.core.create_client(name).await.unwrap();
        TestClient {
            id: new.client.id,
            secret: new.secret,
        }
    }

    /// POST a form to an OAuth endpoint with the client's Basic credentials.
    pub async fn client_post(
        &self,
        client: &TestClient,
        path: &str,
        form: &[(&str, &str)],
    ) -> Response {
        self.client
            .post(self.url(path))
            .basic_auth(&client.id, Some(&client.secret))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    pub async fn introspect(&self, client: &TestClient, token: &str) -> Value {
        let res = self
            .client_post(client, "/v1/introspect", &[("token", token)])
            .await;
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }

    pub async fn audit_kinds(&self, user_id: &str) -> Vec<String> {
        let filter = tessera_core::store::AuditFilter {
            user_id: Some(user_id.into()),
            limit: 100,
            ..Default::default()
        };
        self.state
            .core
            .stores
            .audit
            .events(&filter)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind.as_str().to_owned())
            .collect()
    }
}

pub fn s(v: &Value) -> &str {
    v.as_str().unwrap()
}
