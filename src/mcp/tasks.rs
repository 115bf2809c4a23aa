//! The tasks extension (SEP-2663, `io.modelcontextprotocol/tasks`) through
//! the gateway.
//!
//! - An upstream that advertises the extension gets it declared on each
//!   forwarded request whose client declared it (`_meta` client
//!   capabilities, SEP-2575), never on the shared upstream session: a client
//!   that cannot poll a task never gets one.
//! - A `CreateTaskResult` from upstream `S` with task id `T` reaches the
//!   client as `S__T` and is recorded in [`Tasks`] with the caller that
//!   created it, so two upstreams' ids cannot collide and only that caller
//!   may get, update or cancel it (anyone else: -32602, as for an unknown id).
//! - `tasks/get` results pass the output guardrails like any tool result
//!   (the creating call's redactions restored); `tasks/update` answers pass
//!   the input guardrails.
//! - The extension is advertised when an upstream the caller may use
//!   supports it ([`GatewayHandler::tasks_visible`]).
//!
//! Records live in memory: a task must be polled through the gateway
//! process that created it, like a parked multi round-trip call.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bulwark_actors::guardrail::{InputKind, Redactions};
use rmcp::model::{
    CallToolResult, CancelTaskParams, ClientCapabilities, ClientRequest, CreateTaskResult,
    GetTaskParams, GetTaskResult, Request, RequestMetaObject, ServerResult, TASKS_EXTENSION_ID,
    TaskPayload, UpdateTaskParams,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};
use tokio::time::Instant;

use super::error::GatewayError;
use super::guard;
use super::handler::GatewayHandler;
use crate::auth::identity::Identity;

/// How long a task without a `ttlMs` (unlimited upstream) stays routable.
const UNLIMITED_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// Most tasks recorded at once; past it the oldest expiring one is forgotten.
const MAX_TASKS: usize = 65_536;

/// One task created through the gateway.
#[derive(Clone)]
struct Record {
    server: Arc<str>,
    upstream_id: String,
    /// The caller that created it (project and credential).
    owner: String,
    /// The creating call's redactions, restored in the task's result.
    redactions: Redactions,
    expires: Instant,
}

/// The tasks created through this gateway process, by client-facing id.
#[derive(Default)]
pub struct Tasks {
    records: Mutex<HashMap<String, Record>>,
}

fn owner(identity: &Identity) -> String {
    format!("{}\u{0}{}", identity.project, identity.subject)
}

fn unknown(task_id: &str) -> ErrorData {
    ErrorData::invalid_params(format!("unknown task '{task_id}'"), None)
}

impl Tasks {
    fn insert(&self, id: String, record: Record) {
        let Ok(mut records) = self.records.lock() else {
            return;
        };
        let now = Instant::now();
        records.retain(|_, record| record.expires > now);
        if records.len() >= MAX_TASKS
            && let Some(oldest) = records
                .iter()
                .min_by_key(|(_, record)| record.expires)
                .map(|(id, _)| id.clone())
        {
            records.remove(&oldest);
        }
        records.insert(id, record);
    }

    fn get(&self, id: &str, identity: &Identity) -> Result<Record, ErrorData> {
        let records = self
            .records
            .lock()
            .map_err(|_| ErrorData::internal_error("task records unavailable", None))?;
        records
            .get(id)
            .filter(|record| record.expires > Instant::now() && record.owner == owner(identity))
            .cloned()
            .ok_or_else(|| unknown(id))
    }
}

/// Whether an upstream's advertised capabilities include the extension.
pub fn upstream_supports(server: &str, gateway: &super::Gateway) -> bool {
    gateway
        .registry
        .get(server)
        .and_then(|entry| entry.pool.any_link())
        .and_then(|link| link.peer_info())
        .is_some_and(|info| info.capabilities.supports_tasks())
}

/// Declares the extension on a request to an upstream, next to the
/// capabilities the gateway's upstream session declared.
pub fn declare(meta: &mut RequestMetaObject) {
    let mut capabilities = bulwark_actors::upstream::client_capabilities();
    capabilities
        .extensions
        .get_or_insert_default()
        .insert(TASKS_EXTENSION_ID.to_owned(), serde_json::Map::new());
    meta.set_client_capabilities(capabilities);
}

/// Whether the client of `context` declared the extension (session or request).
pub fn client_declared(context: &RequestContext<RoleServer>) -> bool {
    context
        .client_capabilities()
        .is_some_and(|caps: ClientCapabilities| caps.supports_tasks())
}

impl GatewayHandler {
    /// Whether the extension is to be advertised to this session's caller:
    /// an upstream it may use supports it.
    pub(super) fn tasks_visible(&self, identity: Option<&Identity>) -> bool {
        let Some(identity) = identity else {
            return false;
        };
        self.visible_servers(identity)
            .iter()
            .any(|server| upstream_supports(server, self.gateway()))
    }

    /// Records a task `server` created for this caller; the client sees it
    /// under the namespaced id.
    pub(super) fn task_created(
        &self,
        server: &str,
        mut created: CreateTaskResult,
        redactions: Redactions,
        context: &RequestContext<RoleServer>,
    ) -> Result<CreateTaskResult, ErrorData> {
        let identity = self.access().caller(context)?;
        let upstream_id = std::mem::take(&mut created.task.task_id);
        let id = self.gateway().naming.join(server, &upstream_id);
        let ttl = created
            .task
            .ttl_ms
            .map_or(UNLIMITED_TTL, Duration::from_millis)
            .min(UNLIMITED_TTL);
        self.gateway().tasks.insert(
            id.clone(),
            Record {
                server: Arc::from(server),
                upstream_id,
                owner: owner(&identity),
                redactions,
                // Room for the upstream's retention past the TTL.
                expires: Instant::now() + ttl.saturating_mul(2),
            },
        );
        created.task.task_id = id;
        Ok(created)
    }

    /// `tasks/get`, `tasks/update` or `tasks/cancel` of a task created here,
    /// sent to its upstream under the upstream's id.
    async fn task_request(
        &self,
        task_id: &str,
        context: &RequestContext<RoleServer>,
        request: impl FnOnce(String, RequestMetaObject) -> ClientRequest,
    ) -> Result<(Record, ServerResult), ErrorData> {
        let identity = self.access().caller(context)?;
        let record = self.gateway().tasks.get(task_id, &identity)?;
        self.access()
            .authorize(&identity, &record.server, None)
            .await?;
        let mut meta = RequestMetaObject::default();
        declare(&mut meta);
        let request = request(record.upstream_id.clone(), meta);
        let result = self.forward(&record.server, request, context).await?;
        Ok((record, result))
    }

    /// `tasks/get`: the upstream's task under the client's id, its result
    /// through the output guardrails.
    pub(super) async fn get_task_checked(
        &self,
        request: GetTaskParams,
        context: &RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, ErrorData> {
        let (record, result) = self
            .task_request(&request.task_id, context, |upstream_id, meta| {
                let mut params = GetTaskParams::new(upstream_id);
                params.meta = Some(meta);
                ClientRequest::GetTaskRequest(Request::new(params))
            })
            .await?;
        let ServerResult::GetTaskResult(mut result) = result else {
            return Err(GatewayError::UnexpectedResult(record.server.to_string()).into());
        };
        result.task.task.task_id = request.task_id;
        if let TaskPayload::Completed { result: done } = &mut result.task.payload {
            let parsed: CallToolResult =
                serde_json::from_value(serde_json::Value::Object(std::mem::take(done)))
                    .map_err(|err| GatewayError::Internal(format!("task result: {err}")))?;
            let checked = guard::tool_output(
                &self.gateway().guardrails,
                &record.server,
                parsed,
                &record.redactions,
            )
            .await?;
            if let Ok(serde_json::Value::Object(object)) = serde_json::to_value(checked) {
                *done = object;
            }
        }
        Ok(result)
    }

    /// `tasks/update`: the answers through the input guardrails, then upstream.
    pub(super) async fn update_task_checked(
        &self,
        mut request: UpdateTaskParams,
        context: &RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let identity = self.access().caller(context)?;
        let record = self.gateway().tasks.get(&request.task_id, &identity)?;
        let mut answers = Some(
            request
                .input_responses
                .into_iter()
                .collect::<serde_json::Map<_, _>>(),
        );
        guard::arguments(
            &self.gateway().guardrails,
            &record.server,
            InputKind::ToolArguments,
            &mut answers,
        )
        .await?;
        request.input_responses = answers.unwrap_or_default().into_iter().collect();
        self.task_request(&request.task_id, context, |upstream_id, meta| {
            let mut params = request.clone();
            params.task_id = upstream_id;
            params.meta = Some(meta);
            ClientRequest::UpdateTaskRequest(Request::new(params))
        })
        .await
        .map(drop)
    }

    /// `tasks/cancel`.
    pub(super) async fn cancel_task_checked(
        &self,
        request: CancelTaskParams,
        context: &RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.task_request(&request.task_id, context, |upstream_id, meta| {
            let mut params = CancelTaskParams::new(upstream_id);
            params.meta = Some(meta);
            ClientRequest::CancelTaskRequest(Request::new(params))
        })
        .await
        .map(drop)
    }
}
