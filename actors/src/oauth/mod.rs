//! `TokenActor`: OAuth client-credentials tokens for upstreams.
//!
//! The hot path never hops through the actor: a [`TokenSource`] reads the
//! shared cache ([`Tokens`]) and only on a miss asks the actor, which runs
//! one token request per (upstream, credentials) however many callers wait
//! (single flight). A fetched token is refreshed before it expires
//! (`refresh_before`, default 300 s). The cache lives outside the actor, so
//! a restarted actor (the root supervisor restarts it) keeps every token.
//!
//! - [`spec`]: the per-upstream OAuth configuration.
//! - [`client`]: the grant itself (client authentication, retries, revocation).
//! - [`discovery`]: 401 challenge → RFC 9728 → RFC 8414 → token endpoint.
//! - [`metrics`]: counters for operators.
//! - [`outbound`]: no request to link-local or metadata addresses.
mod client;
mod discovery;
mod error;
mod metrics;
mod outbound;
mod spec;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use dashmap::DashMap;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::mailbox::MailboxStats;
use tokio::time::Instant;
use tracing::Instrument;

pub use client::{AccessToken, TokenClient};
pub use discovery::is_allowed_endpoint;
pub use error::TokenError;
pub use metrics::{TokenMetrics, TokenMetricsSnapshot};
pub use spec::{ClientAuth, ClientCert, DEFAULT_REFRESH_BEFORE, OAuthSpec, Secret};

pub(crate) use client::describe_network_error;

/// Which cached token: the upstream and a digest of its credentials.
pub type CacheKey = (Arc<str>, [u8; 32]);

/// Token state shared by the actor, its callers and its next incarnation.
#[derive(Default)]
pub struct Tokens {
    cache: DashMap<CacheKey, AccessToken>,
    clients: DashMap<CacheKey, Arc<TokenClient>>,
    /// Bumped when a key's token changes, for stdio upstreams that carry it
    /// in their environment and must restart to take the new one.
    rotations: DashMap<CacheKey, tokio::sync::watch::Sender<u64>>,
    /// The running actor; replaced when the root restarts it.
    actor: RwLock<Option<ActorRef<TokenMsg>>>,
    /// Counters for `/api/v1/actors`.
    pub metrics: TokenMetrics,
    /// The actor's mailbox counters (ractor keeps none); shared with the tree.
    pub mailbox: Arc<MailboxStats>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("cached", &self.cache.len())
            .finish_non_exhaustive()
    }
}

impl Tokens {
    /// Empty shared state; start the actor with [`Tokens::spawn`].
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Starts a token actor on this state, linked to `supervisor` if given.
    pub async fn spawn(
        self: &Arc<Self>,
        supervisor: Option<ActorCell>,
    ) -> Result<ActorRef<TokenMsg>, ractor::SpawnErr> {
        let (actor, _) = match supervisor {
            Some(sup) => Actor::spawn_linked(None, TokenActor, self.clone(), sup).await?,
            None => Actor::spawn(None, TokenActor, self.clone()).await?,
        };
        Ok(actor)
    }

    fn actor(&self) -> Option<ActorRef<TokenMsg>> {
        self.actor.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A token source for one upstream.
    pub fn source(
        self: &Arc<Self>,
        server: &str,
        spec: OAuthSpec,
        upstream_url: Option<String>,
    ) -> Result<TokenSource, TokenError> {
        let key: CacheKey = (server.into(), spec.fingerprint());
        let client = match self.clients.get(&key) {
            Some(client) => client.clone(),
            None => {
                let client = Arc::new(TokenClient::new(server, spec, upstream_url)?);
                self.clients.insert(key.clone(), client.clone());
                client
            }
        };
        Ok(TokenSource {
            key,
            client,
            tokens: self.clone(),
        })
    }

    /// Revokes every cached token whose server supports it (RFC 7009); for
    /// shutdown.
    pub async fn revoke_all(&self) {
        let keys: Vec<CacheKey> = self.cache.iter().map(|entry| entry.key().clone()).collect();
        let revokes = keys.into_iter().map(|key| self.revoke(key));
        futures::future::join_all(revokes).await;
    }

    async fn revoke(&self, key: CacheKey) -> bool {
        let Some((_, token)) = self.cache.remove(&key) else {
            return false;
        };
        let Some(client) = self.clients.get(&key).map(|c| c.clone()) else {
            return false;
        };
        let revoked = client.revoke(&token.value).await;
        tracing::info!(server = %key.0, revoked, "upstream token released");
        revoked
    }
}

/// What an upstream holds to get its bearer token.
#[derive(Clone)]
pub struct TokenSource {
    key: CacheKey,
    client: Arc<TokenClient>,
    tokens: Arc<Tokens>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("server", &self.key.0)
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    /// A valid access token: from the cache when it holds one, else from the
    /// token actor (one request however many callers wait).
    pub async fn bearer(&self) -> Result<Arc<str>, TokenError> {
        if let Some(token) = self.tokens.cache.get(&self.key)
            && token.is_valid(Instant::now())
        {
            self.tokens.metrics.hit();
            return Ok(token.value.clone());
        }
        self.tokens.metrics.miss();
        // Only a miss is worth a span: it waits for the token endpoint. The
        // actor hop keeps it as parent (ractor's span propagation).
        let span = tracing::debug_span!("oauth.token", server = %self.key.0);
        async {
            let actor = self.tokens.actor().ok_or(TokenError::ActorDown)?;
            let (key, client) = (self.key.clone(), self.client.clone());
            self.tokens.mailbox.enqueued();
            match ractor::call!(actor, |reply| TokenMsg::GetToken { key, client, reply }) {
                Ok(result) => result,
                Err(_) => Err(TokenError::ActorDown),
            }
        }
        .instrument(span)
        .await
    }

    /// The upstream refused `stale`: drop it so the next call fetches anew.
    pub fn invalidate(&self, stale: &str) {
        let removed = self
            .tokens
            .cache
            .remove_if(&self.key, |_, token| &*token.value == stale);
        if removed.is_some() {
            tracing::info!(server = %self.key.0, "upstream refused its token; fetching a new one");
        }
    }

    /// Changes each time a new token replaces this upstream's cached one.
    pub fn rotations(&self) -> tokio::sync::watch::Receiver<u64> {
        self.tokens
            .rotations
            .entry(self.key.clone())
            .or_insert_with(|| tokio::sync::watch::channel(0).0)
            .subscribe()
    }

    /// Revokes this upstream's token (RFC 7009) where the server supports it.
    pub async fn revoke(&self) -> bool {
        self.tokens.revoke(self.key.clone()).await
    }

    /// The shared token state's counters.
    pub fn metrics(&self) -> TokenMetricsSnapshot {
        self.tokens.metrics.snapshot()
    }
}

type TokenReply = RpcReplyPort<Result<Arc<str>, TokenError>>;

/// Messages of the token actor.
pub enum TokenMsg {
    /// Get a valid token for `client`, fetching it if needed (single flight).
    GetToken {
        /// Cache key of the client.
        key: CacheKey,
        /// The client to fetch with.
        client: Arc<TokenClient>,
        /// Where the token (or the error) goes.
        reply: TokenReply,
    },
    /// Fetch a token anew before the cached one expires.
    Refresh(CacheKey),
    /// A token request finished.
    Fetched {
        /// Whose token.
        key: CacheKey,
        /// It was a proactive refresh.
        refresh: bool,
        /// When the request started, for the latency figure.
        started: Instant,
        /// The token, or why there is none.
        result: Result<AccessToken, TokenError>,
    },
}

/// State of the token actor: the flights in progress. Tokens themselves live
/// in [`Tokens`].
pub struct TokenState {
    tokens: Arc<Tokens>,
    /// Callers waiting on each flight; a refresh flight may have none.
    flights: HashMap<CacheKey, Vec<TokenReply>>,
}

/// The token actor.
pub struct TokenActor;

impl Actor for TokenActor {
    type Msg = TokenMsg;
    type State = TokenState;
    type Arguments = Arc<Tokens>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        tokens: Arc<Tokens>,
    ) -> Result<Self::State, ActorProcessingErr> {
        *tokens.actor.write().unwrap_or_else(|e| e.into_inner()) = Some(myself.clone());
        // A restarted actor's mailbox starts empty: the old one died with it.
        tokens.mailbox.instance();
        // A restarted actor picks up the refresh schedule of the tokens it inherits.
        for entry in tokens.cache.iter() {
            if let Some(at) = entry.value().refresh_at {
                schedule_refresh(&tokens, entry.key().clone(), at);
            }
        }
        Ok(TokenState {
            tokens,
            flights: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.tokens.mailbox.handled();
        match message {
            TokenMsg::GetToken { key, client, reply } => {
                if let Some(token) = state.tokens.cache.get(&key)
                    && token.is_valid(Instant::now())
                {
                    let _ = reply.send(Ok(token.value.clone()));
                    return Ok(());
                }
                if let Some(waiters) = state.flights.get_mut(&key) {
                    waiters.push(reply);
                    return Ok(());
                }
                state.flights.insert(key.clone(), vec![reply]);
                start_flight(&myself, &state.tokens, key, client, false);
            }
            TokenMsg::Refresh(key) => {
                let due = state
                    .tokens
                    .cache
                    .get(&key)
                    .and_then(|token| token.refresh_at)
                    .is_some_and(|at| at <= Instant::now());
                // A timer of a token replaced since, or a flight already going.
                if !due || state.flights.contains_key(&key) {
                    return Ok(());
                }
                let Some(client) = state.tokens.clients.get(&key).map(|c| c.clone()) else {
                    return Ok(());
                };
                tracing::debug!(server = %key.0, "refreshing upstream token before it expires");
                state.flights.insert(key.clone(), Vec::new());
                start_flight(&myself, &state.tokens, key, client, true);
            }
            TokenMsg::Fetched {
                key,
                refresh,
                started,
                result,
            } => {
                state
                    .tokens
                    .metrics
                    .finished(result.is_ok(), refresh, started.elapsed());
                let waiters = state.flights.remove(&key).unwrap_or_default();
                let answer = match result {
                    Ok(token) => {
                        if let Some(at) = token.refresh_at {
                            schedule_refresh(&state.tokens, key.clone(), at);
                        }
                        let value = token.value.clone();
                        let replaced = state.tokens.cache.insert(key.clone(), token);
                        if replaced.is_some_and(|old| old.value != value)
                            && let Some(rotations) = state.tokens.rotations.get(&key)
                        {
                            rotations.send_modify(|generation| *generation += 1);
                        }
                        tracing::info!(server = %key.0, refresh, "upstream token acquired");
                        Ok(value)
                    }
                    Err(err) => {
                        // The old token, if any, serves until it expires.
                        tracing::warn!(server = %key.0, %err, refresh, "upstream token request failed");
                        Err(err)
                    }
                };
                for waiter in waiters {
                    let _ = waiter.send(answer.clone());
                }
            }
        }
        Ok(())
    }
}

/// Runs one token request in a task and reports back.
fn start_flight(
    myself: &ActorRef<TokenMsg>,
    tokens: &Arc<Tokens>,
    key: CacheKey,
    client: Arc<TokenClient>,
    refresh: bool,
) {
    let (to, tokens) = (myself.clone(), tokens.clone());
    tokio::spawn(async move {
        let started = Instant::now();
        let result = client.fetch().await;
        tokens.mailbox.enqueued();
        let fetched = TokenMsg::Fetched {
            key,
            refresh,
            started,
            result,
        };
        if to.cast(fetched).is_err() {
            tokens.mailbox.undelivered();
        }
    });
}

/// Asks whichever token actor runs at `at` to refresh `key`.
fn schedule_refresh(tokens: &Arc<Tokens>, key: CacheKey, at: Instant) {
    let tokens = Arc::downgrade(tokens);
    tokio::spawn(async move {
        tokio::time::sleep_until(at).await;
        let Some(tokens) = tokens.upgrade() else {
            return;
        };
        if let Some(actor) = tokens.actor() {
            tokens.mailbox.enqueued();
            if actor.cast(TokenMsg::Refresh(key)).is_err() {
                tokens.mailbox.undelivered();
            }
        }
    });
}
