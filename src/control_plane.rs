//! Pulling the compute's configuration from a control plane (`-p`, `-i`):
//! `GET {uri}/compute/api/v2/computes/{id}/spec`, with the bearer token of
//! `NEON_CONTROL_PLANE_TOKEN` when set. The answer is
//! `{"status": "empty"|"attached", "spec": ..., "compute_ctl_config": ...}`.

use crate::auth::{Authenticator, Gate};
use crate::driver::{Handle, Keys, Request};
use crate::secret::Secret;
use crate::spec::{ComputeConfig, ValidSpec};
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The environment variable holding the control plane's token. Secret.
pub const TOKEN_ENV: &str = "NEON_CONTROL_PLANE_TOKEN";

/// Where the control plane's bearer token is read from, at every use (so a
/// rotated file is picked up): `--control-plane-token-file`, else
/// [`TOKEN_ENV`].
#[derive(Debug, Clone, Default)]
pub struct TokenSource {
    /// `--control-plane-token-file` (or `NEON_CONTROL_PLANE_TOKEN_FILE`).
    pub file: Option<PathBuf>,
}

impl TokenSource {
    /// The token now: the file's content (trimmed), else the environment's.
    pub fn read(&self) -> Result<Option<Secret>> {
        match &self.file {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| {
                    format!("reading the control-plane token file {}", path.display())
                })?;
                Ok(Some(Secret::new(text.trim())))
            }
            None => Ok(std::env::var(TOKEN_ENV).ok().map(Secret::new)),
        }
    }
}

/// Attempts before giving up on an unreachable control plane.
const ATTEMPTS: u32 = 5;

/// The largest answer read: a spec of thousands of roles is a few MiB; a
/// control plane streaming without end must not fill memory.
const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// What the control plane said about this compute.
#[derive(Debug)]
pub struct Pulled {
    /// The spec, when the compute is attached to one.
    pub spec: Option<ValidSpec>,
    /// compute_ctl's own settings (JWKS, ...).
    pub compute_ctl_config: Option<serde_json::Value>,
}

/// Fetches and validates the configuration of compute `id` from `uri`.
/// Transport errors and 5xx answers are retried with backoff; anything else
/// is an error naming what was wrong.
pub async fn pull(uri: &str, id: &str, token: Option<&str>, timeout: Duration) -> Result<Pulled> {
    // TLS through rustls with the ring provider (already in the tree for JWT).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let url = format!(
        "{}/compute/api/v2/computes/{id}/spec",
        uri.trim_end_matches('/')
    );
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .context("building the HTTP client")?;
    let mut delay = Duration::from_millis(200);
    let mut attempt = 1;
    let (status, body) = loop {
        let mut request = client.get(&url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let outcome = async {
            let mut resp = request.send().await?;
            let status = resp.status();
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await? {
                if body.len() + chunk.len() > MAX_ANSWER {
                    return Ok((status, Err(())));
                }
                body.extend_from_slice(&chunk);
            }
            Ok::<_, reqwest::Error>((status, Ok(String::from_utf8_lossy(&body).into_owned())))
        }
        .await;
        let outcome = match outcome {
            Ok((status, Err(()))) => {
                bail!("control plane answered {status} with more than {MAX_ANSWER} bytes for {url}")
            }
            Ok((status, Ok(body))) => Ok((status, body)),
            Err(e) => Err(e),
        };
        match outcome {
            Ok((status, body)) if !status.is_server_error() => break (status, body),
            Ok((status, body)) if attempt < ATTEMPTS => tracing::warn!(
                %status,
                attempt,
                attempts = ATTEMPTS,
                body = %excerpt(&body),
                "control plane answered with an error; retrying"
            ),
            Err(e) if attempt < ATTEMPTS => tracing::warn!(
                attempt,
                attempts = ATTEMPTS,
                "cannot reach the control plane: {:#}; retrying",
                anyhow::Error::new(e)
            ),
            Ok((status, body)) => bail!("control plane answered {status}: {}", excerpt(&body)),
            Err(e) => return Err(e).with_context(|| format!("fetching the spec from {url}")),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
        attempt += 1;
    };
    if !status.is_success() {
        bail!(
            "control plane answered {status} for {url}: {}",
            excerpt(&body)
        );
    }
    parse(&body).with_context(|| format!("the answer of {url}"))
}

/// The 503 message of authenticated routes while the pull is under way.
pub const PULLING: &str =
    "compute_ctl is pulling its configuration (and keys) from the control plane; retry shortly";

/// Pulls the configuration and hands it to the driver as a `/configure`
/// would (the API is already up: `/metrics` answers meanwhile, while routes
/// that need authentication answer 503 until the keys are known, so nobody
/// can configure the compute before the control plane has spoken). The keys
/// of the answer are installed when the driver accepts its spec (at once when
/// it has none, and also when the spec is refused: see below). When
/// the pull fails the authenticated routes stay closed (503): without the
/// control plane's keys nobody can be told from an attacker.
///
/// The answer's `compute_ctl_config.tls` is taken into `edge` before the
/// spec is handed over, so the start serves TLS as with `-c`; a `tls` that
/// is not one closes the API as unusable keys do, and configures nothing.
pub async fn pull_and_configure(
    source: SpecSource,
    handle: Handle,
    gate: Arc<Gate>,
    edge: Arc<crate::edge::Edge>,
) {
    let SpecSource::ControlPlane { id, .. } = &source else {
        tracing::error!("pull_and_configure needs a control plane as the spec source");
        return;
    };
    let id = id.clone();
    let pulled = match source.fetch().await {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(
                "pulling the spec from the control plane: {e:#}; the authenticated API stays closed (503) until compute_ctl is restarted"
            );
            gate.close(
                "the configuration could not be pulled from the control plane (see compute_ctl's log); restart compute_ctl",
            );
            return;
        }
    };
    let auth = match Authenticator::from_config(pulled.compute_ctl_config.as_ref(), Some(&id)) {
        Ok(a) => Some(a),
        Err(e) => {
            tracing::error!("the control plane's compute_ctl_config.jwks: {e:#}; the authenticated API stays closed (503)");
            gate.close("the control plane's keys are unusable (see compute_ctl's log)");
            None
        }
    };
    if let Err(e) = edge.adopt(pulled.compute_ctl_config.as_ref()) {
        tracing::error!("the control plane's compute_ctl_config.tls: {e:#}; nothing is configured");
        gate.close("the control plane's TLS configuration is unusable (see compute_ctl's log)");
        return;
    }
    let Some(spec) = pulled.spec else {
        // No spec to accept: the keys are all the answer says.
        if let Some(auth) = auth {
            gate.install(auth);
        }
        tracing::info!(
            "the control plane has no spec for this compute yet: waiting for POST /configure"
        );
        return;
    };
    // The keys are installed when the driver accepts the spec, as a
    // `/configure`'s are.
    let spec = Arc::new(spec);
    let keys = auth.clone().map(|auth| Keys {
        gate: gate.clone(),
        auth,
    });
    match handle
        .request(|reply| Request::Configure { spec, keys, reply })
        .await
    {
        Ok(_) => tracing::info!("compute configured from the control plane"),
        Err(e) => {
            tracing::error!("configuring from the control plane: {e}");
            // A refused spec leaves the gate waiting for keys that nobody
            // else can bring: the control plane's keys open it, so that it
            // can send another spec (installing them again is harmless).
            if let Some(auth) = auth {
                gate.install(auth);
            }
        }
    }
}

/// Where the spec comes from, for `/refresh_configuration`: read again at
/// every use.
#[derive(Debug, Clone)]
pub enum SpecSource {
    /// `-p URI -i ID`: the control plane.
    ControlPlane {
        /// The control plane's base URL.
        uri: String,
        /// This compute's id.
        id: String,
        /// Its bearer token.
        token: TokenSource,
        /// How long one attempt may take (`--control-plane-timeout`).
        timeout: Duration,
    },
    /// `-S FILE`: a ComputeSpec file.
    SpecFile(PathBuf),
    /// `-c FILE`: a ComputeConfig file.
    ConfigFile(PathBuf),
}

impl SpecSource {
    /// Reads the spec (and compute_ctl_config) afresh.
    pub async fn fetch(&self) -> Result<Pulled> {
        match self {
            SpecSource::ControlPlane {
                uri,
                id,
                token,
                timeout,
            } => {
                let token = token.read()?;
                pull(uri, id, token.as_ref().map(|t| t.expose()), *timeout).await
            }
            SpecSource::SpecFile(path) => {
                let text = tokio::fs::read_to_string(path)
                    .await
                    .with_context(|| format!("reading spec file {}", path.display()))?;
                let spec = ValidSpec::from_json(&text)
                    .with_context(|| format!("in {}", path.display()))?;
                Ok(Pulled {
                    spec: Some(spec),
                    compute_ctl_config: None,
                })
            }
            SpecSource::ConfigFile(path) => {
                let text = tokio::fs::read_to_string(path)
                    .await
                    .with_context(|| format!("reading config file {}", path.display()))?;
                let config = ComputeConfig::from_json(&text)
                    .with_context(|| format!("in {}", path.display()))?;
                Ok(Pulled {
                    spec: config.spec,
                    compute_ctl_config: config.compute_ctl_config,
                })
            }
        }
    }
}

/// Parses the control plane's answer.
fn parse(body: &str) -> Result<Pulled> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Status {
        Empty,
        Attached,
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        status: Status,
    }
    let answer: Answer =
        serde_json::from_str(body).context("no valid \"status\" (empty or attached)")?;
    // The rest has the shape of a ComputeConfig (spec validated there).
    let config = ComputeConfig::from_json(body)?;
    match answer.status {
        Status::Empty => Ok(Pulled {
            spec: None,
            compute_ctl_config: config.compute_ctl_config,
        }),
        Status::Attached => {
            let spec = config
                .spec
                .context("status is \"attached\" but the spec is missing")?;
            Ok(Pulled {
                spec: Some(spec),
                compute_ctl_config: config.compute_ctl_config,
            })
        }
    }
}

/// The start of a body, for an error message.
fn excerpt(body: &str) -> String {
    let cut: String = body.chars().take(200).collect();
    if cut.len() < body.len() {
        format!("{cut}…")
    } else {
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_parse() {
        let empty = parse(r#"{"status": "empty", "spec": null}"#).unwrap();
        assert!(empty.spec.is_none());
        let attached = parse(
            r#"{"status": "attached", "spec": {"format_version": 1.0, "cluster": {}},
                "compute_ctl_config": {"jwks": {"keys": []}}}"#,
        )
        .unwrap();
        assert!(attached.spec.is_some() && attached.compute_ctl_config.is_some());
        assert!(parse(r#"{"status": "attached"}"#)
            .unwrap_err()
            .to_string()
            .contains("missing"));
        assert!(parse(r#"{"status": "weird"}"#).is_err());
        let bad = parse(
            r#"{"status": "attached", "spec": {"format_version": 1.0, "cluster": {"roles": [{"name": 1}]}}}"#,
        );
        assert!(format!("{:#}", bad.unwrap_err()).contains("spec.cluster.roles[0].name"));
    }
}
