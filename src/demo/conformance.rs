//! The fixture the official MCP conformance suite's server scenarios expect
//! (`@modelcontextprotocol/conformance`): tools, resources, prompts,
//! completion, logging and subscriptions named exactly as the scenarios
//! require, for both the 2025-xx session protocol and the stateless
//! 2026-07-28 protocol (see [`input_required`]).
//!
//! Server→client traffic it generates (gateways must relay it):
//! - `test_sampling` sends `sampling/createMessage`, `test_elicitation*` send
//!   `elicitation/create`, both while the `tools/call` is pending;
//! - `test_tool_with_logging` sends three `notifications/message`;
//! - `test_tool_with_progress` sends three `notifications/progress`;
//! - `test_move_header_param` maps `test_header_param`'s `region` to the
//!   `Mcp-Param-Zone` header instead and announces `tools/list_changed`.
//!
//! With `--tools-page-size N` its tool list comes in pages of `N`.

// Logging, sampling and roots are deprecated by SEP-2577, yet the 2025-xx
// scenarios exercise exactly them.
#![allow(deprecated)]

pub mod fixtures;
pub mod input_required;
pub mod session_asks;
pub mod tasks;

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use rmcp::{
    ErrorData as McpError, RoleServer, ServerHandler,
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, CancelTaskParams,
        CompleteRequestParams, CompleteResult, CreateMessageRequest, ElicitRequest,
        GetPromptRequestParams, GetPromptResponse, GetPromptResult, GetTaskParams, GetTaskResult,
        Implementation, InputRequiredResult, ListPromptsResult, ListResourceTemplatesResult,
        ListResourcesResult, ListToolsResult, LoggingLevel, LoggingMessageNotificationParam,
        PaginatedRequestParams, ProgressNotificationParam, ReadResourceRequestParams,
        ReadResourceResponse, ReadResourceResult, ServerCapabilities, ServerConfig, ServerRequest,
        SetLevelRequestParams, SubscribeRequestParams, SubscriptionFilter, Tool,
        UnsubscribeRequestParams, UpdateTaskParams,
    },
    service::{RequestContext, SubscriptionContext, SubscriptionSink},
};
use serde_json::{Value, json};

use self::input_required::{InputRequiredTools, StateSealer};
use super::common::{arguments, from_json, string_arg, text_result, unknown_tool};

/// The conformance fixture server.
///
/// Clones share state, so HTTP sessions created from one instance see the
/// same subscriptions and the same `requestState` key.
#[derive(Debug, Clone, Default)]
pub struct ConformanceServer {
    log_level: Arc<Mutex<Option<LoggingLevel>>>,
    subscriptions: Arc<Mutex<BTreeSet<String>>>,
    /// Open `subscriptions/listen` streams (2026-07-28).
    listeners: Arc<Mutex<Vec<SubscriptionSink>>>,
    sealer: StateSealer,
    /// The tasks extension's running tasks (`tasks::Tasks`).
    tasks: tasks::Tasks,
    /// Tools per `tools/list` page; all in one when unset.
    page_size: Option<usize>,
    /// Whether `test_move_header_param` ran: `region` travels as `Zone`.
    header_moved: Arc<std::sync::atomic::AtomicBool>,
}

fn severity(level: LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}

impl ConformanceServer {
    /// A fresh fixture server.
    pub fn new() -> Self {
        Self::default()
    }

    /// The server with its tool list in pages of `page_size` tools.
    pub fn with_page_size(mut self, page_size: Option<usize>) -> Self {
        self.page_size = page_size.filter(|size| *size > 0);
        self
    }

    /// The fixture tools as they are now.
    fn tools(&self) -> Result<Vec<Tool>, McpError> {
        let mut tools = fixtures::tools();
        if self.header_moved.load(std::sync::atomic::Ordering::Acquire) {
            fixtures::move_header(&mut tools);
        }
        from_json(tools)
    }

    /// Sends `notifications/message` unless filtered out by `logging/setLevel`.
    async fn log(&self, context: &RequestContext<RoleServer>, level: LoggingLevel, text: &str) {
        let threshold = if context.meta.protocol_version().is_some() {
            // Stateless requests (2026-07-28) opt into logs per request; no level, no logs.
            match context.meta.log_level() {
                Some(level) => level,
                None => return,
            }
        } else {
            // Sessions get everything until logging/setLevel (the spec leaves it open).
            match *self.log_level.lock().unwrap_or_else(|e| e.into_inner()) {
                Some(level) => level,
                None => LoggingLevel::Debug,
            }
        };
        if severity(level) < severity(threshold) {
            return;
        }
        let param =
            LoggingMessageNotificationParam::new(level, json!(text)).with_logger("conformance");
        let _ = context.peer.notify_logging_message(param).await;
    }

    async fn tool_with_logging(
        &self,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        self.log(context, LoggingLevel::Info, "Tool execution started")
            .await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.log(context, LoggingLevel::Info, "Tool processing data")
            .await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.log(context, LoggingLevel::Info, "Tool execution completed")
            .await;
        Ok(text_result("Tool with logging executed successfully"))
    }

    async fn tool_with_progress(
        &self,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let token = context.meta.get_progress_token();
        for (i, progress) in [0.0, 50.0, 100.0].into_iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if let Some(token) = &token {
                let param = ProgressNotificationParam::new(token.clone(), progress)
                    .with_total(100.0)
                    .with_message(format!("Completed step {progress}/100"));
                let _ = context.peer.notify_progress(param).await;
            }
        }
        Ok(text_result("Tool with progress executed successfully"))
    }

    /// Sends a server→client request while the tool call is pending.
    async fn ask_client(
        context: &RequestContext<RoleServer>,
        request: ServerRequest,
    ) -> Result<Value, McpError> {
        session_asks::send(context, request).await
    }

    async fn sampling(
        &self,
        args: &rmcp::model::JsonObject,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let prompt = string_arg(args, "prompt")?;
        let params = from_json(json!({
            "messages": [{ "role": "user", "content": { "type": "text", "text": prompt } }],
            "maxTokens": 100
        }))?;
        let response = Self::ask_client(
            context,
            ServerRequest::CreateMessageRequest(CreateMessageRequest::new(params)),
        )
        .await?;
        let text = response["content"]["text"]
            .as_str()
            .map_or_else(|| response["content"].to_string(), str::to_owned);
        Ok(text_result(format!("LLM response: {text}")))
    }

    async fn elicitation(
        &self,
        params: Value,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let response = Self::ask_client(
            context,
            ServerRequest::ElicitRequest(ElicitRequest::new(from_json(params)?)),
        )
        .await?;
        Ok(text_result(format!(
            "Elicitation completed: action={}, content={}",
            response["action"].as_str().unwrap_or("unknown"),
            response.get("content").unwrap_or(&Value::Null)
        )))
    }
}

/// Diagnostic tools of the `server-stateless` scenario (SEP-2575, 2026-07-28).
impl ConformanceServer {
    /// Runs a diagnostic tool; `None` when `name` is none of them.
    async fn diagnostic(
        &self,
        name: &str,
        context: &RequestContext<RoleServer>,
    ) -> Option<Result<CallToolResponse, McpError>> {
        let result = match name {
            "test_missing_capability" if !session_asks::takes_input_required(context) => {
                // Over a session, needing sampling means asking for it.
                let ask = from_json(json!({
                    "messages": [{ "role": "user", "content": { "type": "text", "text": "ping" } }],
                    "maxTokens": 1
                }));
                match ask {
                    Ok(params) => Self::ask_client(
                        context,
                        ServerRequest::CreateMessageRequest(CreateMessageRequest::new(params)),
                    )
                    .await
                    .map(|_| text_result("client declared sampling").into()),
                    Err(err) => Err(err),
                }
            }
            "test_missing_capability" => self.missing_capability(context),
            "test_streaming_elicitation" if !session_asks::takes_input_required(context) => self
                .elicitation(fixtures::confirm_params(), context)
                .await
                .map(Into::into),
            "test_streaming_elicitation" => {
                // 2026-07-28 forbids server→client requests on the response
                // stream: ask through an input request instead.
                from_json::<InputRequiredResult>(json!({
                    "resultType": "input_required",
                    "inputRequests": {
                        "confirm": {
                            "method": "elicitation/create",
                            "params": fixtures::confirm_params()
                        }
                    }
                }))
                .map(Into::into)
            }
            "test_logging_tool" => {
                self.log(context, LoggingLevel::Info, "test_logging_tool ran")
                    .await;
                Ok(text_result("logged if a log level was requested").into())
            }
            "test_trigger_tool_change" => {
                self.broadcast(ListChange::Tools, context).await;
                Ok(text_result("tool list change announced").into())
            }
            "test_move_header_param" => {
                (self.header_moved).store(true, std::sync::atomic::Ordering::Release);
                self.broadcast(ListChange::Tools, context).await;
                Ok(text_result("region now travels as Mcp-Param-Zone").into())
            }
            "test_trigger_prompt_change" => {
                self.broadcast(ListChange::Prompts, context).await;
                Ok(text_result("prompt list change announced").into())
            }
            _ => return None,
        };
        Some(result)
    }

    fn missing_capability(
        &self,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let declared = context
            .client_capabilities()
            .is_some_and(|caps| caps.sampling.is_some());
        if !declared {
            return Err(McpError::missing_required_client_capability(from_json(
                json!({ "sampling": {} }),
            )?));
        }
        Ok(text_result("client declared sampling").into())
    }

    /// Sends a list-changed notification to every open listen stream (each
    /// sink drops kinds its subscriber did not ask for) and, when the caller
    /// is a session peer, over its session.
    async fn broadcast(&self, change: ListChange, context: &RequestContext<RoleServer>) {
        if !session_asks::takes_input_required(context) {
            let _ = match change {
                ListChange::Tools => context.peer.notify_tool_list_changed().await,
                ListChange::Prompts => context.peer.notify_prompt_list_changed().await,
            };
        }
        let sinks = self
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for sink in sinks {
            let _ = match change {
                ListChange::Tools => sink.notify_tool_list_changed().await,
                ListChange::Prompts => sink.notify_prompt_list_changed().await,
            };
        }
    }
}

/// Which list changed, for [`ConformanceServer::broadcast`].
#[derive(Debug, Clone, Copy)]
enum ListChange {
    Tools,
    Prompts,
}

impl ServerHandler for ConformanceServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_logging()
                .enable_completions()
                .enable_prompts()
                .enable_prompts_list_changed()
                .enable_resources()
                .enable_resources_subscribe()
                .enable_tools()
                .enable_tool_list_changed()
                .enable_tasks()
                .build(),
        )
        .with_server_info(Implementation::new(
            "bulwark-demo-conformance",
            env!("CARGO_PKG_VERSION"),
        ))
        .with_instructions("Fixture server for the MCP conformance suite.")
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let tools = self.tools()?;
        let Some(size) = self.page_size else {
            return Ok(ListToolsResult::with_all_items(tools));
        };
        // The cursor is the index of the page's first tool.
        let start = match request.and_then(|request| request.cursor) {
            Some(cursor) => cursor
                .parse::<usize>()
                .map_err(|_| McpError::invalid_params("unknown cursor", None))?,
            None => 0,
        };
        let end = start.saturating_add(size).min(tools.len());
        let page = tools.get(start..end).unwrap_or_default().to_vec();
        let mut list = ListToolsResult::with_all_items(page);
        list.next_cursor = (end < tools.len()).then(|| end.to_string());
        Ok(list)
    }

    /// Lets rmcp check `Mcp-Param-*` headers (SEP-2243) when served over HTTP.
    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tools()
            .ok()?
            .into_iter()
            .find(|tool| tool.name == name)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let name = request.name.as_ref();
        if let Some(result) = fixtures::static_tool_result(name) {
            return Ok(from_json::<CallToolResult>(fixtures::complete(result))?.into());
        }
        if name == "test_tool_with_task" && !session_asks::takes_input_required(&context) {
            // A session peer is asked for the name over the session first.
            let mut retried = request.clone();
            let tasks = &self.tasks;
            return session_asks::fulfil(&context, |responses, state| {
                retried.input_responses = Some(responses);
                retried.request_state = state;
                let result = tasks.call(&retried, &context);
                match result.unwrap_or_else(|| Err(unknown_tool(name)))? {
                    CallToolResponse::InputRequired(asked) => Ok(Err(asked)),
                    other => Ok(Ok(other)),
                }
            })
            .await;
        }
        if let Some(result) = self.tasks.call(&request, &context) {
            return result;
        }
        let tools = InputRequiredTools {
            sealer: &self.sealer,
        };
        if name.starts_with(input_required::TOOL_PREFIX) {
            if session_asks::takes_input_required(&context) {
                return tools
                    .call(&request, &context)
                    .unwrap_or_else(|| Err(unknown_tool(name)));
            }
            // A session peer is asked over the session, round after round.
            let mut retried = request.clone();
            return session_asks::fulfil(&context, |responses, state| {
                retried.input_responses = Some(responses);
                retried.request_state = state;
                let result = tools.call(&retried, &context);
                match result.unwrap_or_else(|| Err(unknown_tool(name)))? {
                    CallToolResponse::InputRequired(asked) => Ok(Err(asked)),
                    other => Ok(Ok(other)),
                }
            })
            .await;
        }
        if let Some(result) = self.diagnostic(name, &context).await {
            return result;
        }
        let args = arguments(&request);
        let result = match name {
            "test_tool_with_logging" => self.tool_with_logging(&context).await,
            "test_tool_with_progress" => self.tool_with_progress(&context).await,
            "test_sampling" => self.sampling(&args, &context).await,
            "test_elicitation" => {
                let message = string_arg(&args, "message")?;
                self.elicitation(fixtures::elicitation_params(message), &context)
                    .await
            }
            "test_elicitation_sep1034_defaults" => {
                self.elicitation(fixtures::elicitation_defaults_params(), &context)
                    .await
            }
            "test_elicitation_sep1330_enums" => {
                self.elicitation(fixtures::elicitation_enums_params(), &context)
                    .await
            }
            "test_reconnection" => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok(text_result("Reconnection test completed"))
            }
            fixtures::HEADER_PARAM_TOOL => {
                let region = string_arg(&args, "region")?;
                Ok(text_result(format!("Region: {region}")))
            }
            "json_schema_2020_12_tool" => Ok(text_result(format!(
                "Received: {}",
                Value::Object(args.clone())
            ))),
            _ => Err(unknown_tool(name)),
        };
        result.map(Into::into)
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, McpError> {
        self.tasks.get(&request)
    }

    async fn update_task(
        &self,
        request: UpdateTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.tasks.update(request)
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.tasks.cancel(&request)
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        Ok(ListResourcesResult::with_all_items(from_json(
            fixtures::resources(),
        )?))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        Ok(ListResourceTemplatesResult::with_all_items(from_json(
            fixtures::resource_templates(),
        )?))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        match fixtures::read_resource(&request.uri) {
            Some(result) => Ok(from_json::<ReadResourceResult>(fixtures::complete(result))?.into()),
            // rmcp maps this code to -32602 for 2026-07-28 peers (SEP-2164).
            None => Err(McpError::resource_not_found(
                "Resource not found",
                Some(json!({ "uri": request.uri })),
            )),
        }
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.subscriptions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(request.uri);
        Ok(())
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.subscriptions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&request.uri);
        Ok(())
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        Some(requested.clone())
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), McpError> {
        let sink = context.sink().clone();
        let id = sink.id().clone();
        self.listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(sink);
        context.cancelled().await;
        self.listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|s| *s.id() != id);
        Ok(())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        Ok(ListPromptsResult::with_all_items(from_json(
            fixtures::prompts(),
        )?))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        if request.name == input_required::PROMPT_NAME {
            if session_asks::takes_input_required(&context) {
                return input_required::prompt(&request);
            }
            let mut request = request.clone();
            return session_asks::fulfil(&context, |responses, state| {
                request.input_responses = Some(responses);
                request.request_state = state;
                input_required::prompt(&request).map(|response| match response {
                    GetPromptResponse::InputRequired(asked) => Err(asked),
                    other => Ok(other),
                })
            })
            .await;
        }
        let arg = |name: &str| {
            request
                .arguments
                .as_ref()
                .and_then(|args| args.get(name))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        match fixtures::prompt_messages(&request.name, arg) {
            Some(result) => Ok(from_json::<GetPromptResult>(fixtures::complete(result))?.into()),
            None => Err(McpError::invalid_params(
                format!("unknown prompt `{}`", request.name),
                None,
            )),
        }
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        let values = fixtures::completions(&request.argument.name, &request.argument.value);
        from_json(fixtures::complete(json!({
            "completion": { "values": values, "total": values.len(), "hasMore": false }
        })))
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        *self.log_level.lock().unwrap_or_else(|e| e.into_inner()) = Some(request.level);
        Ok(())
    }
}
