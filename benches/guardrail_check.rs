//! Cost of the local guardrail provider per call: input checks on realistic
//! 1 KB and 100 KB tool arguments (clean, and with PII to redact), an output
//! check that masks and restores, and a poisoning + pin scan of 50 tools.
//! Target: under 50 µs for a 1 KB input. Prints figures; asserts nothing.
//!
//! Each case is measured twice: wall time (`wall/…`), and CPU time of the
//! benchmarking thread (`cpu/…`), which other processes on a shared machine
//! cannot inflate. The checks run on a current-thread runtime, so the thread's
//! CPU time is the whole cost.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use bulwark_actors::guardrail::{GuardrailConfig, Guardrails, InputKind, Redactions};
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use nix::time::{ClockId, clock_gettime};
use rmcp::model::Tool;
use serde_json::{Value, json};

const PROSE: &[&str] = &[
    "Summarise the quarterly report and highlight revenue changes by region.",
    "The deployment pipeline runs integration tests before promoting a build.",
    "Customers asked for a dark mode and faster search in the mobile app.",
    "Schedule the review for Thursday afternoon with the platform team.",
    "Latency rose after the cache migration; investigate the hit ratio.",
];

const PII: &[&str] = &[
    "Contact jane.doe@example.com or call +1 415-555-0132 about the invoice.",
    "Card 4111 1111 1111 1111 was charged; refund to IBAN GB82 WEST 1234 5698 7654 32.",
    "Employee SSN 123-45-6789 is on file; VPN from 192.168.10.24.",
];

/// Tool arguments of about `bytes` bytes: a query, filters and a list of
/// notes, like a search or ticketing tool takes; one note in four has PII
/// when `with_pii`.
fn arguments(bytes: usize, with_pii: bool) -> Value {
    let mut notes = Vec::new();
    let mut value = json!({});
    let mut i = 0;
    while serde_json::to_vec(&value).unwrap().len() < bytes {
        let text = if with_pii && i % 4 == 3 {
            PII[i / 4 % PII.len()]
        } else {
            PROSE[i % PROSE.len()]
        };
        notes.push(json!({ "id": i, "text": text, "tags": ["ops", "q3"] }));
        value = json!({
            "query": "open incidents for the payments service",
            "filters": { "status": ["open", "triaged"], "limit": 50, "since": "2026-01-01" },
            "notes": notes,
        });
        i += 1;
    }
    value
}

fn tools(n: usize) -> Vec<Tool> {
    (0..n)
        .map(|i| {
            serde_json::from_value(json!({
                "name": format!("tool_{i}"),
                "title": format!("Tool number {i}"),
                "description": format!("{} Returns a JSON summary.", PROSE[i % PROSE.len()]),
                "inputSchema": {
                    "type": "object",
                    "properties": {
                        "query": { "type": "string", "description": "What to look for" },
                        "limit": { "type": "integer", "minimum": 1, "maximum": 100 },
                        "since": { "type": "string", "format": "date" }
                    },
                    "required": ["query"]
                }
            }))
            .unwrap()
        })
        .collect()
}

/// CPU time of the calling thread, in nanoseconds.
struct ThreadCpuTime {
    /// Lends its nanosecond formatter.
    wall: WallTime,
}

fn thread_cpu_ns() -> u64 {
    let now = clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).unwrap();
    now.tv_sec() as u64 * 1_000_000_000 + now.tv_nsec() as u64
}

impl Measurement for ThreadCpuTime {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns() - start
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, value: &u64) -> f64 {
        *value as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        self.wall.formatter()
    }
}

fn bench_wall(c: &mut Criterion) {
    bench(c, "wall");
}

fn bench_cpu(c: &mut Criterion<ThreadCpuTime>) {
    bench(c, "cpu");
}

fn bench<M: Measurement + 'static>(c: &mut Criterion<M>, clock: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let guardrails = Guardrails::new(GuardrailConfig::default()).unwrap();

    let mut group = c.benchmark_group(format!("{clock}/check_input"));
    for (name, bytes, with_pii) in [
        ("1KB_clean", 1024, false),
        ("1KB_pii", 1024, true),
        ("100KB_clean", 100 * 1024, false),
        ("100KB_pii", 100 * 1024, true),
    ] {
        let args = arguments(bytes, with_pii);
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter_batched(
                || args.clone(),
                |mut args| {
                    let guardrails = guardrails.clone();
                    async move {
                        let redactions = guardrails
                            .check_input("bench", InputKind::ToolArguments, &mut args)
                            .await
                            .unwrap();
                        black_box((args, redactions))
                    }
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();

    let mut group = c.benchmark_group(format!("{clock}/check_output"));
    let mut args = arguments(1024, true);
    let redactions = runtime
        .block_on(guardrails.check_input("bench", InputKind::ToolArguments, &mut args))
        .unwrap();
    // The upstream echoes the placeholders and adds PII of its own.
    let result = json!({
        "content": [{ "type": "text", "text": format!("{args} Owner: ops-lead@example.org") }],
        "isError": false
    });
    group.bench_function("1KB_mask_and_restore", |b| {
        b.to_async(&runtime).iter_batched(
            || result.clone(),
            |mut result| {
                let (guardrails, redactions): (Guardrails, &Redactions) =
                    (guardrails.clone(), &redactions);
                async move {
                    let report = guardrails
                        .check_output("bench", &mut result, redactions)
                        .await
                        .unwrap();
                    black_box((result, report))
                }
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();

    let list = tools(50);
    guardrails.scan_tools("bench", list.clone());
    c.bench_function(&format!("{clock}/scan_tools/50_tools"), |b| {
        b.iter_batched(
            || list.clone(),
            |list| black_box(guardrails.scan_tools("bench", list)),
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(wall, bench_wall);
criterion_group! {
    name = cpu;
    config = Criterion::default().with_measurement(ThreadCpuTime { wall: WallTime });
    targets = bench_cpu
}
criterion_main!(wall, cpu);
