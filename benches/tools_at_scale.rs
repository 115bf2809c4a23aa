//! Living with hundreds of tools: the `bulwark__search_tools` index over
//! 10,000 tools (criterion, the index directly: what one search costs the
//! gateway beyond reading cached lists), then a printed load scenario:
//! `tools/list` size and latency with 50 `catalog --tools 20` upstreams for
//! a project in `full` listing against one in `search` listing, and
//! `bulwark__search_tools` end to end over those 1,000 tools and over
//! 10,000 (50 upstreams of 200 tools; a first search indexes them, untimed).
//! Asserts nothing about speed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bulwark::mcp::search::{Segment, ToolIndex};
use criterion::{Criterion, criterion_group};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, Tool};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

mod support;
use support::{BIN, spawn};

const VERBS: &[&str] = &[
    "create",
    "list",
    "delete",
    "update",
    "search",
    "get",
    "send",
    "export",
    "import",
    "sync",
    "archive",
    "render",
    "translate",
    "schedule",
    "approve",
    "merge",
];
const NOUNS: &[&str] = &[
    "issue",
    "invoice",
    "event",
    "file",
    "message",
    "ticket",
    "report",
    "image",
    "contact",
    "order",
    "deployment",
    "dashboard",
    "invoice",
    "payment",
    "calendar",
    "repository",
    "customer",
    "alert",
    "document",
    "playlist",
    "shipment",
    "forecast",
    "budget",
    "backup",
];
const DOMAINS: &[&str] = &[
    "billing",
    "support",
    "analytics",
    "storage",
    "mail",
    "crm",
    "devops",
    "media",
    "finance",
    "travel",
    "weather",
    "music",
];

/// Tool `i` of server `s`: a verb-noun name, a sentence of description, and
/// three parameters, drawn deterministically from the word lists.
fn synthetic_tool(s: usize, i: usize) -> Tool {
    let pick = |list: &[&'static str], k: usize| list[k % list.len()];
    let (verb, noun) = (pick(VERBS, s * 7 + i), pick(NOUNS, s * 3 + i * 5));
    let domain = pick(DOMAINS, s);
    let name = format!("{verb}_{noun}_{i}");
    let description = format!(
        "{verb} a {noun} in the {domain} system; returns the {} and its {} for the given {}",
        pick(NOUNS, i + 1),
        pick(NOUNS, s + 2),
        pick(NOUNS, s + i + 3)
    );
    let schema = serde_json::json!({
        "type": "object",
        "properties": {
            format!("{noun}_id"): { "type": "string" },
            pick(NOUNS, s + i): { "type": "string" },
            "limit": { "type": "integer" },
        },
    });
    let serde_json::Value::Object(schema) = schema else {
        unreachable!()
    };
    Tool::new(name, description, Arc::new(schema))
}

/// 500 servers × 20 tools.
fn ten_thousand() -> (ToolIndex, Vec<Arc<str>>) {
    let index = ToolIndex::default();
    let mut servers = Vec::new();
    for s in 0..500 {
        let name = format!("{}{s}", DOMAINS[s % DOMAINS.len()]);
        let tools = (0..20).map(|i| synthetic_tool(s, i)).collect();
        let generation = index.generation(&name);
        index.insert(&name, generation, Segment::build(&name, tools));
        servers.push(Arc::from(name));
    }
    (index, servers)
}

fn index_benches(c: &mut Criterion) {
    let (index, servers) = ten_thousand();
    let mut group = c.benchmark_group("tool_search_10k");
    group.bench_function("search 3 words, top 10", |b| {
        b.iter(|| black_box(index.search("create billing invoice", 10, &servers, |_, _| true)))
    });
    group.bench_function("search 6 words, top 10", |b| {
        b.iter(|| {
            black_box(index.search(
                "send a message to the customer about the shipment",
                10,
                &servers,
                |_, _| true,
            ))
        })
    });
    group.bench_function("search with a grant filter (half the tools)", |b| {
        b.iter(|| {
            black_box(
                index.search("export dashboard report", 10, &servers, |_, tool| {
                    tool.name.len() % 2 == 0
                }),
            )
        })
    });
    group.bench_function("re-index one server of 20 tools (list_changed)", |b| {
        let tools: Vec<Tool> = (0..20).map(|i| synthetic_tool(7, i)).collect();
        b.iter(|| {
            let generation = index.generation("billing7");
            index.insert(
                "billing7",
                generation,
                Segment::build("billing7", tools.clone()),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, index_benches);

async fn client(url: &str, key: &str) -> RunningService<RoleClient, ()> {
    let config =
        StreamableHttpClientTransportConfig::with_uri(url.to_owned()).auth_header(key.to_owned());
    ().serve(StreamableHttpClientTransport::from_config(config))
        .await
        .unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at].as_secs_f64() * 1e6
}

struct Figures {
    p50_us: f64,
    p99_us: f64,
    bytes: usize,
    tools: usize,
}

async fn list_figures(client: &RunningService<RoleClient, ()>, rounds: usize) -> Figures {
    let first = client.peer().list_tools(None).await.unwrap();
    let bytes = serde_json::to_vec(&first).unwrap().len();
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        black_box(client.peer().list_tools(None).await.unwrap());
        times.push(started.elapsed());
    }
    times.sort();
    Figures {
        p50_us: percentile(&times, 0.5),
        p99_us: percentile(&times, 0.99),
        bytes,
        tools: first.tools.len(),
    }
}

/// A gateway over `upstreams` catalog servers of `tools_each` tools, with a
/// `full` and a `search` listing project: (gateway, URL, full key, search
/// key, its directory).
async fn gateway_over(
    upstreams: usize,
    tools_each: usize,
) -> (
    support::Proc,
    String,
    bulwark::auth::keys::NewKey,
    bulwark::auth::keys::NewKey,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let (full_key, lean_key) = (
        bulwark::auth::keys::generate().unwrap(),
        bulwark::auth::keys::generate().unwrap(),
    );
    let mut toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {data:?}\n[guardrails]\nenabled = false\n\
         [auth]\nenabled = true\n\
         [auth.rate_limits]\nper_key = {{ per_minute = 60000000, burst = 1000000 }}\n\
         per_upstream = {{ per_minute = 60000000, burst = 1000000 }}\n\
         [auth.projects.full]\nupstreams = [\"*\"]\n\
         [auth.projects.lean]\nupstreams = [\"*\"]\ntool_listing = \"search\"\n\
         pinned_tools = [\"office0__get_forecast\", \"office1__send_email\", \"office2__read_file\"]\n\
         [[auth.keys]]\nid = \"full\"\nhash = {full:?}\nuser = \"bench\"\nproject = \"full\"\n\
         [[auth.keys]]\nid = \"lean\"\nhash = {lean:?}\nuser = \"bench\"\nproject = \"lean\"\n",
        data = dir.path().join("data").display().to_string(),
        full = full_key.hash.to_stored(),
        lean = lean_key.hash.to_stored(),
    );
    for i in 0..upstreams {
        toml.push_str(&format!(
            "[upstreams.office{i}]\ncommand = {BIN:?}\nargs = [\"demo-server\", \"catalog\", \"--tools\", \"{tools_each}\"]\n"
        ));
    }
    let path = dir
        .path()
        .join(format!("bench-{upstreams}x{tools_each}.toml"));
    std::fs::write(&path, toml).unwrap();
    let (gateway, url) = spawn(
        &["serve", "--config", &path.display().to_string()],
        dir.path(),
    );
    support::wait_ready(url.trim_end_matches("/mcp")).await;
    (gateway, url, full_key, lean_key, dir)
}

/// A gateway tool that does next to nothing (`bulwark__cache_status`), end
/// to end, 200 calls: (p50, p99) µs. What any call costs through the
/// session, for the search's figures to be read against.
async fn trivial_call_figures(client: &RunningService<RoleClient, ()>) -> (f64, f64) {
    let mut times = Vec::new();
    for _ in 0..200 {
        let started = Instant::now();
        let result = client
            .peer()
            .call_tool(CallToolRequestParams::new("bulwark__cache_status"))
            .await
            .unwrap();
        times.push(started.elapsed());
        assert_ne!(result.is_error, Some(true));
    }
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99))
}

/// `bulwark__search_tools` end to end (top 10), 200 searches: (p50, p99) µs.
async fn search_figures(client: &RunningService<RoleClient, ()>) -> (f64, f64) {
    // The first search reads and indexes every list; the figures are searches.
    let mut warm = CallToolRequestParams::new("bulwark__search_tools");
    warm.arguments = serde_json::json!({ "query": "warm up" })
        .as_object()
        .cloned();
    client.peer().call_tool(warm).await.unwrap();
    let mut times = Vec::new();
    for round in 0..200 {
        let query = [
            "weather forecast for a city",
            "send an email",
            "convert currency",
            "resize image",
        ][round % 4];
        let mut params = CallToolRequestParams::new("bulwark__search_tools");
        params.arguments = serde_json::json!({ "query": query, "limit": 10 })
            .as_object()
            .cloned();
        let started = Instant::now();
        let result = client.peer().call_tool(params).await.unwrap();
        times.push(started.elapsed());
        assert_ne!(result.is_error, Some(true));
    }
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99))
}

async fn load_scenario() {
    // 50 upstreams x 20 tools: what each listing mode costs.
    let (gateway, url, full_key, lean_key, _dir) = gateway_over(50, 20).await;
    let full = client(&url, &full_key.secret).await;
    let lean = client(&url, &lean_key.secret).await;
    let full_figures = list_figures(&full, 200).await;
    let lean_figures = list_figures(&lean, 200).await;
    for (mode, f) in [("full", &full_figures), ("search", &lean_figures)] {
        println!(
            "tools/list, 50 upstreams x 20 tools, {mode} listing: {} tools, {:.1} KiB, p50 {:.0} µs, p99 {:.0} µs",
            f.tools,
            f.bytes as f64 / 1024.0,
            f.p50_us,
            f.p99_us
        );
    }
    let (p50, p99) = search_figures(&lean).await;
    println!(
        "bulwark__search_tools end to end over 1,000 tools (top 10): p50 {p50:.0} µs, p99 {p99:.0} µs"
    );
    drop((full, lean, gateway));

    // 50 upstreams x 200 tools: search over 10,000 indexed tools.
    let (_gateway, url, _, lean_key, _dir) = gateway_over(50, 200).await;
    let lean = client(&url, &lean_key.secret).await;
    let (p50, p99) = search_figures(&lean).await;
    println!(
        "bulwark__search_tools end to end over 10,000 tools (top 10): p50 {p50:.0} µs, p99 {p99:.0} µs"
    );
    let (p50, p99) = trivial_call_figures(&lean).await;
    println!(
        "for comparison, bulwark__cache_status end to end on the same session: p50 {p50:.0} µs, p99 {p99:.0} µs"
    );
    drop(lean);
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(load_scenario());
}
