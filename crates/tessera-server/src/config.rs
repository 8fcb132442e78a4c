//! Settings: one typed struct, loaded once, validated at start-up, passed by value.
//!
//! Sources, later ones winning: built-in defaults, an optional TOML file (`--config`),
//! `TESSERA_*` environment variables (`TESSERA_DATA_DIR` sets `data_dir`), then
//! command-line flags. Unknown keys are errors, so a typo never silently leaves a default
//! in force. Every option and its default is listed in README.md.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Everything a tessera server needs to know at start-up.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Address to listen on. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Directory for the SQLite database (users, sessions, signing keys). Default
    /// `./tessera-data`. Created with mode 0700; the database file with 0600.
    pub data_dir: PathBuf,
    /// The server's public URL: the `iss` of every token and the base of the metadata
    /// endpoints. Default `http://127.0.0.1:8080`. When it is `https`, session cookies get
    /// `Secure` and the `__Host-` prefix. A trailing `/` is dropped.
    pub public_url: String,
    /// The `aud` of issued access tokens, and the audience the server's own verifier
    /// expects. Default `tessera`.
    pub audience: String,
    /// Whether `POST /v1/signup` creates accounts. Default `true`.
    pub signup_enabled: bool,
    /// Lifetime of an access token. Default `5m`. At most `1h`.
    #[serde(with = "humantime_serde")]
    pub access_token_ttl: Duration,
    /// Clock skew tolerated when verifying `exp`, `nbf` and `iat`. Default `30s`; at most `5m`.
    #[serde(with = "humantime_serde")]
    pub jwt_leeway: Duration,
    /// A session unused for this long ends. Default `30m`.
    #[serde(with = "humantime_serde")]
    pub session_idle_timeout: Duration,
    /// A session ends this long after login, however active. Default `12h`.
    #[serde(with = "humantime_serde")]
    pub session_absolute_timeout: Duration,
    /// Sliding renewal writes a session's last-seen time at most this often. Default `60s`.
    #[serde(with = "humantime_serde")]
    pub session_touch_interval: Duration,
    /// Name of the session cookie. Default: `__Host-tessera_session` when `public_url` is
    /// https, `tessera_session` otherwise.
    pub session_cookie_name: Option<String>,
    /// How often expired sessions are deleted in the background. Default `60s`.
    #[serde(with = "humantime_serde")]
    pub session_purge_interval: Duration,
    /// Absolute lifetime of a session opened with "remember me". Default `30d`. The
    /// cookie is then persistent (`Max-Age`); otherwise it ends with the browser session.
    #[serde(with = "humantime_serde")]
    pub session_remember_lifetime: Duration,
    /// Login attempts allowed per account per `login_throttle_window`; further attempts
    /// get 429 until the window ends. A successful login resets the account's count.
    /// Counted for unknown usernames exactly as for real ones. Default `5`.
    pub login_throttle_account: u32,
    /// Login attempts allowed per client IP per window. Default `50`.
    pub login_throttle_ip: u32,
    /// The throttling window. Default `15m`.
    #[serde(with = "humantime_serde")]
    pub login_throttle_window: Duration,
    /// Proxies (IPs or CIDR ranges) whose `X-Forwarded-For` is believed. Default: none,
    /// so the client IP is the TCP peer.
    ///
    /// # Security
    /// Listing a range that untrusted clients can connect from lets them choose the IP
    /// that throttling and the audit trail see.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Absolute lifetime of a refresh family (one JWT-mode login): no refresh extends past
    /// it. Default `30d`.
    #[serde(with = "humantime_serde")]
    pub refresh_absolute_lifetime: Duration,
    /// A refresh family unused for this long ends. Default `7d`.
    #[serde(with = "humantime_serde")]
    pub refresh_idle_lifetime: Duration,
    /// After a refresh token is exchanged, presenting it again within this period returns
    /// the same new pair (a client whose response was lost is not logged out); after it,
    /// the reuse revokes the whole family. Default `10s`; at most `60s`.
    ///
    /// # Security
    /// Within the period, whoever holds the old token can obtain the new pair once. Keep it short.
    #[serde(with = "humantime_serde")]
    pub refresh_grace_period: Duration,
    /// PostgreSQL URL (`postgres://user:pass@host:port/db`) for every durable record
    /// instead of the SQLite file in `data_dir`. Default: unset (SQLite).
    pub database_url: Option<Secret>,
    /// Redis URL (`redis://host:port`): the channel that pushes revocations between
    /// instances, and the login-throttling counters. Default: unset.
    pub redis_url: Option<Secret>,
    /// Where session records live: `database` (the SQL store: SQLite or PostgreSQL; the
    /// default) or `redis` (needs `redis_url`; then Redis is the durable store for
    /// sessions — run it with `appendonly yes`).
    pub session_store: SessionBackend,
    /// How often the revocation feed is polled (catch-up behind the push channel, and the
    /// only path without one). Default `500ms`.
    #[serde(with = "humantime_serde")]
    pub revocation_poll_interval: Duration,
    /// With several instances: how long bearer tokens and cached sessions are still
    /// honoured when neither the push channel nor a feed poll has confirmed the revocation
    /// state. Default `30s`.
    #[serde(with = "humantime_serde")]
    pub revocation_staleness_bound: Duration,
    /// Past the staleness bound, keep accepting (fail open) instead of answering 503.
    /// Default `false`.
    ///
    /// # Security
    /// A token revoked on another instance may then be accepted here until the channel or
    /// the store is back.
    pub revocation_fail_open: bool,
    /// Algorithm of generated signing keys: `EdDSA` (default), `ES256` or `RS256`.
    pub signing_algorithm: tessera_core::keys::SigningAlgorithm,
    /// A shared secret (at least 32 bytes) to sign and verify with HS256 instead. Default: unset.
    ///
    /// # Security
    /// Every verifier then holds the signing secret and can mint tokens; nothing is
    /// published in the JWKS. Use only when all verifiers are as trusted as the server.
    pub hs256_secret: Option<Secret>,
    /// A rotated key is published this long before it signs. Default `5m`, the JWKS
    /// `max-age`: shorter risks verifiers with a cached JWKS refusing new tokens.
    #[serde(with = "humantime_serde")]
    pub key_prepublish_delay: Duration,
    /// How often a running server re-reads its keys (picking up `tessera keys rotate`).
    /// Default `5s`.
    #[serde(with = "humantime_serde")]
    pub key_reload_interval: Duration,
    /// How many Argon2id hashes may run at once; further logins wait their turn. Default:
    /// half the CPUs (at least 1), so that a login flood leaves cores for everything else.
    pub max_concurrent_hashes: Option<usize>,
    /// How long a login waits for a hashing slot before answering 503. Default `10s`.
    #[serde(with = "humantime_serde")]
    pub hash_queue_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./tessera-data"),
            public_url: "http://127.0.0.1:8080".into(),
            audience: "tessera".into(),
            signup_enabled: true,
            access_token_ttl: Duration::from_secs(300),
            jwt_leeway: Duration::from_secs(30),
            session_idle_timeout: Duration::from_secs(30 * 60),
            session_absolute_timeout: Duration::from_secs(12 * 3600),
            session_touch_interval: Duration::from_secs(60),
            session_cookie_name: None,
            session_purge_interval: Duration::from_secs(60),
            session_remember_lifetime: Duration::from_secs(30 * 86400),
            login_throttle_account: 5,
            login_throttle_ip: 50,
            login_throttle_window: Duration::from_secs(15 * 60),
            trusted_proxies: Vec::new(),
            refresh_absolute_lifetime: Duration::from_secs(30 * 86400),
            refresh_idle_lifetime: Duration::from_secs(7 * 86400),
            refresh_grace_period: Duration::from_secs(10),
            database_url: None,
            redis_url: None,
            session_store: SessionBackend::Database,
            revocation_poll_interval: Duration::from_millis(500),
            revocation_staleness_bound: Duration::from_secs(30),
            revocation_fail_open: false,
            signing_algorithm: tessera_core::keys::SigningAlgorithm::EdDSA,
            hs256_secret: None,
            key_prepublish_delay: Duration::from_secs(300),
            key_reload_interval: Duration::from_secs(5),
            max_concurrent_hashes: None,
            hash_queue_timeout: Duration::from_secs(10),
        }
    }
}

/// Where session records live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionBackend {
    /// The SQL store (SQLite or PostgreSQL).
    Database,
    /// Redis.
    Redis,
}

/// A secret setting: never printed by `Debug`.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A setting that cannot work, with what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file or environment could not be read or has unknown or ill-typed keys.
    #[error("{0}")]
    Load(#[from] config::ConfigError),
    /// A `TESSERA_*` environment variable that names no setting.
    #[error(
        "unknown environment variable `{name}`: tessera reads every TESSERA_* variable as a setting; unset or rename it (the settings are listed in README.md, Configuration)"
    )]
    UnknownVariable {
        /// The variable's name.
        name: String,
    },
    /// A value is out of range or inconsistent with another.
    #[error("invalid setting `{key}`: {message}")]
    Invalid {
        /// The setting's name as written in the TOML file.
        key: &'static str,
        /// What is wrong and how to fix it.
        message: String,
    },
}

/// Overrides given on the command line; `None` leaves the lower layers in force.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--listen`
    pub listen: Option<String>,
    /// `--data-dir`
    pub data_dir: Option<PathBuf>,
    /// `--public-url`
    pub public_url: Option<String>,
}

/// Every setting's name, as written in the TOML file (and, upper-cased after `TESSERA_`, in
/// the environment). A test checks it against the struct.
const SETTING_NAMES: &[&str] = &[
    "listen",
    "data_dir",
    "public_url",
    "audience",
    "signup_enabled",
    "access_token_ttl",
    "jwt_leeway",
    "session_idle_timeout",
    "session_absolute_timeout",
    "session_touch_interval",
    "session_cookie_name",
    "session_purge_interval",
    "session_remember_lifetime",
    "login_throttle_account",
    "login_throttle_ip",
    "login_throttle_window",
    "trusted_proxies",
    "refresh_absolute_lifetime",
    "refresh_idle_lifetime",
    "refresh_grace_period",
    "database_url",
    "redis_url",
    "session_store",
    "revocation_poll_interval",
    "revocation_staleness_bound",
    "revocation_fail_open",
    "signing_algorithm",
    "hs256_secret",
    "key_prepublish_delay",
    "key_reload_interval",
    "max_concurrent_hashes",
    "hash_queue_timeout",
];

impl Settings {
    /// Load from defaults, `file`, the process environment and `overrides`, then validate.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        let vars: std::collections::HashMap<String, String> = std::env::vars().collect();
        Self::load_from(file, vars, overrides)
    }

    /// As [`Settings::load`], with the environment given explicitly (tests use this, so
    /// that no test depends on or changes the process environment).
    pub fn load_from(
        file: Option<&Path>,
        env: std::collections::HashMap<String, String>,
        overrides: &Overrides,
    ) -> Result<Self, ConfigError> {
        // Named once, with the fix, before the loader turns it into a list of every key.
        let mut unknown: Vec<&String> = env
            .keys()
            .filter(|k| {
                k.strip_prefix("TESSERA_").is_some_and(|rest| {
                    !SETTING_NAMES.contains(&rest.to_ascii_lowercase().as_str())
                })
            })
            .collect();
        unknown.sort();
        if let Some(name) = unknown.first() {
            return Err(ConfigError::UnknownVariable {
                name: (*name).clone(),
            });
        }
        let mut builder = config::Config::builder();
        if let Some(file) = file {
            builder = builder.add_source(
                config::File::from(file)
                    .format(config::FileFormat::Toml)
                    .required(true),
            );
        }
        builder = builder.add_source(
            config::Environment::with_prefix("TESSERA")
                .prefix_separator("_")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("trusted_proxies")
                .source(Some(env.into_iter().collect())),
        );
        if let Some(v) = &overrides.listen {
            builder = builder.set_override("listen", v.as_str())?;
        }
        if let Some(v) = &overrides.data_dir {
            builder = builder.set_override("data_dir", v.to_string_lossy().as_ref())?;
        }
        if let Some(v) = &overrides.public_url {
            builder = builder.set_override("public_url", v.as_str())?;
        }
        let settings: Settings = builder.build()?.try_deserialize()?;
        settings.validated()
    }

    /// Check ranges and consistency; normalise `public_url`.
    pub fn validated(mut self) -> Result<Self, ConfigError> {
        let invalid = |key, message: &str| ConfigError::Invalid {
            key,
            message: message.into(),
        };
        let trimmed = self.public_url.trim_end_matches('/').to_owned();
        let url = url::Url::parse(&trimmed).map_err(|e| {
            invalid(
                "public_url",
                &format!("not a URL ({e}); example: https://auth.example.com"),
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(invalid(
                "public_url",
                "must be an http:// or https:// URL with a host",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid(
                "public_url",
                "must not have a query or fragment (RFC 8414 §2)",
            ));
        }
        // The URL as parsed: scheme and host lower-cased, so that `HTTPS://…` still gets
        // `Secure` cookies and the `__Host-` prefix, and the issuer has one spelling.
        self.public_url = url.as_str().trim_end_matches('/').to_owned();
        if self.audience.is_empty() {
            return Err(invalid("audience", "must not be empty"));
        }
        let secs = |d: Duration| d.as_secs();
        // No lifetime may reach past ten years: instants are i64 seconds, and nothing in
        // authentication should live that long anyway.
        const TEN_YEARS: u64 = 10 * 366 * 86_400;
        for (key, d) in [
            ("session_idle_timeout", self.session_idle_timeout),
            ("session_absolute_timeout", self.session_absolute_timeout),
            ("session_remember_lifetime", self.session_remember_lifetime),
            ("refresh_absolute_lifetime", self.refresh_absolute_lifetime),
            ("refresh_idle_lifetime", self.refresh_idle_lifetime),
            ("login_throttle_window", self.login_throttle_window),
            ("key_prepublish_delay", self.key_prepublish_delay),
            (
                "revocation_staleness_bound",
                self.revocation_staleness_bound,
            ),
        ] {
            if secs(d) > TEN_YEARS {
                return Err(invalid(key, "must be at most ten years"));
            }
        }
        if !(1..=3600).contains(&secs(self.access_token_ttl)) {
            return Err(invalid(
                "access_token_ttl",
                "must be between 1s and 1h; short-lived access tokens are the point",
            ));
        }
        if secs(self.jwt_leeway) > 300 {
            return Err(invalid("jwt_leeway", "must be at most 5m"));
        }
        if secs(self.session_idle_timeout) == 0 || secs(self.session_absolute_timeout) == 0 {
            return Err(invalid(
                "session_idle_timeout",
                "session timeouts must be at least 1s",
            ));
        }
        if self.session_idle_timeout > self.session_absolute_timeout {
            return Err(invalid(
                "session_idle_timeout",
                "must not exceed session_absolute_timeout",
            ));
        }
        if self.session_touch_interval >= self.session_idle_timeout {
            return Err(invalid(
                "session_touch_interval",
                "must be shorter than session_idle_timeout",
            ));
        }
        if let Some(name) = &self.session_cookie_name {
            let ok = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
            if !ok {
                return Err(invalid(
                    "session_cookie_name",
                    "use letters, digits, '_', '-' or '.'",
                ));
            }
            if !self.is_https() && name.starts_with("__Host-") {
                return Err(invalid(
                    "session_cookie_name",
                    "the __Host- prefix needs an https public_url",
                ));
            }
        }
        if self.session_remember_lifetime < self.session_absolute_timeout {
            return Err(invalid(
                "session_remember_lifetime",
                "must be at least session_absolute_timeout",
            ));
        }
        if self.login_throttle_account == 0
            || self.login_throttle_ip == 0
            || self.login_throttle_window.is_zero()
        {
            return Err(invalid(
                "login_throttle_account",
                "throttle limits and window must be positive",
            ));
        }
        if self.refresh_idle_lifetime.is_zero()
            || self.refresh_idle_lifetime > self.refresh_absolute_lifetime
        {
            return Err(invalid(
                "refresh_idle_lifetime",
                "must be at least 1s and at most refresh_absolute_lifetime",
            ));
        }
        if secs(self.refresh_grace_period) > 60 {
            return Err(invalid("refresh_grace_period", "must be at most 60s"));
        }
        if self.hs256_secret.as_ref().is_some_and(|s| s.0.len() < 32) {
            return Err(invalid(
                "hs256_secret",
                "must be at least 32 bytes (generate one: openssl rand -base64 48)",
            ));
        }
        if self.session_store == SessionBackend::Redis && self.redis_url.is_none() {
            return Err(invalid("session_store", "\"redis\" needs redis_url"));
        }
        if self.revocation_poll_interval.is_zero() {
            return Err(invalid("revocation_poll_interval", "must be at least 1ms"));
        }
        if self
            .database_url
            .as_ref()
            .is_some_and(|u| !u.0.starts_with("postgres://") && !u.0.starts_with("postgresql://"))
        {
            return Err(invalid("database_url", "must be a postgres:// URL"));
        }
        if self
            .redis_url
            .as_ref()
            .is_some_and(|u| !u.0.starts_with("redis://"))
        {
            return Err(invalid("redis_url", "must be a redis:// URL"));
        }
        if self.session_purge_interval.is_zero() {
            return Err(invalid("session_purge_interval", "must be at least 1ms"));
        }
        if self.key_reload_interval.is_zero() {
            return Err(invalid("key_reload_interval", "must be at least 1ms"));
        }
        if self.max_concurrent_hashes == Some(0) {
            return Err(invalid("max_concurrent_hashes", "must be at least 1"));
        }
        Ok(self)
    }

    /// Whether the public URL is https (cookies then get `Secure` and `__Host-`).
    pub fn is_https(&self) -> bool {
        self.public_url.starts_with("https://")
    }

    /// The session cookie's name in force.
    pub fn cookie_name(&self) -> String {
        match &self.session_cookie_name {
            Some(n) => n.clone(),
            None if self.is_https() => "__Host-tessera_session".into(),
            None => "tessera_session".into(),
        }
    }

    /// Whether this instance is its store's only writer: SQLite without Redis. Then local
    /// invalidation is complete and no feed polling is needed.
    pub fn single_writer(&self) -> bool {
        self.database_url.is_none() && self.redis_url.is_none()
    }

    /// The hashing bound in force.
    pub fn hash_slots(&self) -> usize {
        self.max_concurrent_hashes.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| (n.get() / 2).max(1))
                .unwrap_or(1)
        })
    }

    /// The rules the core applies, from these settings.
    pub fn policy(&self) -> tessera_core::Policy {
        use tessera_core::policy::*;
        Policy {
            sessions: SessionPolicy {
                idle_timeout: self.session_idle_timeout,
                absolute_timeout: self.session_absolute_timeout,
                remember_lifetime: self.session_remember_lifetime,
                touch_interval: self.session_touch_interval,
            },
            tokens: TokenPolicy {
                issuer: self.public_url.clone(),
                audience: self.audience.clone(),
                access_token_ttl: self.access_token_ttl,
                refresh_absolute_lifetime: self.refresh_absolute_lifetime,
                refresh_idle_lifetime: self.refresh_idle_lifetime,
                refresh_grace_period: self.refresh_grace_period,
            },
            throttle: ThrottlePolicy {
                per_account: self.login_throttle_account,
                per_ip: self.login_throttle_ip,
                window: self.login_throttle_window,
            },
            accounts: AccountPolicy {
                signup_enabled: self.signup_enabled,
            },
        }
    }

    /// How the signing keys are configured.
    pub fn key_policy(&self) -> tessera_core::keys::KeyPolicy {
        let mut policy =
            tessera_verify::Policy::new(self.public_url.clone(), self.audience.clone());
        policy.leeway_secs = self.jwt_leeway.as_secs() as i64;
        tessera_core::keys::KeyPolicy {
            policy,
            algorithm: self.signing_algorithm,
            hs256_secret: self
                .hs256_secret
                .as_ref()
                .map(|s| std::sync::Arc::from(s.0.as_bytes())),
            token_lifetime: (self.access_token_ttl + self.jwt_leeway).as_secs() as i64,
        }
    }

    /// How revocation state is kept in step across instances.
    pub fn sync_policy(&self) -> tessera_core::revocation::SyncPolicy {
        tessera_core::revocation::SyncPolicy {
            single_writer: self.single_writer(),
            staleness_bound: self.revocation_staleness_bound,
            fail_open: self.revocation_fail_open,
            leeway: self.jwt_leeway.as_secs() as i64,
        }
    }

    /// How often the background loops run.
    pub fn schedule(&self) -> tessera_core::core::Schedule {
        tessera_core::core::Schedule {
            key_reload: self.key_reload_interval,
            revocation_poll: self.revocation_poll_interval,
            purge: self.session_purge_interval,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_valid() {
        let s = Settings::load_from(None, HashMap::new(), &Overrides::default()).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.access_token_ttl, Duration::from_secs(300));
        assert_eq!(s.cookie_name(), "tessera_session");
    }

    #[test]
    fn environment_overrides_file_and_flags_override_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\naccess_token_ttl = \"2m\"\n",
        )
        .unwrap();
        let e = env(&[
            ("TESSERA_ACCESS_TOKEN_TTL", "90s"),
            ("TESSERA_DATA_DIR", "/tmp/x"),
        ]);
        let o = Overrides {
            data_dir: Some("/tmp/y".into()),
            ..Default::default()
        };
        let s = Settings::load_from(Some(&file), e, &o).unwrap();
        assert_eq!(s.listen.port(), 9000);
        assert_eq!(s.access_token_ttl, Duration::from_secs(90));
        assert_eq!(s.data_dir, PathBuf::from("/tmp/y"));
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let e = env(&[("TESSERA_ACESS_TOKEN_TTL", "90s")]);
        let err = Settings::load_from(None, e, &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("TESSERA_ACESS_TOKEN_TTL"), "{err}");
    }

    #[test]
    fn an_unrelated_tessera_variable_is_named_once_with_the_fix() {
        let e = env(&[("TESSERA_BIN", "/usr/local/bin/tessera")]);
        let err = Settings::load_from(None, e, &Overrides::default()).unwrap_err();
        let text = err.to_string();
        assert_eq!(text.matches("TESSERA_BIN").count(), 1, "{text}");
        assert!(text.contains("unset or rename it"), "{text}");
        assert!(
            !text.contains("access_token_ttl"),
            "no list of every key: {text}"
        );
    }

    #[test]
    fn the_list_of_setting_names_is_the_struct() {
        // The loader's own error for an unknown file key lists every field it expects.
        let dir = tempfile_dir();
        let file = dir.join("t.toml");
        std::fs::write(&file, "zzz_not_a_setting = 1\n").unwrap();
        let err = Settings::load_from(Some(&file), HashMap::new(), &Overrides::default())
            .unwrap_err()
            .to_string();
        let mut expected: Vec<&str> = err
            .split("expected one of ")
            .nth(1)
            .unwrap_or_else(|| panic!("{err}"))
            .split(',')
            .map(|s| s.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '_'))
            .collect();
        expected.sort();
        let mut names = SETTING_NAMES.to_vec();
        names.sort();
        assert_eq!(names, expected);
        // And every name is accepted from the environment.
        for name in SETTING_NAMES {
            let e = env(&[(&format!("TESSERA_{}", name.to_ascii_uppercase()), "x")]);
            let r = Settings::load_from(None, e, &Overrides::default());
            assert!(
                !matches!(r, Err(ConfigError::UnknownVariable { .. })),
                "{name}"
            );
        }
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("tessera-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn invalid_values_say_what_to_fix() {
        for (k, v, key) in [
            ("TESSERA_ACCESS_TOKEN_TTL", "0s", "access_token_ttl"),
            ("TESSERA_PUBLIC_URL", "ftp://x", "public_url"),
            (
                "TESSERA_SESSION_IDLE_TIMEOUT",
                "48h",
                "session_idle_timeout",
            ),
        ] {
            let err = Settings::load_from(None, env(&[(k, v)]), &Overrides::default()).unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
        let err = Settings::load_from(
            None,
            env(&[("TESSERA_LISTEN", "nope")]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("listen"), "{err}");
    }

    #[test]
    fn lists_and_numbers_parse_from_the_environment() {
        let e = env(&[
            ("TESSERA_TRUSTED_PROXIES", "10.0.0.0/8,192.168.1.1/32"),
            ("TESSERA_LOGIN_THROTTLE_ACCOUNT", "7"),
            ("TESSERA_SIGNUP_ENABLED", "false"),
            ("TESSERA_SESSION_COOKIE_NAME", "sid"),
        ]);
        let s = Settings::load_from(None, e, &Overrides::default()).unwrap();
        assert_eq!(s.trusted_proxies.len(), 2);
        assert_eq!(s.login_throttle_account, 7);
        assert!(!s.signup_enabled);
        assert_eq!(s.cookie_name(), "sid");
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let secret = "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t";
        let e = env(&[("TESSERA_HS256_SECRET", secret)]);
        let s = Settings::load_from(None, e, &Overrides::default()).unwrap();
        assert!(!format!("{s:?}").contains(secret));
        let e = env(&[("TESSERA_HS256_SECRET", "short")]);
        assert!(Settings::load_from(None, e, &Overrides::default()).is_err());
    }

    #[test]
    fn https_public_url_switches_the_cookie_to_host_prefix() {
        let e = env(&[("TESSERA_PUBLIC_URL", "https://auth.example.com/")]);
        let s = Settings::load_from(None, e, &Overrides::default()).unwrap();
        assert_eq!(s.public_url, "https://auth.example.com");
        assert_eq!(s.cookie_name(), "__Host-tessera_session");
    }

    #[test]
    fn an_upper_case_https_scheme_still_gets_secure_cookies() {
        let e = env(&[("TESSERA_PUBLIC_URL", "HTTPS://Auth.Example.com/")]);
        let s = Settings::load_from(None, e, &Overrides::default()).unwrap();
        assert!(s.is_https());
        assert_eq!(s.public_url, "https://auth.example.com");
        assert_eq!(s.cookie_name(), "__Host-tessera_session");
        assert!(crate::cookies::set_cookie(&s, "t").contains("; Secure"));
    }
}
