//! Static fixtures of the conformance server, written in their wire shape so
//! they can be compared line by line with the conformance suite's scenario
//! descriptions (`@modelcontextprotocol/conformance`, `dist/index.js`).

use serde_json::{Value, json};

/// A 1x1 red PNG.
pub const PNG_BASE64: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC";
/// Eight samples of 8 kHz mono silence.
pub const WAV_BASE64: &str =
    "UklGRiwAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YQgAAACAgICAgICAgA==";

/// URI of the static text resource.
pub const STATIC_TEXT_URI: &str = "test://static-text";
/// URI of the static binary resource.
pub const STATIC_BINARY_URI: &str = "test://static-binary";
/// URI of the resource clients subscribe to.
pub const WATCHED_URI: &str = "test://watched-resource";
/// Prefix and suffix of the `test://template/{id}/data` template.
pub const TEMPLATE_PREFIX: &str = "test://template/";
/// See [`TEMPLATE_PREFIX`].
pub const TEMPLATE_SUFFIX: &str = "/data";

fn no_args() -> Value {
    json!({ "type": "object", "properties": {} })
}

fn tool(name: &str, description: &str, input_schema: Value) -> Value {
    json!({ "name": name, "description": description, "inputSchema": input_schema })
}

fn string_arg_schema(arg: &str, description: &str) -> Value {
    json!({
        "type": "object",
        "properties": { arg: { "type": "string", "description": description } },
        "required": [arg]
    })
}

/// Every tool of the conformance server (`tools/list`).
pub fn tools() -> Value {
    let mut tools = vec![
        tool("test_simple_text", "Returns simple text content", no_args()),
        tool("test_image_content", "Returns a PNG image", no_args()),
        tool("test_audio_content", "Returns a WAV audio clip", no_args()),
        tool(
            "test_embedded_resource",
            "Returns an embedded text resource",
            no_args(),
        ),
        tool(
            "test_multiple_content_types",
            "Returns text, image and resource content",
            no_args(),
        ),
        tool(
            "test_tool_with_logging",
            "Sends three info log notifications while running",
            no_args(),
        ),
        tool(
            "test_tool_with_progress",
            "Reports progress 0/100, 50/100, 100/100",
            no_args(),
        ),
        tool(
            "test_error_handling",
            "Always returns a tool error",
            no_args(),
        ),
        tool(
            "test_sampling",
            "Asks the client's LLM via sampling/createMessage",
            string_arg_schema("prompt", "The prompt to send to the LLM"),
        ),
        tool(
            "test_elicitation",
            "Asks the user via elicitation/create",
            string_arg_schema("message", "The message to show the user"),
        ),
        tool(
            "test_elicitation_sep1034_defaults",
            "Elicitation whose schema has defaults for every primitive type",
            no_args(),
        ),
        tool(
            "test_elicitation_sep1330_enums",
            "Elicitation with every enum schema variant",
            no_args(),
        ),
        tool(
            "test_reconnection",
            "Answers after a short pause (SSE polling scenario)",
            no_args(),
        ),
        json!({
            "name": "json_schema_2020_12_tool",
            "description": "Tool with JSON Schema 2020-12 features",
            "inputSchema": json_schema_2020_12()
        }),
        tool(
            "test_missing_capability",
            "Needs the client's sampling capability (-32021 when undeclared)",
            no_args(),
        ),
        tool(
            "test_streaming_elicitation",
            "Asks for input through an input request, never a stream request",
            no_args(),
        ),
        tool(
            "test_logging_tool",
            "Logs only when the request carries a log level",
            no_args(),
        ),
        tool(
            "test_trigger_tool_change",
            "Announces a tool list change to subscribers",
            no_args(),
        ),
        tool(
            "test_move_header_param",
            "Maps test_header_param's region to the Mcp-Param-Zone header and announces the change",
            no_args(),
        ),
        tool(
            "test_trigger_prompt_change",
            "Announces a prompt list change to subscribers",
            no_args(),
        ),
        tool(
            HEADER_PARAM_TOOL,
            "Echoes a region that clients also send as the Mcp-Param-Region header",
            header_param_schema(),
        ),
    ];
    tools.extend(super::input_required::tools());
    tools.extend(super::tasks::tools());
    Value::Array(tools)
}

/// The tool with a parameter mapped to a header (SEP-2243, `x-mcp-header`).
pub const HEADER_PARAM_TOOL: &str = "test_header_param";

/// `test_header_param` in `tools` with `region` mirrored into
/// `Mcp-Param-Zone` instead (after `test_move_header_param`).
pub fn move_header(tools: &mut Value) {
    let Some(tools) = tools.as_array_mut() else {
        return;
    };
    for tool in tools {
        if tool["name"] == HEADER_PARAM_TOOL {
            tool["inputSchema"]["properties"]["region"]["x-mcp-header"] = json!("Zone");
        }
    }
}

/// `test_header_param`'s input: `region`, mirrored into `Mcp-Param-Region`.
fn header_param_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "region": {
                "type": "string",
                "description": "Where to run; clients send it as the Mcp-Param-Region header too",
                "x-mcp-header": "Region"
            }
        },
        "required": ["region"]
    })
}

/// Input schema using the JSON Schema 2020-12 vocabulary (SEP-1613, SEP-2106).
fn json_schema_2020_12() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {
            "address": {
                "$anchor": "addressDef",
                "type": "object",
                "properties": {
                    "street": { "type": "string" },
                    "city": { "type": "string" }
                }
            }
        },
        "properties": {
            "name": { "type": "string" },
            "address": { "$ref": "#/$defs/address" },
            "contactMethod": { "type": "string", "enum": ["phone", "email"] },
            "phone": { "type": "string" },
            "email": { "type": "string" }
        },
        "allOf": [{ "anyOf": [{ "required": ["phone"] }, { "required": ["email"] }] }],
        "if": {
            "properties": { "contactMethod": { "const": "phone" } },
            "required": ["contactMethod"]
        },
        "then": { "required": ["phone"] },
        "else": { "required": ["email"] },
        "additionalProperties": false
    })
}

/// Marks a result built from JSON as final (`resultType: "complete"`).
///
/// rmcp constructors set it, JSON fixtures do not; 2026-07-28 requires it
/// and rmcp strips it again for older peers.
pub fn complete(mut result: Value) -> Value {
    if let Value::Object(fields) = &mut result {
        fields.insert("resultType".into(), json!("complete"));
    }
    result
}

/// The fixed content of the simple content tools; `None` for other names.
pub fn static_tool_result(name: &str) -> Option<Value> {
    let content = match name {
        "test_simple_text" => json!([
            { "type": "text", "text": "This is a simple text response for testing." }
        ]),
        "test_image_content" => json!([
            { "type": "image", "data": PNG_BASE64, "mimeType": "image/png" }
        ]),
        "test_audio_content" => json!([
            { "type": "audio", "data": WAV_BASE64, "mimeType": "audio/wav" }
        ]),
        "test_embedded_resource" => json!([{
            "type": "resource",
            "resource": {
                "uri": "test://embedded-resource",
                "mimeType": "text/plain",
                "text": "This is an embedded resource content."
            }
        }]),
        "test_multiple_content_types" => json!([
            { "type": "text", "text": "Multiple content types test:" },
            { "type": "image", "data": PNG_BASE64, "mimeType": "image/png" },
            {
                "type": "resource",
                "resource": {
                    "uri": "test://mixed-content-resource",
                    "mimeType": "application/json",
                    "text": "{\"test\":\"data\",\"value\":123}"
                }
            }
        ]),
        "test_error_handling" => {
            return Some(json!({
                "isError": true,
                "content": [{
                    "type": "text",
                    "text": "This tool intentionally returns an error for testing"
                }]
            }));
        }
        _ => return None,
    };
    Some(json!({ "content": content }))
}

/// `elicitation/create` params of `test_streaming_elicitation`.
pub fn confirm_params() -> Value {
    json!({
        "message": "Continue?",
        "requestedSchema": {
            "type": "object",
            "properties": { "ok": { "type": "boolean" } },
            "required": ["ok"]
        }
    })
}

/// `elicitation/create` params of `test_elicitation`.
pub fn elicitation_params(message: &str) -> Value {
    json!({
        "message": message,
        "requestedSchema": {
            "type": "object",
            "properties": {
                "username": { "type": "string", "description": "User's response" },
                "email": { "type": "string", "description": "User's email address" }
            },
            "required": ["username", "email"]
        }
    })
}

/// `elicitation/create` params of `test_elicitation_sep1034_defaults`.
pub fn elicitation_defaults_params() -> Value {
    json!({
        "message": "Please review and update the form fields with defaults",
        "requestedSchema": {
            "type": "object",
            "properties": {
                "name": { "type": "string", "description": "User name", "default": "John Doe" },
                "age": { "type": "integer", "description": "User age", "default": 30 },
                "score": { "type": "number", "description": "User score", "default": 95.5 },
                "status": {
                    "type": "string",
                    "description": "User status",
                    "enum": ["active", "inactive", "pending"],
                    "default": "active"
                },
                "verified": { "type": "boolean", "description": "Verified", "default": true }
            }
        }
    })
}

/// `elicitation/create` params of `test_elicitation_sep1330_enums`.
pub fn elicitation_enums_params() -> Value {
    json!({
        "message": "Please select options from the enum fields",
        "requestedSchema": {
            "type": "object",
            "properties": {
                "untitledSingle": {
                    "type": "string",
                    "description": "Untitled single-select",
                    "enum": ["option1", "option2", "option3"]
                },
                "titledSingle": {
                    "type": "string",
                    "description": "Titled single-select",
                    "oneOf": [
                        { "const": "value1", "title": "First Option" },
                        { "const": "value2", "title": "Second Option" },
                        { "const": "value3", "title": "Third Option" }
                    ]
                },
                "legacyEnum": {
                    "type": "string",
                    "description": "Legacy titled enum",
                    "enum": ["opt1", "opt2", "opt3"],
                    "enumNames": ["Option One", "Option Two", "Option Three"]
                },
                "untitledMulti": {
                    "type": "array",
                    "description": "Untitled multi-select",
                    "items": { "type": "string", "enum": ["option1", "option2", "option3"] }
                },
                "titledMulti": {
                    "type": "array",
                    "description": "Titled multi-select",
                    "items": {
                        "anyOf": [
                            { "const": "value1", "title": "First Choice" },
                            { "const": "value2", "title": "Second Choice" },
                            { "const": "value3", "title": "Third Choice" }
                        ]
                    }
                }
            }
        }
    })
}

/// Direct resources (`resources/list`).
pub fn resources() -> Value {
    json!([
        {
            "uri": STATIC_TEXT_URI,
            "name": "static-text",
            "description": "A static text resource",
            "mimeType": "text/plain"
        },
        {
            "uri": STATIC_BINARY_URI,
            "name": "static-binary",
            "description": "A static binary (PNG) resource",
            "mimeType": "image/png"
        },
        {
            "uri": WATCHED_URI,
            "name": "watched-resource",
            "description": "A resource clients may subscribe to",
            "mimeType": "text/plain"
        }
    ])
}

/// Resource templates (`resources/templates/list`).
pub fn resource_templates() -> Value {
    json!([{
        "uriTemplate": "test://template/{id}/data",
        "name": "template-data",
        "description": "Data for the given id",
        "mimeType": "application/json"
    }])
}

/// Contents of `uri`, or `None` when no such resource exists.
pub fn read_resource(uri: &str) -> Option<Value> {
    let content = match uri {
        STATIC_TEXT_URI => json!({
            "uri": uri,
            "mimeType": "text/plain",
            "text": "This is the content of the static text resource."
        }),
        STATIC_BINARY_URI => json!({ "uri": uri, "mimeType": "image/png", "blob": PNG_BASE64 }),
        WATCHED_URI => json!({
            "uri": uri,
            "mimeType": "text/plain",
            "text": "This is the watched resource."
        }),
        _ => {
            let id = uri
                .strip_prefix(TEMPLATE_PREFIX)?
                .strip_suffix(TEMPLATE_SUFFIX)
                .filter(|id| !id.is_empty() && !id.contains('/'))?;
            let data =
                json!({ "id": id, "templateTest": true, "data": format!("Data for ID: {id}") });
            json!({ "uri": uri, "mimeType": "application/json", "text": data.to_string() })
        }
    };
    Some(json!({ "contents": [content] }))
}

/// Prompts (`prompts/list`).
pub fn prompts() -> Value {
    json!([
        { "name": "test_simple_prompt", "description": "A simple prompt without arguments" },
        {
            "name": "test_prompt_with_arguments",
            "description": "A prompt with two required arguments",
            "arguments": [
                { "name": "arg1", "description": "First test argument", "required": true },
                { "name": "arg2", "description": "Second test argument", "required": true }
            ]
        },
        {
            "name": "test_prompt_with_embedded_resource",
            "description": "A prompt embedding the given resource",
            "arguments": [
                { "name": "resourceUri", "description": "URI of the resource to embed", "required": true }
            ]
        },
        { "name": "test_prompt_with_image", "description": "A prompt with image content" },
        {
            "name": "test_input_required_result_prompt",
            "description": "A prompt that first asks the client for context (2026-07-28)"
        }
    ])
}

/// The messages of prompt `name` given `arg`, or `None` for an unknown prompt.
pub fn prompt_messages(name: &str, arg: impl Fn(&str) -> String) -> Option<Value> {
    let messages = match name {
        "test_simple_prompt" => json!([{
            "role": "user",
            "content": { "type": "text", "text": "This is a simple prompt for testing." }
        }]),
        "test_prompt_with_arguments" => json!([{
            "role": "user",
            "content": {
                "type": "text",
                "text": format!("Prompt with arguments: arg1='{}', arg2='{}'", arg("arg1"), arg("arg2"))
            }
        }]),
        "test_prompt_with_embedded_resource" => json!([
            {
                "role": "user",
                "content": {
                    "type": "resource",
                    "resource": {
                        "uri": arg("resourceUri"),
                        "mimeType": "text/plain",
                        "text": "Embedded resource content for testing."
                    }
                }
            },
            {
                "role": "user",
                "content": { "type": "text", "text": "Please process the embedded resource above." }
            }
        ]),
        "test_prompt_with_image" => json!([
            {
                "role": "user",
                "content": { "type": "image", "data": PNG_BASE64, "mimeType": "image/png" }
            },
            {
                "role": "user",
                "content": { "type": "text", "text": "Please analyze the image above." }
            }
        ]),
        _ => return None,
    };
    Some(json!({ "messages": messages }))
}

/// Completion candidates for `completion/complete`, filtered by prefix.
pub fn completions(argument: &str, prefix: &str) -> Vec<String> {
    let candidates: &[&str] = match argument {
        "arg1" | "arg2" => &["paris", "park", "party", "test", "testValue1", "testValue2"],
        "id" => &["1", "123", "42"],
        _ => &[],
    };
    candidates
        .iter()
        .filter(|c| c.starts_with(prefix))
        .map(|c| (*c).to_owned())
        .collect()
}
