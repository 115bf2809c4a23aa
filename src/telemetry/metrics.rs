//! The request-path instruments: one histogram per the OpenTelemetry MCP
//! semantic conventions, `mcp.server.operation.duration`, whose count is
//! also the request counter. Label values are bounded: the upstream and
//! tool are named only when the gateway knows them (a configured server, a
//! tool from its latest list), never as a client spelled them.
use std::sync::Arc;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Histogram, Meter};
use rmcp::ErrorData;
use tokio::time::Instant;

/// Bucket bounds in seconds, as the MCP semantic conventions advise.
const DURATION_BUCKETS: [f64; 14] = [
    0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// Attribute: the JSON-RPC method (`tools/call`, `prompts/get`, …).
pub const METHOD: &str = "mcp.method.name";
/// Attribute: the tool called, when the gateway knows it.
pub const TOOL: &str = "gen_ai.tool.name";
/// Attribute: the JSON-RPC error code, or `tool_error` for a tool result
/// with `isError`; absent on success.
pub const ERROR_TYPE: &str = "error.type";
/// Attribute: the upstream server, when the gateway knows it.
pub const UPSTREAM: &str = "bulwark.upstream";

/// What an operation was aimed at, as far as the gateway knows it.
#[derive(Debug, Default)]
pub struct Target {
    /// A configured upstream.
    pub upstream: Option<Arc<str>>,
    /// A tool that upstream listed (or one of the gateway's own).
    pub tool: Option<Arc<str>>,
}

/// How an operation ended.
#[derive(Debug, Clone, Copy)]
pub enum Outcome<'a> {
    /// A result without error.
    Ok,
    /// A tool result with `isError: true`.
    ToolError,
    /// A JSON-RPC error.
    Error(&'a ErrorData),
}

/// The synchronous instruments of the request path; cheap to clone.
#[derive(Clone, Debug)]
pub struct RequestMetrics {
    duration: Histogram<f64>,
}

impl RequestMetrics {
    /// The instruments on `meter`.
    pub fn new(meter: &Meter) -> Self {
        let duration = meter
            .f64_histogram("mcp.server.operation.duration")
            .with_unit("s")
            .with_description(
                "MCP requests served by the gateway, by method, upstream, tool and error",
            )
            .with_boundaries(DURATION_BUCKETS.to_vec())
            .build();
        Self { duration }
    }

    /// Instruments that record nothing (metrics off).
    pub fn disabled() -> Self {
        let meter = opentelemetry::metrics::MeterProvider::meter(
            &opentelemetry::metrics::noop::NoopMeterProvider::new(),
            "bulwark",
        );
        Self::new(&meter)
    }

    /// Records one operation of `method` that started at `started`.
    pub fn record(&self, method: &'static str, target: Target, started: Instant, outcome: Outcome) {
        let mut attributes = Vec::with_capacity(4);
        attributes.push(KeyValue::new(METHOD, method));
        if let Some(upstream) = target.upstream {
            attributes.push(KeyValue::new(UPSTREAM, upstream));
        }
        if let Some(tool) = target.tool {
            attributes.push(KeyValue::new(TOOL, tool));
        }
        match outcome {
            Outcome::Ok => {}
            Outcome::ToolError => attributes.push(KeyValue::new(ERROR_TYPE, "tool_error")),
            Outcome::Error(err) => {
                attributes.push(KeyValue::new(ERROR_TYPE, err.code.0.to_string()));
            }
        }
        self.duration
            .record(started.elapsed().as_secs_f64(), &attributes);
    }
}
