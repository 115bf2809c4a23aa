//! SEP-2243 `x-mcp-header`: tool parameters a 2026-07-28 client mirrors into
//! `Mcp-Param-{Name}` headers, so a middle box can route on them without
//! reading the body.
//!
//! The gateway relays an upstream's input schemas unchanged (annotations
//! included) and remembers, per upstream, the schemas that carry one. rmcp
//! checks `Mcp-Method` and `Mcp-Name` before dispatch; it would check
//! `Mcp-Param-*` too, but only against a schema `ServerHandler::get_tool`
//! returns synchronously, and the gateway knows an upstream's schemas only
//! once it read its list. So the call path checks them
//! ([`GatewayHandler::check_param_headers`]), after routing and the grant,
//! reading the upstream's list first when this process has not yet: a header
//! that contradicts the body, is missing while the body has the value, or
//! holds invalid Base64 is refused with `-32020` (HTTP 400) before the call
//! goes upstream. The check itself is rmcp's (`validate_subject_headers`).
//!
//! Every page of the list counts: a first page with more behind it is not
//! recorded as the upstream's schemas; the check reads the remaining pages
//! (at most [`MAX_PAGES`] in all) before it records them
//! ([`GatewayHandler::record_param_headers`]). What an upstream announces
//! with `tools/list_changed` is forgotten at once (the observer), so the
//! next call reads the new list.
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::HeaderMap;
use dashmap::DashMap;
use rmcp::model::{CallToolRequestParams, JsonObject, ListToolsResult, ProtocolVersion, Tool};
use rmcp::service::RequestContext;
use rmcp::transport::common::http_header::names;
use rmcp::transport::common::mcp_headers::{HeaderSubject, validate_subject_headers};
use rmcp::{ErrorData, RoleServer};
use serde_json::Value;

use super::handler::GatewayHandler;
use super::lists::Pages;

/// The annotation keyword.
pub const ANNOTATION: &str = "x-mcp-header";

/// Most pages of one upstream's tool list read to learn its schemas (as
/// for any merged view); the tools past them are not checked.
pub use super::lists::MAX_PAGES;

/// Annotated input schemas, per upstream, then per upstream tool name.
#[derive(Debug, Default)]
pub struct ParamHeaders {
    servers: DashMap<Arc<str>, HashMap<String, Arc<JsonObject>>>,
    /// Bumped by every [`Self::forget`]: a list read across it (pages read
    /// before and after a `list_changed`) is not recorded.
    forgotten: AtomicU64,
}

impl ParamHeaders {
    /// Replaces what is known of `server` with the annotated tools of its
    /// whole latest list (at most `limit`, so an upstream cannot grow it
    /// unbounded).
    pub fn record(&self, server: &str, tools: &[Tool], limit: usize) {
        let annotated = tools
            .iter()
            .filter(|tool| annotated(&tool.input_schema))
            .take(limit)
            .map(|tool| (tool.name.to_string(), tool.input_schema.clone()))
            .collect();
        self.servers.insert(Arc::from(server), annotated);
    }

    /// What to hand [`Self::record_since`] for a list about to be read.
    pub fn epoch(&self) -> u64 {
        self.forgotten.load(Ordering::Acquire)
    }

    /// [`Self::record`], unless something was forgotten since `epoch`: the
    /// list read may then mix an old and a new one, and the next call
    /// reads it again.
    pub fn record_since(&self, epoch: u64, server: &str, tools: &[Tool], limit: usize) {
        if self.epoch() == epoch {
            self.record(server, tools, limit);
        }
    }

    /// `None` while `server`'s list is not recorded (never read, or
    /// forgotten since); else the input schema of its `tool`, when that
    /// maps a parameter to a header.
    pub fn recorded_schema(&self, server: &str, tool: &str) -> Option<Option<Arc<JsonObject>>> {
        Some(self.servers.get(server)?.get(tool).cloned())
    }

    /// Drops what is known of `server` (restarted, removed, or its list
    /// changed).
    pub fn forget(&self, server: &str) {
        self.forgotten.fetch_add(1, Ordering::AcqRel);
        self.servers.remove(server);
    }
}

impl GatewayHandler {
    /// Checks the `Mcp-Param-*` headers of an HTTP call of `server`'s `tool`
    /// against its arguments, when it declares
    /// 2026-07-28 or later. Other calls (older versions, stdio, tools without
    /// annotations) pass.
    pub(super) async fn check_param_headers(
        &self,
        server: &str,
        tool: &str,
        request: &CallToolRequestParams,
        context: &RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let Some(parts) = context.extensions.get::<axum::http::request::Parts>() else {
            return Ok(());
        };
        // The versions rmcp checks the standard headers of (`Mcp-Method`, `Mcp-Name`).
        let standard = (parts.headers.get(&names::MCP_PROTOCOL_VERSION))
            .and_then(|version| version.to_str().ok())
            .is_some_and(|version| version >= ProtocolVersion::STANDARD_HEADERS.as_str());
        if !standard {
            return Ok(());
        }
        let recorded = self.gateway().param_headers.recorded_schema(server, tool);
        let schema = match recorded {
            Some(schema) => schema,
            // Should the read fail, the call fails the same way upstream:
            // nothing to check it against.
            // Boxed: a rare wait (the list read upstream), kept out of the
            // future of every call.
            None => {
                (Box::pin(self.record_param_headers(server, tool, context)).await).unwrap_or(None)
            }
        };
        let Some(schema) = schema else {
            return Ok(());
        };
        check(&parts.headers, request.arguments.as_ref(), &schema)
    }

    /// Reads `server`'s whole tool list and records its annotated schemas:
    /// the first page as any list is read (cached), then the pages behind
    /// it ([`GatewayHandler::later_pages`]), up to [`MAX_PAGES`] pages.
    /// Returns `tool`'s annotated schema from the list read: the call is
    /// checked against it even when a concurrent forget (the upstream
    /// restarted or just became ready) kept the list from being recorded.
    async fn record_param_headers(
        &self,
        server: &str,
        tool: &str,
        context: &RequestContext<RoleServer>,
    ) -> Result<Option<Arc<JsonObject>>, ErrorData> {
        let known = &self.gateway().param_headers;
        let epoch = known.epoch();
        // A whole list in one page is recorded on the way.
        let mut list: ListToolsResult = self.upstream_list(server, None, false, context).await?;
        match self.later_pages(server, &mut list, context).await {
            Pages::One | Pages::Whole | Pages::Cut => {}
            // A schema on a page not read could not be checked: fail the call.
            Pages::Failed(err) => return Err(err),
        }
        let tools = list.tools;
        known.record_since(epoch, server, &tools, super::MAX_REMEMBERED_TOOLS);
        let schema = tools
            .into_iter()
            .find(|found| found.name == tool)
            .map(|found| found.input_schema)
            .filter(|schema| annotated(schema));
        Ok(schema)
    }
}

/// Checks the headers of a `tools/call` with `arguments` against the
/// annotations of `schema`: rmcp's check, its reason in a `-32020` error.
/// `Mcp-Name` was checked against the client's body before dispatch; the
/// name here may be another (a virtual server's call goes on under the
/// federated name), so it is left out.
fn check(
    headers: &HeaderMap,
    arguments: Option<&JsonObject>,
    schema: &JsonObject,
) -> Result<(), ErrorData> {
    let subject = HeaderSubject {
        method: "tools/call",
        name: None,
        arguments,
    };
    validate_subject_headers(headers, subject, Some(schema))
        .map_err(|reason| ErrorData::header_mismatch(reason, None))
}

/// Whether `schema` annotates a property, at any depth of `properties`,
/// with `x-mcp-header`: only such properties become headers.
pub fn annotated(schema: &JsonObject) -> bool {
    properties_annotated(schema.get("properties"))
}

fn properties_annotated(properties: Option<&Value>) -> bool {
    let Some(Value::Object(properties)) = properties else {
        return false;
    };
    properties.values().any(|property| {
        property.get(ANNOTATION).is_some() || properties_annotated(property.get("properties"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tool(name: &str, schema: Value) -> Tool {
        let Value::Object(schema) = schema else {
            panic!("schema must be an object");
        };
        Tool::new_with_raw(name.to_owned(), None, schema)
    }

    fn region() -> Tool {
        tool(
            "regional",
            json!({
                "type": "object",
                "properties": { "region": { "type": "string", "x-mcp-header": "Region" } }
            }),
        )
    }

    #[test]
    fn only_schemas_with_an_annotated_property_count() {
        assert!(annotated(&region().input_schema));
        let nested = tool(
            "nested",
            json!({
                "type": "object",
                "properties": { "where": {
                    "type": "object",
                    "properties": { "zone": { "type": "string", "x-mcp-header": "Zone" } }
                } }
            }),
        );
        assert!(annotated(&nested.input_schema));
        let plain = tool(
            "plain",
            json!({ "type": "object", "properties": { "region": { "type": "string" } } }),
        );
        assert!(!annotated(&plain.input_schema));
        // A keyword elsewhere (here a default value) maps no parameter.
        let elsewhere = tool(
            "elsewhere",
            json!({ "type": "object", "default": { "x-mcp-header": "X" } }),
        );
        assert!(!annotated(&elsewhere.input_schema));
    }

    #[test]
    fn a_list_replaces_what_was_known_of_its_server() {
        let headers = ParamHeaders::default();
        assert_eq!(headers.recorded_schema("geo", "regional"), None);
        let plain = tool("plain", json!({ "type": "object" }));
        headers.record("geo", &[region(), plain], 100);
        assert!(matches!(
            headers.recorded_schema("geo", "regional"),
            Some(Some(_))
        ));
        assert_eq!(headers.recorded_schema("geo", "plain"), Some(None));
        assert_eq!(headers.recorded_schema("other", "regional"), None);

        // The annotation went away upstream: so does the check.
        headers.record("geo", &[tool("regional", json!({ "type": "object" }))], 100);
        assert_eq!(headers.recorded_schema("geo", "regional"), Some(None));

        headers.forget("geo");
        assert_eq!(headers.recorded_schema("geo", "regional"), None);
    }

    #[test]
    fn a_list_read_across_a_forget_is_not_recorded() {
        let headers = ParamHeaders::default();
        let epoch = headers.epoch();
        // Its list changed while the pages were read: they may mix both.
        headers.forget("geo");
        headers.record_since(epoch, "geo", &[region()], 100);
        assert_eq!(headers.recorded_schema("geo", "regional"), None);
        let epoch = headers.epoch();
        headers.record_since(epoch, "geo", &[region()], 100);
        assert!(matches!(
            headers.recorded_schema("geo", "regional"),
            Some(Some(_))
        ));
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        // `Mcp-Name` is not this check's: any value passes.
        for (name, value) in [("mcp-method", "tools/call"), ("mcp-name", "other")]
            .iter()
            .chain(pairs)
        {
            map.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                axum::http::HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn checked(pairs: &[(&str, &str)], arguments: Value) -> Result<(), ErrorData> {
        let Value::Object(arguments) = arguments else {
            panic!("arguments must be an object");
        };
        check(&headers(pairs), Some(&arguments), &region().input_schema)
    }

    fn rejected(pairs: &[(&str, &str)], arguments: Value) -> String {
        let err = checked(pairs, arguments).unwrap_err();
        assert_eq!(err.code, rmcp::model::ErrorCode::HEADER_MISMATCH);
        err.message.to_string()
    }

    #[test]
    fn a_param_header_must_match_its_argument() {
        let eu = json!({ "region": "eu-west" });
        assert!(checked(&[("Mcp-Param-Region", "eu-west")], eu.clone()).is_ok());
        // Header names are case-insensitive; values are not.
        assert!(checked(&[("mcp-param-region", "eu-west")], eu.clone()).is_ok());
        assert!(
            rejected(&[("mcp-param-region", "EU-WEST")], eu.clone()).contains("does not match")
        );
        assert!(
            rejected(&[("mcp-param-region", "us-east")], eu.clone()).contains("does not match")
        );
        // In the body, so the header is required.
        assert!(rejected(&[], eu.clone()).contains("missing"));
        // Not in the body (or null), so no header either.
        assert!(checked(&[], json!({})).is_ok());
        assert!(checked(&[], json!({ "region": null })).is_ok());
        assert!(rejected(&[("mcp-param-region", "eu-west")], json!({})).contains("unexpected"));
        // Only one value.
        let twice = [
            ("mcp-param-region", "eu-west"),
            ("mcp-param-region", "eu-west"),
        ];
        assert!(rejected(&twice, eu).contains("duplicate"));
    }

    #[test]
    fn base64_values_are_decoded_and_anything_else_is_literal() {
        let hello = json!({ "region": "Hello" });
        assert!(
            checked(
                &[("mcp-param-region", "=?base64?SGVsbG8=?=")],
                hello.clone()
            )
            .is_ok()
        );
        // Bad padding, or characters outside the alphabet.
        assert!(
            rejected(&[("mcp-param-region", "=?base64?SGVsbG8?=")], hello.clone())
                .contains("Base64")
        );
        assert!(
            rejected(&[("mcp-param-region", "=?base64?SGVs!!!bG8=?=")], hello).contains("Base64")
        );
        // Without the whole wrapper the value is taken as it is.
        let literal = json!({ "region": "=?base64?SGVsbG8=" });
        assert!(checked(&[("mcp-param-region", "=?base64?SGVsbG8=")], literal).is_ok());
        let unicode = json!({ "region": "café" });
        assert!(checked(&[("mcp-param-region", "=?base64?Y2Fmw6k=?=")], unicode).is_ok());
    }

    #[test]
    fn numbers_booleans_and_nested_properties_are_checked_too() {
        let schema = json!({
            "type": "object",
            "properties": {
                "replicas": { "type": "integer", "x-mcp-header": "Replicas" },
                "dry": { "type": "boolean", "x-mcp-header": "Dry" },
                "where": {
                    "type": "object",
                    "properties": { "zone": { "type": "string", "x-mcp-header": "Zone" } }
                }
            }
        });
        let Value::Object(schema) = schema else {
            panic!("schema must be an object");
        };
        let Value::Object(arguments) =
            json!({ "replicas": 3, "dry": true, "where": { "zone": "b" } })
        else {
            panic!("arguments must be an object");
        };
        let all = [
            ("mcp-param-replicas", "3"),
            ("mcp-param-dry", "true"),
            ("mcp-param-zone", "b"),
        ];
        assert!(check(&headers(&all), Some(&arguments), &schema).is_ok());
        let wrong_zone = [
            ("mcp-param-replicas", "3"),
            ("mcp-param-dry", "true"),
            ("mcp-param-zone", "a"),
        ];
        let err = check(&headers(&wrong_zone), Some(&arguments), &schema);
        assert!(err.is_err());
    }

    #[test]
    fn at_most_limit_tools_are_kept() {
        let headers = ParamHeaders::default();
        let tools: Vec<Tool> = (0..5)
            .map(|i| {
                let mut tool = region();
                tool.name = format!("t{i}").into();
                tool
            })
            .collect();
        headers.record("geo", &tools, 3);
        let kept = (0..5)
            .filter(|i| {
                matches!(
                    headers.recorded_schema("geo", &format!("t{i}")),
                    Some(Some(_))
                )
            })
            .count();
        assert_eq!(kept, 3);
    }

    /// rmcp checks a client's SEP-2243 headers against the typed message it
    /// read (patch: the check reads no JSON form): what that reads must be
    /// what the JSON check reads, for every method with a name, a tool
    /// call's arguments and notifications.
    #[test]
    fn the_typed_header_subject_matches_the_json_one() {
        use rmcp::model::ClientJsonRpcMessage;
        let messages = [
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                   "params": {"name": "echo", "arguments": {"a": {"b": "x"}, "n": 3}}}),
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "bare"}}),
            json!({"jsonrpc": "2.0", "id": 3, "method": "prompts/get", "params": {"name": "p"}}),
            json!({"jsonrpc": "2.0", "id": 4, "method": "resources/read",
                   "params": {"uri": "file:///a"}}),
            json!({"jsonrpc": "2.0", "id": 5, "method": "resources/subscribe",
                   "params": {"uri": "file:///b"}}),
            json!({"jsonrpc": "2.0", "id": 6, "method": "resources/unsubscribe",
                   "params": {"uri": "file:///c"}}),
            json!({"jsonrpc": "2.0", "id": 7, "method": "tasks/get", "params": {"taskId": "t1"}}),
            json!({"jsonrpc": "2.0", "id": 8, "method": "tasks/cancel", "params": {"taskId": "t2"}}),
            json!({"jsonrpc": "2.0", "id": 12, "method": "tasks/update",
                   "params": {"taskId": "t3", "inputResponses": {}}}),
            json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list"}),
            json!({"jsonrpc": "2.0", "id": 10, "method": "ping"}),
            json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                   "params": {"requestId": 1}}),
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            json!({"jsonrpc": "2.0", "method": "notifications/progress",
                   "params": {"progressToken": "p", "progress": 1}}),
            json!({"jsonrpc": "2.0", "method": "notifications/roots/list_changed"}),
        ];
        for json in messages {
            let message: ClientJsonRpcMessage = serde_json::from_value(json.clone()).unwrap();
            let typed = HeaderSubject::of_message(&message).expect("a typed message");
            let back = serde_json::to_value(&message).unwrap();
            assert_eq!(Some(typed), HeaderSubject::of_json(&back), "{json}");
            assert_eq!(Some(typed), HeaderSubject::of_json(&json), "{json}");
        }
        // A custom request's params are JSON: the JSON form is read instead.
        let custom: ClientJsonRpcMessage = serde_json::from_value(
            json!({"jsonrpc": "2.0", "id": 11, "method": "x/custom", "params": {}}),
        )
        .unwrap();
        assert_eq!(HeaderSubject::of_message(&custom), None);
        // So is a known method whose params do not fit its type (a number
        // for a name): the JSON form has no name for `Mcp-Name` either.
        let odd =
            json!({"jsonrpc": "2.0", "id": 13, "method": "tools/call", "params": {"name": 5}});
        let message: ClientJsonRpcMessage = serde_json::from_value(odd.clone()).unwrap();
        assert_eq!(HeaderSubject::of_message(&message), None);
        let subject = HeaderSubject::of_json(&odd).unwrap();
        assert_eq!((subject.method, subject.name), ("tools/call", None));
    }

    /// `Mcp-Name` and `Mcp-Param-*` checked from a typed tool call: the
    /// matching headers pass; another name, a missing name or another
    /// parameter value is refused.
    #[test]
    fn a_typed_tool_call_is_checked_against_its_headers() {
        use axum::http::HeaderValue;
        use rmcp::model::ClientJsonRpcMessage;
        let message: ClientJsonRpcMessage = serde_json::from_value(json!({
            "jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"region": "eu"}}
        }))
        .unwrap();
        let schema = json!({"type": "object", "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"}
        }});
        let Value::Object(schema) = schema else {
            unreachable!()
        };
        let subject = HeaderSubject::of_message(&message).unwrap();
        let headers = |name: Option<&'static str>, region: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert("mcp-method", HeaderValue::from_static("tools/call"));
            if let Some(name) = name {
                headers.insert("mcp-name", HeaderValue::from_static(name));
            }
            headers.insert("mcp-param-region", HeaderValue::from_static(region));
            headers
        };
        let check = |headers: &HeaderMap| validate_subject_headers(headers, subject, Some(&schema));
        assert_eq!(check(&headers(Some("echo"), "eu")), Ok(()));
        assert!(
            check(&headers(Some("other"), "eu"))
                .unwrap_err()
                .contains("Mcp-Name")
        );
        assert!(
            check(&headers(None, "eu"))
                .unwrap_err()
                .contains("Mcp-Name")
        );
        assert!(
            check(&headers(Some("echo"), "us"))
                .unwrap_err()
                .contains("Region")
        );
    }
}
