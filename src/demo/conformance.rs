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
//! - `test_tool_with_progress` sends three `notifications/progress`.

// Logging, sampling and roots are deprecated by SEP-2577, yet the 2025-xx
// scenarios exercise exactly them.
#![allow(deprecated)]

pub mod fixtures;
pub mod input_required;

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use rmcp::{
    ErrorData as McpError, RoleServer, ServerHandler,
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, CompleteRequestParams,
        CompleteResult, CreateMessageRequest, ElicitRequest, GetPromptRequestParams,
        GetPromptResponse, GetPromptResult, Implementation, ListPromptsResult,
        ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, LoggingLevel,
        LoggingMessageNotificationParam, PaginatedRequestParams, ProgressNotificationParam,
        ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, ServerCapabilities,
        ServerConfig, ServerRequest, SetLevelRequestParams, SubscribeRequestParams,
        UnsubscribeRequestParams,
    },
    service::RequestContext,
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
    sealer: StateSealer,
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

    /// Sends `notifications/message` unless filtered out by `logging/setLevel`.
    async fn log(&self, context: &RequestContext<RoleServer>, level: LoggingLevel, text: &str) {
        let threshold = *self.log_level.lock().unwrap_or_else(|e| e.into_inner());
        // Before any setLevel the client gets everything (the spec leaves it open).
        if threshold.is_some_and(|t| severity(level) < severity(t)) {
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
        let response =
            context.peer.send_request(request).await.map_err(|e| {
                McpError::internal_error(format!("client request failed: {e}"), None)
            })?;
        serde_json::to_value(&response).map_err(|e| McpError::internal_error(e.to_string(), None))
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

impl ServerHandler for ConformanceServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_logging()
                .enable_completions()
                .enable_prompts()
                .enable_resources()
                .enable_resources_subscribe()
                .enable_tools()
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
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(from_json(
            fixtures::tools(),
        )?))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let name = request.name.as_ref();
        if let Some(result) = fixtures::static_tool_result(name) {
            return Ok(from_json::<CallToolResult>(result)?.into());
        }
        let tools = InputRequiredTools {
            sealer: &self.sealer,
        };
        if let Some(result) = tools.call(&request, &context) {
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
            "json_schema_2020_12_tool" => Ok(text_result(format!(
                "Received: {}",
                Value::Object(args.clone())
            ))),
            _ => Err(unknown_tool(name)),
        };
        result.map(Into::into)
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
            Some(result) => Ok(from_json::<ReadResourceResult>(result)?.into()),
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
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        if request.name == input_required::PROMPT_NAME {
            return input_required::prompt(&request);
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
            Some(result) => Ok(from_json::<GetPromptResult>(result)?.into()),
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
        from_json(json!({
            "completion": { "values": values, "total": values.len(), "hasMore": false }
        }))
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
