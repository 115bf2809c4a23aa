//! `bulwark connect URL`: connects to a remote MCP server exactly as the
//! gateway would — the same `UpstreamActor` and `TokenActor` — lists its
//! tools and calls one if asked. OAuth credentials come from `--oauth-*`
//! flags or, for the MCP conformance suite, from `MCP_CONFORMANCE_CONTEXT`.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use bulwark_actors::oauth::{ClientAuth, OAuthSpec, Secret, Tokens};
use bulwark_actors::upstream::{
    HttpProtocol, HttpSpec, NoObserver, Transport, UpstreamActor, UpstreamArgs, UpstreamLink,
    UpstreamSpec, UpstreamStatus,
};
use clap::{Args, ValueEnum};
use ractor::Actor;
use rmcp::model::{CallToolRequestParams, ClientRequest, Request, ServerResult};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

/// How long the connection may take to become ready.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const READY_POLL: Duration = Duration::from_millis(10);

/// Client authentication at the token endpoint.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AuthMethodArg {
    /// HTTP Basic with id and secret.
    ClientSecretBasic,
    /// Id and secret in the form body.
    ClientSecretPost,
    /// A JWT signed with a private key (RFC 7523).
    PrivateKeyJwt,
}

/// Arguments of `bulwark connect`.
#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// The server's endpoint: tried as streamable HTTP, then as legacy
    /// HTTP+SSE when it refuses the `initialize` POST with a 4xx other than
    /// 401, 403, 407 or 429.
    pub url: String,
    /// Only the legacy HTTP+SSE transport (2024-11-05).
    #[arg(long, conflicts_with = "http")]
    pub sse: bool,
    /// Only streamable HTTP: no fallback to legacy SSE.
    #[arg(long)]
    pub http: bool,
    /// A static header, `Name: value` (repeatable).
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// OAuth client id (client credentials grant).
    #[arg(long)]
    pub oauth_client_id: Option<String>,
    /// OAuth client secret.
    #[arg(long, env = "BULWARK_OAUTH_CLIENT_SECRET", hide_env_values = true)]
    pub oauth_client_secret: Option<String>,
    /// Client authentication method.
    #[arg(long, value_enum, default_value = "client-secret-basic")]
    pub oauth_auth_method: AuthMethodArg,
    /// PEM private key file for private_key_jwt.
    #[arg(long)]
    pub oauth_private_key_file: Option<PathBuf>,
    /// JWS algorithm for private_key_jwt.
    #[arg(long, default_value = "RS256")]
    pub oauth_signing_algorithm: String,
    /// A scope to request (repeatable).
    #[arg(long = "oauth-scope")]
    pub oauth_scopes: Vec<String>,
    /// Token endpoint; discovered from the server when omitted.
    #[arg(long)]
    pub oauth_token_url: Option<String>,
    /// `audience` parameter of the token request.
    #[arg(long)]
    pub oauth_audience: Option<String>,
    /// RFC 8707 resource indicator; the server URL by default.
    #[arg(long)]
    pub oauth_resource: Option<String>,
    /// Call this tool after listing.
    #[arg(long)]
    pub call: Option<String>,
    /// The tool's arguments, a JSON object.
    #[arg(long, default_value = "{}", requires = "call")]
    pub args: String,
}

/// What the conformance suite passes in `MCP_CONFORMANCE_CONTEXT`.
#[derive(Deserialize)]
struct ConformanceContext {
    client_id: Option<String>,
    client_secret: Option<String>,
    private_key_pem: Option<String>,
    signing_algorithm: Option<String>,
}

impl ConnectArgs {
    fn oauth(&self) -> anyhow::Result<Option<OAuthSpec>> {
        if let Some(client_id) = &self.oauth_client_id {
            let secret = || {
                self.oauth_client_secret
                    .clone()
                    .map(Secret::new)
                    .context("--oauth-client-secret is required for this auth method")
            };
            let auth = match self.oauth_auth_method {
                AuthMethodArg::ClientSecretBasic => ClientAuth::SecretBasic(secret()?),
                AuthMethodArg::ClientSecretPost => ClientAuth::SecretPost(secret()?),
                AuthMethodArg::PrivateKeyJwt => {
                    let file = self
                        .oauth_private_key_file
                        .as_ref()
                        .context("--oauth-private-key-file is required for private_key_jwt")?;
                    ClientAuth::PrivateKeyJwt {
                        key_pem: Secret::new(
                            std::fs::read_to_string(file)
                                .with_context(|| format!("reading {}", file.display()))?,
                        ),
                        algorithm: self.oauth_signing_algorithm.clone(),
                    }
                }
            };
            return Ok(Some(self.with_options(client_id, auth)));
        }
        let Ok(context) = std::env::var("MCP_CONFORMANCE_CONTEXT") else {
            return Ok(None);
        };
        let context: ConformanceContext =
            serde_json::from_str(&context).context("MCP_CONFORMANCE_CONTEXT is not valid JSON")?;
        let Some(client_id) = context.client_id else {
            return Ok(None);
        };
        let auth = match (context.private_key_pem, context.client_secret) {
            (Some(pem), _) => ClientAuth::PrivateKeyJwt {
                key_pem: Secret::new(pem),
                algorithm: context.signing_algorithm.unwrap_or_else(|| "ES256".into()),
            },
            (None, Some(secret)) => ClientAuth::SecretBasic(Secret::new(secret)),
            (None, None) => bail!("MCP_CONFORMANCE_CONTEXT has neither a secret nor a key"),
        };
        Ok(Some(self.with_options(&client_id, auth)))
    }

    fn with_options(&self, client_id: &str, auth: ClientAuth) -> OAuthSpec {
        let mut spec = OAuthSpec::basic(client_id, "");
        spec.auth = auth;
        spec.scopes.clone_from(&self.oauth_scopes);
        spec.token_url.clone_from(&self.oauth_token_url);
        spec.audience.clone_from(&self.oauth_audience);
        spec.resource.clone_from(&self.oauth_resource);
        spec
    }

    fn spec(&self) -> anyhow::Result<UpstreamSpec> {
        let mut headers = BTreeMap::new();
        for header in &self.headers {
            let (name, value) = header
                .split_once(':')
                .with_context(|| format!("--header {header:?} is not `Name: value`"))?;
            headers.insert(name.trim().to_owned(), value.trim().to_owned());
        }
        Ok(UpstreamSpec {
            name: "remote".into(),
            transport: Transport::Http(HttpSpec {
                url: self.url.clone(),
                headers,
                protocol: match (self.sse, self.http) {
                    (true, _) => HttpProtocol::Sse,
                    (false, true) => HttpProtocol::Streamable,
                    // As the MCP spec asks of clients that keep to older servers.
                    (false, false) => HttpProtocol::Detect,
                },
            }),
            oauth: self.oauth()?,
            pool: bulwark_actors::upstream::PoolSpec::default(),
        })
    }
}

/// Connects, lists tools (and calls one), prints the results as JSON lines.
pub async fn run(args: ConnectArgs) -> anyhow::Result<()> {
    let spec = args.spec()?;
    let tokens = Tokens::new();
    let token_actor = tokens.spawn(None).await?;
    let status = UpstreamStatus::new(&spec.name);
    let (upstream, _) = Actor::spawn(
        None,
        UpstreamActor,
        UpstreamArgs {
            spec,
            status: status.clone(),
            observer: Arc::new(NoObserver),
            tokens: Some(tokens.clone()),
            handshake_timeout: Duration::from_secs(30),
        },
    )
    .await
    .map_err(|err| anyhow::anyhow!("{err}"))?;
    let result = async {
        let link = wait_ready(&status).await?;
        session(&link, &args).await
    }
    .await;
    let _ = upstream
        .stop_and_wait(None, Some(Duration::from_secs(5)))
        .await;
    tokens.revoke_all().await;
    token_actor.stop(None);
    result
}

async fn wait_ready(status: &UpstreamStatus) -> anyhow::Result<UpstreamLink> {
    let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
    loop {
        if let Some(link) = status.link() {
            return Ok(link);
        }
        if let Some(reason) = status.last_exit() {
            bail!("cannot connect: {reason}");
        }
        if tokio::time::Instant::now() > deadline {
            bail!("cannot connect: no answer within {CONNECT_TIMEOUT:?}");
        }
        tokio::time::sleep(READY_POLL).await;
    }
}

async fn session(link: &UpstreamLink, args: &ConnectArgs) -> anyhow::Result<()> {
    let cancel = CancellationToken::new();
    let listed = link
        .request(
            ClientRequest::ListToolsRequest(Default::default()),
            None,
            &cancel,
        )
        .await?;
    let ServerResult::ListToolsResult(tools) = listed else {
        bail!("the server answered tools/list with something else");
    };
    let names: Vec<&str> = tools.tools.iter().map(|tool| &*tool.name).collect();
    println!("{}", serde_json::json!({ "tools": names }));
    if let Some(tool) = &args.call {
        let arguments: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&args.args).context("--args must be a JSON object")?;
        let params = CallToolRequestParams::new(tool.clone()).with_arguments(arguments);
        let result = link
            .request(
                ClientRequest::CallToolRequest(Request::new(params)),
                None,
                &cancel,
            )
            .await?;
        println!("{}", serde_json::to_string(&result)?);
    }
    Ok(())
}
