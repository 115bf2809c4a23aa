//! The tasks extension fixtures (SEP-2663, `io.modelcontextprotocol/tasks`)
//! the conformance suite's `tasks-*` scenarios call, run by rmcp's
//! [`TaskManager`]. A task-supporting tool becomes a task only for a request
//! that declared the extension; otherwise it runs synchronously, or, when
//! the tool requires a task, fails with -32021.
//!
//! A task created over a session (a 2025 peer: a gateway's upstream session,
//! say) also pushes its terminal state to that session as a
//! `notifications/tasks` once it settles ([`notify_when_settled`]). The
//! extension routes these over `subscriptions/listen` (`taskIds`), which
//! rmcp does not serve yet, so stateless clients only poll.

use std::time::Duration;

use rmcp::{
    ErrorData as McpError, Peer, RoleServer,
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, CancelTaskParams,
        ClientCapabilities, ContentBlock, CreateTaskResult, GetTaskParams, GetTaskResult,
        InputRequest, Notification, ServerNotification, TaskStatusNotificationParams,
        UpdateTaskParams,
    },
    service::RequestContext,
    task_manager::{TaskContext, TaskExit, TaskFuture, TaskManager, TaskOptions},
};
use serde_json::{Value, json};

use super::input_required::{ask_elicit, elicited, field, input_required};
use crate::demo::common::{arguments, from_json, text_result};

/// How the fixture tools take part in tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Support {
    /// A task when the request declared the extension, else synchronous.
    Optional,
    /// Only as a task: -32021 without the extension.
    Required,
}

/// Definitions of the task fixtures, appended to `tools/list`.
pub fn tools() -> Vec<Value> {
    let object = |properties: Value| json!({ "type": "object", "properties": properties });
    vec![
        json!({ "name": "greet", "description": "Greets synchronously",
                "inputSchema": object(json!({ "name": { "type": "string" } })) }),
        json!({ "name": "slow_compute", "description": "Sleeps `seconds` then answers (task-supporting)",
                "inputSchema": object(json!({ "seconds": { "type": "number" }, "label": { "type": "string" } })) }),
        json!({ "name": "failing_job", "description": "Fails as a tool after a second (task required)",
                "inputSchema": object(json!({})) }),
        json!({ "name": "protocol_error_job", "description": "Fails with a protocol error (task-supporting)",
                "inputSchema": object(json!({})) }),
        json!({ "name": "confirm_delete", "description": "Asks for confirmation inside its task",
                "inputSchema": object(json!({ "filename": { "type": "string" } })) }),
        json!({ "name": "multi_input", "description": "Asks two questions at once inside its task",
                "inputSchema": object(json!({})) }),
        json!({ "name": "test_tool_with_task", "description": "Asks a name, then answers as a task (task required)",
                "inputSchema": object(json!({})) }),
    ]
}

/// The running tasks of one server (clones share them).
#[derive(Clone, Default)]
pub struct Tasks {
    manager: TaskManager,
}

impl std::fmt::Debug for Tasks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tasks").finish_non_exhaustive()
    }
}

impl Tasks {
    /// The answer to a `tools/call` of a task fixture; `None` for other tools.
    pub fn call(
        &self,
        request: &CallToolRequestParams,
        context: &RequestContext<RoleServer>,
    ) -> Option<Result<CallToolResponse, McpError>> {
        let args = arguments(request);
        let support = match request.name.as_ref() {
            "greet" => {
                let name = args.get("name").and_then(Value::as_str).unwrap_or("World");
                return Some(Ok(text_result(format!("Hello, {name}!")).into()));
            }
            "failing_job" | "test_tool_with_task" => Support::Required,
            "slow_compute" | "protocol_error_job" | "confirm_delete" | "multi_input" => {
                Support::Optional
            }
            _ => return None,
        };
        let declared = context
            .client_capabilities()
            .is_some_and(|caps| caps.supports_tasks());
        if !declared && support == Support::Required {
            return Some(Err(McpError::missing_required_client_capability(
                ClientCapabilities::builder().enable_tasks().build(),
            )));
        }
        if !declared {
            // No task handle for a client that cannot poll one.
            return Some(sync_fallback(&request.name, &args));
        }
        let future = match request.name.as_ref() {
            "slow_compute" => slow_compute(&args),
            "failing_job" => Box::new(|_| -> TaskFuture {
                Box::pin(async {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    Ok(CallToolResult::error(vec![ContentBlock::text(
                        "failing_job failed",
                    )]))
                })
            }),
            "protocol_error_job" => Box::new(|_| -> TaskFuture {
                Box::pin(async {
                    Err(TaskExit::Error(McpError::internal_error(
                        "protocol_error_job crashed",
                        None,
                    )))
                })
            }),
            "confirm_delete" => confirm_delete(&args),
            "multi_input" => Box::new(|context| -> TaskFuture { Box::pin(multi_input(context)) }),
            "test_tool_with_task" => match greeting_after_input(request) {
                Ok(future) => future,
                Err(asked) => return Some(*asked),
            },
            _ => return None,
        };
        let session = !crate::mcp::mrtr::is_stateless(context);
        let (future, settled) = if session {
            let (settled, done) = tokio::sync::oneshot::channel();
            (announcing(future, settled), Some(done))
        } else {
            (future, None)
        };
        let task = self.manager.spawn(TaskOptions::new(), future);
        if let Some(done) = settled {
            let (manager, peer, id) = (
                self.manager.clone(),
                context.peer.clone(),
                task.task_id.clone(),
            );
            tokio::spawn(notify_when_settled(manager, peer, id, done));
        }
        Some(Ok(CallToolResponse::Task(CreateTaskResult::new(task))))
    }

    /// `tasks/get`.
    pub fn get(&self, request: &GetTaskParams) -> Result<GetTaskResult, McpError> {
        self.manager
            .get_task(&request.task_id)
            .map(GetTaskResult::new)
    }

    /// `tasks/update`.
    pub fn update(&self, request: UpdateTaskParams) -> Result<(), McpError> {
        self.manager
            .update_task(&request.task_id, request.input_responses)
    }

    /// `tasks/cancel`.
    pub fn cancel(&self, request: &CancelTaskParams) -> Result<(), McpError> {
        self.manager.cancel_task(&request.task_id)
    }
}

type MakeTask = Box<dyn FnOnce(TaskContext) -> TaskFuture + Send>;

/// `make`, saying on `settled` when its operation has returned (or was dropped).
fn announcing(make: MakeTask, settled: tokio::sync::oneshot::Sender<()>) -> MakeTask {
    Box::new(move |context| -> TaskFuture {
        let future = make(context);
        Box::pin(async move {
            let outcome = future.await;
            let _ = settled.send(());
            outcome
        })
    })
}

/// Most times the settled task's state is looked at before giving up.
const SETTLE_LOOKS: usize = 1000;

/// Sends task `id`'s terminal state to `peer` once its operation returned:
/// the task manager records it right after, so the state is looked at
/// (yielding in between) until it is terminal, as `tasks/get` would show it.
async fn notify_when_settled(
    manager: TaskManager,
    peer: Peer<RoleServer>,
    id: String,
    done: tokio::sync::oneshot::Receiver<()>,
) {
    let _ = done.await;
    for _ in 0..SETTLE_LOOKS {
        let Ok(task) = manager.get_task(&id) else {
            return;
        };
        if task.status().is_terminal() {
            let status = ServerNotification::TaskStatusNotification(Notification::new(
                TaskStatusNotificationParams::new(task),
            ));
            // A session that went away misses it; its client polls.
            let _ = peer.send_notification(status).await;
            return;
        }
        tokio::task::yield_now().await;
    }
}

fn seconds(args: &rmcp::model::JsonObject) -> f64 {
    args.get("seconds")
        .and_then(Value::as_f64)
        .unwrap_or(1.0)
        .max(0.0)
}

fn slow_compute(args: &rmcp::model::JsonObject) -> MakeTask {
    let seconds = seconds(args);
    let label = args
        .get("label")
        .and_then(Value::as_str)
        .unwrap_or("job")
        .to_owned();
    Box::new(move |context| -> TaskFuture {
        Box::pin(async move {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs_f64(seconds)) => {
                    Ok(text_result(format!("computed {label} in {seconds}s")))
                }
                () = context.cancelled() => Err(TaskExit::Cancelled),
            }
        })
    })
}

fn elicit(message: &str, field_name: &str) -> Result<InputRequest, TaskExit> {
    let request = json!({ "method": "elicitation/create", "params": {
        "message": message,
        "requestedSchema": { "type": "object",
            "properties": { field_name: { "type": if field_name == "confirm" { "boolean" } else { "string" } } } } } });
    from_json(request).map_err(TaskExit::Error)
}

fn confirm_delete(args: &rmcp::model::JsonObject) -> MakeTask {
    let filename = args
        .get("filename")
        .and_then(Value::as_str)
        .unwrap_or("file")
        .to_owned();
    Box::new(move |context| -> TaskFuture {
        Box::pin(async move {
            let asked = elicit(&format!("Delete {filename}?"), "confirm")?;
            let answer = context.request_input("confirm", asked).await?;
            let accepted = answer["action"] == "accept";
            Ok(text_result(if accepted {
                format!("deleted {filename}")
            } else {
                format!("kept {filename}")
            }))
        })
    })
}

async fn multi_input(context: TaskContext) -> Result<CallToolResult, TaskExit> {
    let (first, second) = (
        elicit("First name?", "name")?,
        elicit("Confirm?", "confirm")?,
    );
    let (first, second) = tokio::join!(
        context.request_input("first", first),
        context.request_input("second", second)
    );
    let (first, second) = (first?, second?);
    Ok(text_result(format!(
        "answers: {} and {}",
        first["content"], second["content"]
    )))
}

/// `test_tool_with_task`: an `input_required` round for the user's name,
/// then a task that greets them. The early answer is boxed: it is rare
/// and large.
fn greeting_after_input(
    request: &CallToolRequestParams,
) -> Result<MakeTask, Box<Result<CallToolResponse, McpError>>> {
    let empty = rmcp::model::InputResponses::new();
    let responses = request.input_responses.as_ref().unwrap_or(&empty);
    let content = match elicited(responses, "user_name") {
        Err(err) => return Err(Box::new(Err(err))),
        Ok(None) => {
            let asked = json!({ "user_name": ask_elicit("What is your name?", "name", "string") });
            return Err(Box::new(input_required(asked, None).map(Into::into)));
        }
        Ok(Some(content)) => content,
    };
    let name = field(&content, "name");
    Ok(Box::new(move |_| -> TaskFuture {
        Box::pin(async move { Ok(text_result(format!("Hello, {name}!"))) })
    }))
}

/// A task-supporting tool run without a task.
fn sync_fallback(name: &str, args: &rmcp::model::JsonObject) -> Result<CallToolResponse, McpError> {
    match name {
        // Nobody could cancel it: a synchronous run skips the sleep.
        "slow_compute" => {
            let label = args.get("label").and_then(Value::as_str).unwrap_or("job");
            Ok(text_result(format!("computed {label} synchronously")).into())
        }
        "protocol_error_job" => Err(McpError::internal_error("protocol_error_job crashed", None)),
        // Asking for input mid-call needs the task surface.
        _ => Err(McpError::missing_required_client_capability(
            ClientCapabilities::builder().enable_tasks().build(),
        )),
    }
}
