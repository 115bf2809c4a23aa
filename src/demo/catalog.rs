//! The `catalog` demo server: seventeen tools of an imaginary office suite
//! (weather, calendar, mail, files, issues, …), each with a distinct
//! description and parameters, next to the echo tools; for tool search,
//! search listings, virtual servers and prefix modes. `learn_tool` adds
//! `summon_llama` to the list and announces `tools/list_changed`. Every
//! catalog tool answers with its own name and arguments. `--tools N` lists
//! exactly N tools (at least the three echo tools): the catalog's cut at N,
//! or filled up with generated ones (`{verb}_{noun}_{i}`, each with its own
//! description) for benchmarks of thousands of tools.
use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use rmcp::{
    ErrorData as McpError, RoleServer,
    model::{CallToolRequestParams, CallToolResult, Tool},
    service::RequestContext,
};
use serde_json::{Value, json};

use crate::demo::common::{arguments, from_json, text_result};
use crate::demo::echo::{EchoServer, ExtraTools};

/// (name, description, parameter names) of every catalog tool.
pub const TOOLS: &[(&str, &str, &[&str])] = &[
    (
        "get_forecast",
        "Weather forecast for a city: temperature, rain and wind for the next days",
        &["city", "days"],
    ),
    (
        "get_weather_alerts",
        "Severe weather warnings issued for a region",
        &["region"],
    ),
    (
        "create_event",
        "Create a calendar event with attendees at a given time",
        &["title", "start", "attendees"],
    ),
    (
        "list_events",
        "List calendar events between two dates",
        &["from", "to"],
    ),
    (
        "send_email",
        "Send an email message to recipients with a subject and body",
        &["to", "subject", "body"],
    ),
    (
        "search_email",
        "Search the mailbox for messages matching words",
        &["query"],
    ),
    (
        "read_file",
        "Read a text file from the shared drive",
        &["path"],
    ),
    (
        "write_file",
        "Write text into a file on the shared drive, replacing it",
        &["path", "content"],
    ),
    (
        "create_issue",
        "Open a new issue in a code repository's bug tracker",
        &["repository", "title", "body"],
    ),
    (
        "list_pull_requests",
        "List open pull requests of a code repository",
        &["repository"],
    ),
    (
        "translate_text",
        "Translate text from one language into another",
        &["text", "target_language"],
    ),
    (
        "convert_currency",
        "Convert an amount of money between currencies at today's exchange rate",
        &["amount", "from_currency", "to_currency"],
    ),
    (
        "run_sql_query",
        "Run a read-only SQL query against the analytics database",
        &["sql"],
    ),
    (
        "get_stock_price",
        "Latest stock market price of a ticker symbol",
        &["ticker"],
    ),
    (
        "book_meeting_room",
        "Reserve a meeting room for a time slot",
        &["room", "start", "minutes"],
    ),
    (
        "create_invoice",
        "Create a customer invoice with line items and a due date",
        &["customer", "items", "due"],
    ),
    (
        "resize_image",
        "Resize an image to the given width and height in pixels",
        &["image_url", "width", "height"],
    ),
];

/// The tool `learn_tool` adds.
pub const LEARNED: (&str, &str, &[&str]) = (
    "summon_llama",
    "Summon a friendly llama that carries luggage across the mountains",
    &["destination"],
);

/// The `catalog` kind's tools and whether `learn_tool` ran.
#[derive(Debug, Clone, Default)]
pub struct CatalogTools {
    learned: Arc<AtomicBool>,
    /// How many tools this server lists next to the echo tools (`--tools`).
    count: Option<usize>,
}

/// Tools the echo server lists before any catalog tool.
const ECHO_TOOLS: usize = 3;
const VERBS: &[&str] = &[
    "create",
    "list",
    "delete",
    "update",
    "search",
    "export",
    "import",
    "sync",
    "archive",
    "render",
    "translate",
    "schedule",
    "approve",
    "merge",
    "share",
    "restore",
];
const NOUNS: &[&str] = &[
    "ticket",
    "invoice",
    "event",
    "document",
    "message",
    "report",
    "image",
    "contact",
    "order",
    "deployment",
    "dashboard",
    "payment",
    "calendar",
    "repository",
    "customer",
    "playlist",
    "shipment",
    "budget",
    "survey",
    "warehouse",
];

/// The `i`th generated tool: a distinct name and a description of its own.
fn generated(i: usize) -> Value {
    let verb = VERBS[i % VERBS.len()];
    let noun = NOUNS[(i / VERBS.len()) % NOUNS.len()];
    json!({
        "name": format!("{verb}_{noun}_{i}"),
        "description": format!("{verb} {noun} records in workspace {} (generated catalog tool {i})", i % 97),
        "inputSchema": { "type": "object", "properties": {
            format!("{noun}_id"): { "type": "string" }, "workspace": { "type": "string" } } },
    })
}

/// The `catalog` demo server.
pub type CatalogServer = EchoServer<CatalogTools>;

impl CatalogServer {
    /// A catalog server that has not learned its extra tool yet.
    pub fn catalog() -> Self {
        EchoServer::with_extras(CatalogTools::default())
    }

    /// A catalog server listing exactly `count` tools (`--tools`).
    pub fn with_tool_count(count: usize) -> Self {
        EchoServer::with_extras(CatalogTools {
            count: Some(count),
            ..CatalogTools::default()
        })
    }
}

fn definition((name, description, params): (&str, &str, &[&str])) -> Value {
    let properties: serde_json::Map<String, Value> = params
        .iter()
        .map(|param| ((*param).to_owned(), json!({ "type": "string" })))
        .collect();
    json!({
        "name": name,
        "description": description,
        "inputSchema": { "type": "object", "properties": properties },
    })
}

impl ExtraTools for CatalogTools {
    fn server_name(&self) -> &'static str {
        "bulwark-demo-catalog"
    }

    fn tool_list_changes(&self) -> bool {
        true
    }

    fn tools(&self) -> Result<Vec<Tool>, McpError> {
        let mut tools: Vec<Value> = TOOLS.iter().copied().map(definition).collect();
        if self.learned.load(Ordering::SeqCst) {
            tools.push(definition(LEARNED));
        }
        tools.push(json!({
            "name": "learn_tool",
            "description": "Adds summon_llama to this server's tools and announces tools/list_changed (demo control)",
            "inputSchema": { "type": "object", "properties": {} },
        }));
        if let Some(count) = self.count {
            let wanted = count.saturating_sub(ECHO_TOOLS);
            tools.truncate(wanted);
            let have = tools.len();
            tools.extend((have..wanted).map(generated));
        }
        from_json(Value::Array(tools))
    }

    async fn call(
        &self,
        request: &CallToolRequestParams,
        context: &RequestContext<RoleServer>,
    ) -> Option<Result<CallToolResult, McpError>> {
        let name = request.name.as_ref();
        if name == "learn_tool" {
            self.learned.store(true, Ordering::SeqCst);
            if let Err(err) = context.peer.notify_tool_list_changed().await {
                eprintln!("demo-server catalog: could not send list_changed: {err}");
            }
            return Some(Ok(text_result("learned summon_llama")));
        }
        let listed = |wanted: &str| {
            self.tools()
                .is_ok_and(|tools| tools.iter().any(|tool| tool.name == wanted))
        };
        let known = match self.count {
            // Only what this server lists (cut or generated).
            Some(_) => listed(name),
            None => {
                TOOLS.iter().any(|(tool, _, _)| *tool == name)
                    || (name == LEARNED.0 && self.learned.load(Ordering::SeqCst))
            }
        };
        known.then(|| {
            let args = Value::Object(arguments(request));
            Ok(text_result(format!("{name} {args}")))
        })
    }
}
