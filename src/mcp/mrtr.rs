//! Multi round-trip requests (SEP-2322) bridged for stateless clients.
//!
//! A 2025 upstream asks for sampling, elicitation or roots with a
//! server→client request in the middle of a call; a stateless (2026-07-28)
//! client cannot receive one. For such a client the gateway runs the upstream
//! call in the request's task until it first asks, then in a task of its
//! own, gathers the requests the upstream sends (those
//! arriving within [`GATHER`] of each other make one round), answers the
//! client with an `input_required` result carrying them and a sealed
//! `requestState` ([`state`]), and parks the call. The client's retry with
//! `inputResponses` and that state resumes it: each answer goes upstream as
//! the reply to its request, and the gateway waits again for the result or
//! the next round. An answer left out is asked for again.
//!
//! Bounds: a parked call waits at most [`PARK_TTL`] for its retry, at most
//! [`MAX_PARKED`] calls are parked at once (past that a call is refused
//! instead of parked), and the upstream call keeps its own deadline. A call
//! dropped for any of these reasons is cancelled upstream and its pending
//! requests answered with an error.
//!
//! Requests pass the guardrails as they do for session clients
//! ([`super::caller`]): the upstream's request as output, the client's answer
//! as input.
// Sampling and roots are deprecated by SEP-2577; clients still use them.
#![allow(deprecated)]
pub mod state;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bulwark_actors::guardrail::Guardrails;
use bulwark_actors::upstream::{Caller, UpstreamRequestMeta};
use futures::FutureExt;
use futures::future::BoxFuture;
use rmcp::RoleServer;
use rmcp::model::{
    ClientCapabilities, ClientRequest, ClientResult, CreateMessageResult, ElicitResult, ErrorData,
    GetExtensions, GetMeta, InputRequest, InputRequests, InputRequiredResult, InputResponses,
    ListRootsResult, ProgressToken, ProtocolVersion, ServerNotification, ServerRequest,
    ServerResult,
};
use rmcp::service::RequestContext;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::caller::{SessionCaller, screen_answer, screen_output};
use super::error::GatewayError;
use state::{StateSeal, Ticket};

/// `_meta` key by which an upstream names the input key of a server→client
/// request; without it the gateway names it `sampling-1`, `elicitation-2`, ….
pub const INPUT_KEY_META: &str = "io.bulwark/inputKey";
/// How long a parked call waits for the client's retry.
pub const PARK_TTL: Duration = Duration::from_secs(300);
/// Most calls parked at once.
pub const MAX_PARKED: usize = 4096;
/// How long after an upstream request the gateway waits for more before
/// answering the client: requests sent together make one round.
pub const GATHER: Duration = Duration::from_millis(50);
/// Most requests one round may carry.
const MAX_ASKS: usize = 64;

/// Whether the client of `context` is stateless (2026-07-28 or later).
pub fn is_stateless(context: &RequestContext<RoleServer>) -> bool {
    context
        .protocol_version()
        .is_some_and(|v| v.as_str() >= ProtocolVersion::V_2026_07_28.as_str())
}

/// What a retry must match: the caller (its parts, e.g. project, subject
/// and server; none for an anonymous one) and the request the state was
/// issued for. `None` for requests that cannot take an `input_required`
/// result. Parts are joined by NUL, which no name holds.
pub fn binding(request: &ClientRequest, caller: &[&str]) -> Option<Vec<u8>> {
    let (method, target) = match request {
        ClientRequest::CallToolRequest(r) => ("tools/call", r.params.name.as_ref()),
        ClientRequest::GetPromptRequest(r) => ("prompts/get", r.params.name.as_str()),
        ClientRequest::ReadResourceRequest(r) => ("resources/read", r.params.uri.as_str()),
        _ => return None,
    };
    // Each caller part and its NUL (at least the one before the method),
    // the method, a NUL and the target.
    let size = caller
        .iter()
        .map(|part| part.len() + 1)
        .sum::<usize>()
        .max(1)
        + method.len()
        + 1
        + target.len();
    let mut out = Vec::with_capacity(size);
    for (i, part) in caller.iter().enumerate() {
        if i > 0 {
            out.push(0);
        }
        out.extend_from_slice(part.as_bytes());
    }
    for part in [method, target] {
        out.push(0);
        out.extend_from_slice(part.as_bytes());
    }
    Some(out)
}

/// Takes the gateway's own `requestState` and the answers out of `request`;
/// `None` when it carries no state of the gateway's (a first call, or an
/// upstream's own state, which passes through).
pub fn take_retry(request: &mut ClientRequest) -> Option<(String, InputResponses)> {
    let (state, responses) = match request {
        ClientRequest::CallToolRequest(r) => {
            (&mut r.params.request_state, &mut r.params.input_responses)
        }
        ClientRequest::GetPromptRequest(r) => {
            (&mut r.params.request_state, &mut r.params.input_responses)
        }
        ClientRequest::ReadResourceRequest(r) => {
            (&mut r.params.request_state, &mut r.params.input_responses)
        }
        _ => return None,
    };
    if !state
        .as_deref()
        .is_some_and(|s| s.starts_with(state::PREFIX))
    {
        // A first call: answers without a state answer nothing parked here.
        if state.is_none() {
            *responses = None;
        }
        return None;
    }
    Some((state.take()?, responses.take().unwrap_or_default()))
}

/// An upstream request waiting for the client's answer.
struct Asked {
    key: String,
    request: InputRequest,
    reply: oneshot::Sender<Value>,
}

/// What the upstream side of a bridged call reports.
enum Event {
    /// The upstream asked for input.
    Asked(Asked),
    /// The call ended.
    Done(Result<ServerResult, GatewayError>),
}

/// A bridged call between rounds or in one.
struct Call {
    events: mpsc::Receiver<Event>,
    /// Requests the client has been shown but not answered.
    asked: Vec<Asked>,
    /// Cancels the upstream call when the call is dropped.
    _cancel: DropGuard,
}

struct Parked {
    call: Call,
    round: u32,
    expires: Instant,
}

/// The parked calls of the gateway.
pub struct Bridge {
    seal: Option<StateSeal>,
    parked: Mutex<HashMap<u128, Parked>>,
    reaper: std::sync::Once,
}

impl Default for Bridge {
    fn default() -> Self {
        let seal = StateSeal::generate();
        if seal.is_none() {
            tracing::error!("no randomness for requestState keys: input requests are not bridged");
        }
        Self {
            seal,
            parked: Mutex::default(),
            reaper: std::sync::Once::new(),
        }
    }
}

impl Bridge {
    /// Whether bridging is available at all.
    pub fn enabled(&self) -> bool {
        self.seal.is_some()
    }

    /// A caller for a new bridged call and the call's channel; `start` runs
    /// the upstream call with that caller until it ends or `cancel` fires.
    pub fn caller(
        &self,
        inner: Arc<SessionCaller>,
        client: ClientCapabilities,
    ) -> (Arc<BridgeCaller>, CallStart) {
        let (tx, events) = mpsc::channel(MAX_ASKS);
        let cancel = CancellationToken::new();
        let caller = Arc::new(BridgeCaller {
            guardrails: inner.guardrails.clone(),
            server: inner.server.clone(),
            inner,
            client,
            events: tx.clone(),
            numbered: AtomicU32::new(0),
        });
        let start = CallStart { tx, events, cancel };
        (caller, start)
    }

    /// Runs a new bridged call: `call` is the upstream call made with the
    /// caller from [`Self::caller`].
    ///
    /// The call runs in the request's own task until it ends or first asks
    /// for input: most calls ask nothing, and a task of their own cost a
    /// hand-off each way (a thread wake-up on an idle machine). Only a call
    /// that asks moves to a task, since it may outlive this request parked.
    pub async fn start(
        self: &Arc<Self>,
        start: CallStart,
        mut call: BoxFuture<'static, Result<ServerResult, GatewayError>>,
        binding: &[u8],
        client: &CancellationToken,
    ) -> Result<ServerResult, GatewayError> {
        let CallStart {
            tx,
            mut events,
            cancel,
        } = start;
        let cancel = cancel.drop_guard();
        // Until it asks, the call runs here. Dropped unfinished (the client
        // went away, or its request was dropped), it is withdrawn upstream
        // by the upstream link, as any call dropped mid-way is.
        let first = tokio::select! {
            result = &mut call => return result,
            event = events.recv() => event,
            () = client.cancelled() => {
                return Err(GatewayError::InputBridge("the client went away".into()));
            }
        };
        // Only the task spawned below sends `Done`, and `tx` is held here,
        // so nothing but a request can come first.
        let Some(Event::Asked(asked)) = first else {
            return Err(GatewayError::Internal(
                "a bridged call ended without a result".into(),
            ));
        };
        tokio::spawn(async move {
            let result = call.await;
            let _ = tx.send(Event::Done(result)).await;
        });
        let call = Call {
            events,
            asked: vec![asked],
            _cancel: cancel,
        };
        let gather_until = Instant::now() + GATHER;
        self.round(call, 0, Some(gather_until), binding, client)
            .await
    }

    /// Resumes the call `state` names with the client's `responses`.
    pub async fn resume(
        self: &Arc<Self>,
        state: &str,
        mut responses: InputResponses,
        binding: &[u8],
        client: &CancellationToken,
    ) -> Result<ServerResult, GatewayError> {
        let invalid = |why: &str| GatewayError::InvalidState(format!("requestState {why}"));
        let seal = self
            .seal
            .as_ref()
            .ok_or_else(|| invalid("is not accepted"))?;
        let ticket = seal
            .open(state, binding)
            .ok_or_else(|| invalid("failed its integrity check"))?;
        let parked = {
            let mut parked = self.lock();
            match parked.get(&ticket.id) {
                Some(entry) if entry.round == ticket.round => parked.remove(&ticket.id),
                Some(_) => return Err(invalid("belongs to an earlier round")),
                None => None,
            }
        };
        let Some(Parked {
            mut call, round, ..
        }) = parked
        else {
            return Err(invalid("names no waiting call (expired or already used)"));
        };
        let mut unanswered = Vec::new();
        for asked in call.asked.drain(..) {
            match responses.remove(&asked.key) {
                // The upstream task may be gone; its call then ends anyway.
                Some(answer) => {
                    let _ = asked.reply.send(answer);
                }
                None => unanswered.push(asked),
            }
        }
        call.asked = unanswered;
        // Requests left unanswered are asked again at once.
        let gather_until = (!call.asked.is_empty()).then(Instant::now);
        self.round(call, round.saturating_add(1), gather_until, binding, client)
            .await
    }

    /// Waits for the call's result, or for its next requests and parks it:
    /// at `gather_until` when requests are waiting, else [`GATHER`] after
    /// the next one.
    async fn round(
        self: &Arc<Self>,
        mut call: Call,
        round: u32,
        mut gather_until: Option<Instant>,
        binding: &[u8],
        client: &CancellationToken,
    ) -> Result<ServerResult, GatewayError> {
        loop {
            let gathered = async {
                match gather_until {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                event = call.events.recv() => match event {
                    Some(Event::Asked(asked)) => {
                        call.asked.push(asked);
                        gather_until = Some(Instant::now() + GATHER);
                    }
                    Some(Event::Done(result)) => return result,
                    None => return Err(GatewayError::Internal("a bridged call ended without a result".into())),
                },
                () = gathered => return self.park(call, round, binding),
                () = client.cancelled() => {
                    return Err(GatewayError::InputBridge("the client went away".into()));
                }
            }
        }
    }

    /// Parks `call` and answers the client with its requests.
    fn park(
        self: &Arc<Self>,
        call: Call,
        round: u32,
        binding: &[u8],
    ) -> Result<ServerResult, GatewayError> {
        let seal = (self.seal.as_ref())
            .ok_or_else(|| GatewayError::Internal("no requestState key".into()))?;
        let id = seal
            .new_id()
            .ok_or_else(|| GatewayError::Internal("no randomness".into()))?;
        let ticket = Ticket { id, round };
        let state = seal
            .seal(ticket, binding)
            .ok_or_else(|| GatewayError::Internal("sealing failed".into()))?;
        let requests: InputRequests = call
            .asked
            .iter()
            .map(|asked| (asked.key.clone(), asked.request.clone()))
            .collect();
        {
            let mut parked = self.lock();
            let now = Instant::now();
            parked.retain(|_, entry| entry.expires > now);
            if parked.len() >= MAX_PARKED {
                return Err(GatewayError::InputBridge(format!(
                    "too many calls wait for client input (at most {MAX_PARKED})"
                )));
            }
            parked.insert(
                id,
                Parked {
                    call,
                    round,
                    expires: now + PARK_TTL,
                },
            );
        }
        self.start_reaper();
        Ok(ServerResult::InputRequiredResult(InputRequiredResult::new(
            Some(requests),
            Some(state),
        )))
    }

    /// Drops expired parked calls every second, for as long as the bridge lives.
    fn start_reaper(self: &Arc<Self>) {
        let bridge: Weak<Self> = Arc::downgrade(self);
        self.reaper.call_once(|| {
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tick.tick().await;
                    let Some(bridge) = bridge.upgrade() else {
                        return;
                    };
                    let now = Instant::now();
                    // Dropped outside the lock: dropping cancels upstream calls.
                    let expired: Vec<Parked> = {
                        let mut parked = bridge.lock();
                        let ids: Vec<u128> = (parked.iter())
                            .filter(|(_, entry)| entry.expires <= now)
                            .map(|(id, _)| *id)
                            .collect();
                        ids.iter().filter_map(|id| parked.remove(id)).collect()
                    };
                    if !expired.is_empty() {
                        tracing::info!(
                            count = expired.len(),
                            "parked calls expired waiting for client input"
                        );
                    }
                }
            });
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u128, Parked>> {
        self.parked.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Calls parked now.
    pub fn parked(&self) -> usize {
        self.lock().len()
    }
}

/// The pieces of a new bridged call, from [`Bridge::caller`] to [`Bridge::start`].
pub struct CallStart {
    tx: mpsc::Sender<Event>,
    events: mpsc::Receiver<Event>,
    cancel: CancellationToken,
}

impl CallStart {
    /// Cancelled when the bridged call is dropped: the upstream call's token.
    pub fn cancel(&self) -> CancellationToken {
        self.cancel.clone()
    }
}

/// The [`Caller`] of a bridged call: server→client requests become input
/// requests of the next round; notifications go the way of a session call.
pub struct BridgeCaller {
    inner: Arc<SessionCaller>,
    client: ClientCapabilities,
    events: mpsc::Sender<Event>,
    guardrails: Guardrails,
    server: Arc<str>,
    numbered: AtomicU32,
}

impl BridgeCaller {
    /// The key of `request`: the upstream's ([`INPUT_KEY_META`] in its
    /// `_meta`), else a numbered one.
    fn key(&self, request: &ServerRequest, kind: &str) -> String {
        let sent = request.extensions().get::<UpstreamRequestMeta>();
        let wire = serde_json::to_value(request).unwrap_or_default();
        let named = (sent.and_then(|meta| meta.0.get(INPUT_KEY_META)))
            .or_else(|| request.get_meta().get(INPUT_KEY_META))
            .or_else(|| {
                wire.pointer(&format!(
                    "/params/_meta/{}",
                    INPUT_KEY_META.replace('/', "~1")
                ))
            })
            .and_then(Value::as_str)
            .filter(|key| !key.is_empty() && key.len() <= 128);
        match named {
            Some(key) => key.to_owned(),
            None => format!(
                "{kind}-{}",
                self.numbered
                    .fetch_add(1, Ordering::Relaxed)
                    .saturating_add(1)
            ),
        }
    }
}

impl Caller for BridgeCaller {
    fn request(
        &self,
        request: ServerRequest,
    ) -> BoxFuture<'static, Result<ClientResult, ErrorData>> {
        let (kind, declared, required) = match &request {
            ServerRequest::CreateMessageRequest(_) => (
                "sampling",
                self.client.sampling.is_some(),
                serde_json::json!({ "sampling": {} }),
            ),
            ServerRequest::ElicitRequest(_) => (
                "elicitation",
                self.client.elicitation.is_some(),
                serde_json::json!({ "elicitation": {} }),
            ),
            ServerRequest::ListRootsRequest(_) => (
                "roots",
                self.client.roots.is_some(),
                serde_json::json!({ "roots": {} }),
            ),
            ServerRequest::PingRequest(_) => {
                return async { Ok(ClientResult::empty(())) }.boxed();
            }
            _ => {
                return async {
                    Err(ErrorData::new(
                        rmcp::model::ErrorCode::METHOD_NOT_FOUND,
                        "a stateless client takes no such request",
                        None,
                    ))
                }
                .boxed();
            }
        };
        if !declared {
            let required = serde_json::from_value(required).unwrap_or_default();
            return async move { Err(ErrorData::missing_required_client_capability(required)) }
                .boxed();
        }
        let key = self.key(&request, kind);
        let events = self.events.clone();
        let (guardrails, server) = (self.guardrails.clone(), self.server.clone());
        async move {
            let extensions = request.extensions().clone();
            let mut request: ServerRequest = screen_output(&guardrails, &server, request).await?;
            *request.extensions_mut() = extensions;
            let request = match request {
                ServerRequest::CreateMessageRequest(r) => InputRequest::CreateMessage(r),
                ServerRequest::ElicitRequest(r) => InputRequest::Elicitation(r),
                ServerRequest::ListRootsRequest(r) => InputRequest::ListRoots(r),
                _ => return Err(ErrorData::internal_error("unexpected request kind", None)),
            };
            let (reply, answer) = oneshot::channel();
            let asked = Asked {
                key,
                request,
                reply,
            };
            events
                .send(Event::Asked(asked))
                .await
                .map_err(|_| ErrorData::internal_error("the call ended", None))?;
            let answer = answer.await.map_err(|_| {
                ErrorData::internal_error("the client did not answer in time", None)
            })?;
            let answer = client_result(kind, answer)?;
            screen_answer(&guardrails, &server, answer).await
        }
        .boxed()
    }

    fn notify(&self, notification: ServerNotification) -> BoxFuture<'static, ()> {
        self.inner.notify(notification)
    }

    fn progress_token(&self) -> Option<ProgressToken> {
        self.inner.progress_token()
    }

    fn tenant(&self) -> Option<Arc<str>> {
        self.inner.tenant()
    }
}

/// The client's answer to a `kind` request, read as that kind's result.
fn client_result(kind: &str, answer: Value) -> Result<ClientResult, ErrorData> {
    let invalid = |err: serde_json::Error| {
        ErrorData::invalid_params(format!("inputResponses: not a {kind} result: {err}"), None)
    };
    Ok(match kind {
        "sampling" => ClientResult::CreateMessageResult(Box::new(
            serde_json::from_value::<CreateMessageResult>(answer).map_err(invalid)?,
        )),
        "elicitation" => ClientResult::ElicitResult(
            serde_json::from_value::<ElicitResult>(answer).map_err(invalid)?,
        ),
        _ => ClientResult::ListRootsResult(
            serde_json::from_value::<ListRootsResult>(answer).map_err(invalid)?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use rmcp::model::{CallToolRequestParams, ListToolsRequest, Request};

    use super::*;

    fn call(name: &'static str) -> ClientRequest {
        ClientRequest::CallToolRequest(Request::new(CallToolRequestParams::new(name)))
    }

    #[test]
    fn a_binding_names_the_caller_and_the_request_and_nothing_else() {
        let bound = binding(&call("echo"), &["proj", "key-1", "srv"]).unwrap();
        assert_eq!(bound, b"proj\0key-1\0srv\0tools/call\0echo");
        assert_eq!(binding(&call("echo"), &[]).unwrap(), b"\0tools/call\0echo");
        // Another caller or another tool is another binding.
        assert_ne!(
            binding(&call("echo"), &["proj", "key-2", "srv"]).unwrap(),
            bound
        );
        assert_ne!(
            binding(&call("echo2"), &["proj", "key-1", "srv"]).unwrap(),
            bound
        );
        let list = ClientRequest::ListToolsRequest(ListToolsRequest::default());
        assert!(binding(&list, &["proj"]).is_none());
    }
}
