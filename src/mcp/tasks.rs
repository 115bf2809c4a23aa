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
//!   (the creating call's redactions restored), and so do the upstream's
//!   requests of an `input_required` task, as a bridged call's do;
//!   `tasks/update` answers pass the input guardrails.
//! - The extension is advertised when an upstream the caller may use
//!   supports it ([`GatewayHandler::tasks_visible`]).
//! - An upstream's `notifications/tasks` reaches the session that created
//!   the task and no other ([`relay_status`]): under the client's id, a
//!   completed task's result through the output guardrails as in
//!   `tasks/get`. A result the guardrails block is not sent at all (a
//!   `completed` status must carry its result): the client's next
//!   `tasks/get` gets the block as an error. A notification for a task the
//!   gateway did not create here, or whose session is gone, is dropped.
//!
//! Stateless (2026-07-28) clients have no session to receive it on: the
//! extension delivers status notifications on a `subscriptions/listen`
//! stream naming the task ids (`notifications.taskIds`), which rmcp does
//! not implement yet (its listen filter has no task ids and its
//! subscription sink refuses `notifications/tasks`); they poll `tasks/get`,
//! which the extension requires clients to be ready to do anyway.
//!
//! Records live in memory: a task must be polled through the gateway
//! process that created it, like a parked multi round-trip call.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bulwark_actors::guardrail::{InputKind, Redactions};
use rmcp::model::{
    CallToolResult, CancelTaskParams, ClientCapabilities, ClientRequest, CreateTaskResult,
    DetailedTask, GetTaskParams, GetTaskResult, Notification, Request, RequestMetaObject,
    ServerNotification, ServerResult, TASKS_EXTENSION_ID, TaskPayload, TaskStatusNotification,
    TaskStatusNotificationParams, UpdateTaskParams,
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
    /// The client session that created it, which alone gets its status
    /// notifications; `None` for a stateless client (no session).
    session: Option<u64>,
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

    /// The live record of the task `server` knows as `upstream_id`, recorded
    /// under the client-facing `id` (the two joined): a record of another
    /// upstream under the same id is not it.
    fn of_upstream(&self, id: &str, server: &str, upstream_id: &str) -> Option<Record> {
        let records = self.records.lock().ok()?;
        records
            .get(id)
            .filter(|record| {
                record.expires > Instant::now()
                    && &*record.server == server
                    && record.upstream_id == upstream_id
            })
            .cloned()
    }
}

/// Most completed-task results being screened for status notifications at
/// once; past it a notification is dropped (the client polls `tasks/get`),
/// so an upstream flooding them cannot pile up work.
const MAX_SCREENING: usize = 64;

/// Status notifications whose completed results are being screened.
static SCREENING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_SCREENING);

/// Routes an upstream's `notifications/tasks` to the session that created
/// the task through this gateway (see the module documentation): under the
/// client's id, its result (completed) through the output guardrails with
/// the creating call's redactions restored, as `tasks/get` does.
pub fn relay_status(gateway: &Arc<super::Gateway>, server: &str, status: TaskStatusNotification) {
    let upstream_id = status.params.task.task.task_id.clone();
    let id = gateway.naming.join(server, &upstream_id);
    let Some(record) = gateway.tasks.of_upstream(&id, server, &upstream_id) else {
        tracing::debug!(
            server,
            "status notification of a task not created here dropped"
        );
        return;
    };
    let Some(session) = record.session else {
        // Its creator was stateless: it polls `tasks/get`.
        return;
    };
    let mut task = status.params.task;
    task.task.task_id = id;
    // The upstream's `_meta` may name its own ids: not passed on.
    if !needs_screening(&task.payload) {
        gateway
            .sessions
            .deliver_to(session, server, notification(task));
        return;
    }
    let Ok(permit) = SCREENING.try_acquire() else {
        tracing::debug!(
            server,
            "too many task results being screened; status notification dropped"
        );
        return;
    };
    let gateway = gateway.clone();
    let server: Arc<str> = Arc::from(server);
    tokio::spawn(async move {
        let _permit = permit;
        match screened_payload(&gateway, &record, &mut task.payload).await {
            Ok(()) => {
                gateway
                    .sessions
                    .deliver_to(session, &server, notification(task));
            }
            // A `completed` status without its result (or `input_required`
            // without its requests) is not a valid one: nothing is sent,
            // and `tasks/get` reports the block.
            Err(err) => tracing::info!(
                server = %server,
                error = %err.message,
                "task status blocked by the output guardrails; status notification withheld"
            ),
        }
    });
}

fn notification(task: DetailedTask) -> ServerNotification {
    ServerNotification::TaskStatusNotification(Notification::new(
        TaskStatusNotificationParams::new(task),
    ))
}

/// Whether a task status carries upstream content the guardrails check.
fn needs_screening(payload: &TaskPayload) -> bool {
    matches!(
        payload,
        TaskPayload::Completed { .. } | TaskPayload::InputRequired { .. }
    )
}

/// A task's status as the client may see it: a completed result through the
/// output guardrails with the creating call's redactions restored; the
/// upstream's requests of an `input_required` task through them as a
/// bridged call's requests are (nothing to restore: the text is the
/// upstream's own).
async fn screened_payload(
    gateway: &super::Gateway,
    record: &Record,
    payload: &mut TaskPayload,
) -> Result<(), ErrorData> {
    match payload {
        TaskPayload::Completed { result } => {
            *result = screened(gateway, record, std::mem::take(result)).await?;
        }
        TaskPayload::InputRequired { input_requests } => {
            *input_requests = super::caller::screen_output(
                &gateway.guardrails,
                &record.server,
                std::mem::take(input_requests),
            )
            .await?;
        }
        _ => {}
    }
    Ok(())
}

/// A completed task's result through the output guardrails, the creating
/// call's redactions restored: what the client may see of it.
async fn screened(
    gateway: &super::Gateway,
    record: &Record,
    done: serde_json::Map<String, serde_json::Value>,
) -> Result<serde_json::Map<String, serde_json::Value>, GatewayError> {
    let parsed: CallToolResult = serde_json::from_value(serde_json::Value::Object(done))
        .map_err(|err| GatewayError::Internal(format!("task result: {err}")))?;
    let checked = guard::tool_output(
        &gateway.guardrails,
        &record.server,
        parsed,
        &record.redactions,
    )
    .await?;
    match serde_json::to_value(checked) {
        Ok(serde_json::Value::Object(object)) => Ok(object),
        _ => Err(GatewayError::Internal("task result: not an object".into())),
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
                // A stateless client's session ends with this request.
                session: (!super::mrtr::is_stateless(context)).then(|| self.session_id()),
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
        screened_payload(self.gateway(), &record, &mut result.task.payload).await?;
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
