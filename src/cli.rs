//! Command line: `run`, `check`, `keygen`, `import-icm`, `health`. Each command returns its exit code.

use crate::config::Choice as _;
use std::path::PathBuf;

use base64::Engine as _;
use clap::{Parser, Subcommand};
use rand::RngCore;

use crate::config::{self, Config};

/// Exit code for an invalid config or command line.
pub const EXIT_INVALID: i32 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "sso-sidecar",
    version,
    about = "Single sign-on reverse proxy for commerce backends"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve: proxy on server.listen, /healthz /readyz /metrics on admin.listen.
    Run(ConfigArg),
    /// Validate the config and print a summary; exit 0 when valid, 2 when not.
    Check {
        #[command(flatten)]
        config: ConfigArg,
        /// Also fetch each identity provider's discovery document and warn about what it
        /// does not offer (step-up `acr_values`); unreachable IdPs are warnings too.
        #[arg(long)]
        discover: bool,
    },
    /// Print a new random 256-bit session key (base64) for session.keys.
    Keygen,
    /// Read ICM SSO .properties and print the equivalent TOML.
    ImportIcm {
        /// The ICM properties file.
        file: PathBuf,
        /// Keep client secrets in the output instead of `env:` references.
        #[arg(long)]
        keep_secrets: bool,
    },
    /// Exit 0 when the admin listener answers /healthz (for container health checks).
    Health {
        /// The URL to probe.
        #[arg(long, default_value = "http://127.0.0.1:9090/healthz")]
        url: String,
        /// Give up after this long.
        #[arg(long, default_value = "3s", value_parser = config::parse_duration)]
        timeout: std::time::Duration,
    },
}

#[derive(Debug, clap::Args)]
pub struct ConfigArg {
    /// Config file [default: $SSO_SIDECAR_CONFIG, else conf/sidecar.toml]
    #[arg(short = 'c', long = "config")]
    pub config: Option<PathBuf>,
}

impl ConfigArg {
    fn path(&self) -> PathBuf {
        self.config
            .clone()
            .or_else(|| std::env::var_os("SSO_SIDECAR_CONFIG").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("conf/sidecar.toml"))
    }

    fn load(&self) -> Result<(Config, crate::pages::Pages), i32> {
        crate::runtime::load(&self.path()).map_err(|e| {
            for line in e.lines() {
                eprintln!("{line}");
            }
            EXIT_INVALID
        })
    }
}

pub fn main(cli: Cli) -> i32 {
    match cli.command {
        Command::Keygen => {
            println!("{}", generate_key());
            0
        }
        Command::Check { config, discover } => match config.load() {
            Ok((config, _)) => {
                print!("{}", summary(&config));
                if discover {
                    for warning in discovery_warnings(&config) {
                        eprintln!("warning: {}: {warning}", config.source.display());
                    }
                }
                0
            }
            Err(code) => code,
        },
        Command::ImportIcm { file, keep_secrets } => import_icm(&file, keep_secrets),
        Command::Health { url, timeout } => crate::health::probe(&url, timeout),
        Command::Run(arg) => match arg.load() {
            Ok((config, pages)) => run(config, pages),
            Err(code) => code,
        },
    }
}

/// `check --discover`: what the IdPs' discovery documents say against the config.
fn discovery_warnings(config: &Config) -> Vec<String> {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return vec![format!("cannot start the discovery: {error}")],
    };
    let metrics = std::sync::Arc::new(crate::metrics::Metrics::new());
    let registry = crate::oidc::Registry::new(config, metrics);
    runtime.block_on(async {
        let mut warnings = Vec::new();
        for provider in registry.providers() {
            match registry.discover(provider).await {
                Ok(discovered) => {
                    warnings.extend(registry.acr_warnings(&provider.key, &discovered))
                }
                Err(error) => warnings.push(format!(
                    "identity_providers.{}: discovery failed: {error}",
                    provider.key
                )),
            }
        }
        warnings
    })
}

fn run(config: Config, pages: crate::pages::Pages) -> i32 {
    crate::logging::init(&config.log);
    if let Err(error) = crate::audit::init(&config.log.audit) {
        eprintln!("error: log.audit: cannot open the audit log: {error}");
        return EXIT_INVALID;
    }
    for warning in &config.warnings {
        tracing::warn!("{}: {warning}", config.source.display());
    }
    tracing::info!(
        config = %config.source.display(),
        listen = %config.server.listen,
        admin = %config.admin.listen,
        upstream = %config.server.upstream.url,
        "sso-sidecar {} starting",
        env!("CARGO_PKG_VERSION")
    );
    crate::server::build(config, pages).run_forever()
}

fn import_icm(file: &std::path::Path, keep_secrets: bool) -> i32 {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("error: {}: cannot read: {e}", file.display());
            return EXIT_INVALID;
        }
    };
    match crate::import_icm::import(&text, &file.display().to_string(), keep_secrets) {
        Ok(imported) => {
            for warning in &imported.warnings {
                eprintln!("warning: {warning}");
            }
            print!("{}", imported.toml);
            0
        }
        Err(error) => {
            eprintln!("error: {error}");
            EXIT_INVALID
        }
    }
}

pub fn generate_key() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    base64::engine::general_purpose::STANDARD.encode(key)
}

/// What `check` prints for a valid config: enough to see that it means what was intended.
pub fn summary(config: &Config) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "{}: ok", config.source.display());
    let _ = writeln!(
        out,
        "  listen {} → upstream {}; admin {}",
        config.server.listen, config.server.upstream.url, config.admin.listen
    );
    let _ = writeln!(
        out,
        "  remote identity providers: {}",
        if config.oidc.remote {
            "supported"
        } else {
            "unsupported (local only)"
        }
    );
    let profile = config.backend.profile.as_str();
    let _ = writeln!(out, "  backend profile: {profile}");
    let _ = match &config.store.redis {
        Some(redis) => writeln!(
            out,
            "  store: redis (key prefix {}, server-side sessions {})",
            redis.key_prefix,
            if redis.server_side_sessions {
                "on"
            } else {
                "off"
            }
        ),
        None => writeln!(out, "  store: memory (this process only)"),
    };
    if let Some(ct) = &config.commercetools {
        let _ = writeln!(
            out,
            "  commercetools introspection: project {} (client {})",
            ct.project_key, ct.client_id
        );
    }
    let _ = writeln!(
        out,
        "identity providers ({}):",
        config.identity_providers.len()
    );
    for (key, idp) in &config.identity_providers {
        match idp.oidc() {
            Some(oidc) => {
                let _ = writeln!(
                    out,
                    "  {key}: oidc \"{}\" issuer {} client {}",
                    idp.name, oidc.issuer, oidc.client_id
                );
            }
            None => {
                let _ = writeln!(out, "  {key}: local \"{}\"", idp.name);
            }
        }
    }
    let _ = writeln!(out, "organizations ({}):", config.organizations.len());
    for (key, org) in &config.organizations {
        let _ = writeln!(
            out,
            "  {key} (\"{}\"): idps [{}], logout {}, self-administration {}, members {}",
            org.external_name,
            org.identity_providers.join(", "),
            org.logout_policy.as_str(),
            org.self_administration.header_value(),
            describe_rules(&org.members, "everyone")
        );
    }
    let _ = writeln!(out, "routes ({}):", config.routes.len());
    for (i, route) in config.routes.iter().enumerate() {
        let _ = writeln!(
            out,
            "  [{i}] {}{} → {}{}{}",
            route.host.as_deref().unwrap_or("*"),
            route.path_prefix,
            route.auth.as_str(),
            route
                .organization
                .as_deref()
                .map(|o| format!(" (organization {o})"))
                .unwrap_or_default(),
            if route.allow.is_empty() {
                String::new()
            } else {
                format!(", allow {}", describe_rules(&route.allow, ""))
            }
        );
    }
    for warning in &config.warnings {
        let _ = writeln!(out, "warning: {warning}");
    }
    out
}

/// Rules in one line for `check`: `email ends_with [@a.com] or groups any_of [x]`.
fn describe_rules(rules: &[crate::config::ClaimRule], when_empty: &str) -> String {
    if rules.is_empty() {
        return when_empty.to_owned();
    }
    let described: Vec<String> = rules
        .iter()
        .map(|rule| match &rule.test {
            crate::config::ClaimTest::AnyOf(values) => {
                format!("{} any_of [{}]", rule.claim, values.join(", "))
            }
            crate::config::ClaimTest::EndsWith(values) => {
                format!("{} ends_with [{}]", rule.claim, values.join(", "))
            }
        })
        .collect();
    described.join(" or ")
}
