//! The `tessera` command line: raw arguments become validated [`Settings`] here, and
//! nowhere else. Every command is an adapter like the HTTP API: it calls the same
//! [`Core`] use cases (`user add`, `client add`) or the composition root (`serve`), and
//! `bench` runs the load generator of `tessera-bench`.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

use tessera_core::Core;
use tessera_core::clock::SystemClock;
use tessera_core::keys;
use tessera_server::config::{Overrides, Settings};
use tessera_server::startup::{Application, build_core};

/// tessera: sessions and JWT access tokens, in one server.
#[derive(Debug, Parser)]
#[command(name = "tessera", version)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct Common {
    /// TOML configuration file (optional; `TESSERA_*` environment variables override it).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory (default ./tessera-data).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        #[command(flatten)]
        common: Common,
        /// Address to listen on (default 127.0.0.1:8080).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// Public URL, the token issuer (default http://127.0.0.1:8080).
        #[arg(long, value_name = "URL")]
        public_url: Option<String>,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Measure throughput, latency, CPU per request, credential size and revocation delay
    /// of each credential kind on this machine (loopback only, bounded).
    Bench {
        /// Measured seconds per row.
        #[arg(long, default_value = "5")]
        seconds: u64,
        /// Concurrent connections.
        #[arg(long, default_value = "32")]
        connections: usize,
        /// At most this many requests per row.
        #[arg(long, default_value = "2000000")]
        max_requests: u64,
        /// Redis for the session-on-Redis row and the revocation-delay row.
        #[arg(long, value_name = "URL")]
        redis_url: Option<String>,
        /// Measure an already running tessera (loopback only) instead of starting one.
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// Directory for report.md and throughput.svg.
        #[arg(long, default_value = "tessera-bench")]
        out: PathBuf,
        /// Only rows whose name contains this (repeatable), e.g. `--only jwt`.
        #[arg(long)]
        only: Vec<String>,
    },
    /// Manage signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Manage OAuth clients (resource servers that revoke and introspect tokens).
    Client {
        #[command(subcommand)]
        command: ClientCommand,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Add a new signing key: published now, signing after `key_prepublish_delay`.
    Rotate {
        /// Algorithm of the new key (default: the `signing_algorithm` setting).
        #[arg(long, value_parser = ["EdDSA", "ES256", "RS256"])]
        algorithm: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Import a PKCS#8 PEM private key (Ed25519, P-256, RSA >= 2048 bits) as the next key.
    Import {
        /// The PEM file.
        file: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// List keys and their state (next / active / retiring / retired).
    List {
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Debug, Subcommand)]
enum ClientCommand {
    /// Register a confidential client; prints its id and secret once (only a hash is kept).
    Add {
        /// A name for the client.
        name: String,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Add a user; the password is read from standard input (prompted, without echo, on a terminal).
    Add {
        /// Username.
        name: String,
        /// Role (default `user`).
        #[arg(long, default_value = "user")]
        role: String,
        #[command(flatten)]
        common: Common,
    },
}

fn settings(
    common: &Common,
    listen: Option<String>,
    public_url: Option<String>,
) -> anyhow::Result<Settings> {
    let overrides = Overrides {
        listen,
        data_dir: common.data_dir.clone(),
        public_url,
    };
    Settings::load(common.config.as_deref(), &overrides).context("invalid configuration")
}

/// Parse the process arguments and run.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve {
            common,
            listen,
            public_url,
        } => {
            let settings = settings(&common, listen, public_url)?;
            let app = Application::build(settings, Arc::new(SystemClock)).await?;
            let addr = app.local_addr()?;
            tracing::info!(%addr, "tessera listening");
            println!("tessera listening on http://{addr}");
            app.run_until(shutdown_signal()).await?;
            Ok(())
        }
        Command::User {
            command: UserCommand::Add { name, role, common },
        } => {
            let settings = settings(&common, None, None)?;
            let password = read_password()?;
            let core = admin_core(&settings).await?;
            let user = core
                .create_user(&name, password, &role)
                .await
                .context("adding the user")?;
            println!(
                "created user {} ({}), role {}",
                user.username, user.id, user.role
            );
            Ok(())
        }
        Command::Keys { command } => keys_command(command).await,
        Command::Bench {
            seconds,
            connections,
            max_requests,
            redis_url,
            url,
            out,
            only,
        } => {
            if connections == 0 || connections > 1024 || seconds == 0 || seconds > 600 {
                bail!("--connections must be 1-1024 and --seconds 1-600");
            }
            let opts = tessera_bench::BenchOptions {
                duration: std::time::Duration::from_secs(seconds),
                connections,
                max_requests,
                redis_url,
                url,
                out,
                only,
            };
            tessera_bench::bench(opts).await?;
            Ok(())
        }
        Command::Client {
            command: ClientCommand::Add { name, common },
        } => {
            let settings = settings(&common, None, None)?;
            let core = admin_core(&settings).await?;
            let new = core
                .create_client(&name)
                .await
                .context("adding the client")?;
            println!("client_id={}", new.client.id);
            println!("client_secret={}", new.secret);
            eprintln!("Store the secret now: it is not kept and cannot be shown again.");
            Ok(())
        }
    }
}

async fn keys_command(command: KeysCommand) -> anyhow::Result<()> {
    let new = match command {
        KeysCommand::List { common } => {
            let core = admin_core(&settings(&common, None, None)?).await?;
            println!("{:<45} {:<6} {:<9} activates_at", "kid", "alg", "state");
            for (r, state) in core.signing_keys().await.context("listing keys")? {
                let state = serde_json::to_value(state)?
                    .as_str()
                    .unwrap_or("?")
                    .to_owned();
                println!("{:<45} {:<6} {:<9} {}", r.kid, r.alg, state, r.activates_at);
            }
            return Ok(());
        }
        KeysCommand::Rotate { algorithm, common } => {
            let settings = settings(&common, None, None)?;
            let alg: Option<keys::SigningAlgorithm> = match algorithm.as_deref() {
                Some(a) => Some(serde_json::from_value(serde_json::Value::String(
                    a.to_owned(),
                ))?),
                None => None,
            };
            let core = admin_core(&settings).await?;
            core.rotate_key(alg, settings.key_prepublish_delay)
                .await
                .context("adding a key")?
        }
        KeysCommand::Import { file, common } => {
            let settings = settings(&common, None, None)?;
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let core = admin_core(&settings).await?;
            core.import_key(&text, settings.key_prepublish_delay)
                .await
                .with_context(|| format!("importing {}", file.display()))?
        }
    };
    println!(
        "added {} key {}: published now, signs from {} (unix time)",
        new.alg, new.kid, new.activates_at
    );
    Ok(())
}

/// A core for one administrative command: the server's stores and rules, with a single
/// hashing slot (nothing else competes for it).
async fn admin_core(settings: &Settings) -> anyhow::Result<Core> {
    let mut settings = settings.clone();
    settings.max_concurrent_hashes = Some(1);
    build_core(&settings, Arc::new(SystemClock)).await
}

fn read_password() -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let second = rpassword::prompt_password("Repeat password: ")?;
        if first != second {
            bail!("the passwords differ");
        }
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        let password = line.strip_suffix('\n').unwrap_or(&line);
        let password = password.strip_suffix('\r').unwrap_or(password);
        Ok(password.to_owned())
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
