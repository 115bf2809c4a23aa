//! Observable instruments: their callbacks read, at each collection, the
//! counters the gateway already keeps for `/api/v1/actors`, the gateway
//! tools and the guardrail report, so the JSON API and the metrics come from
//! one source and the request path pays nothing extra for them.
use std::sync::{Arc, Weak};

use bulwark_actors::cache::CacheKind;
use bulwark_actors::mailbox::MailboxStats;
use bulwark_actors::timeout::{MetricsSnapshot, OpCounts};
use bulwark_actors::upstream::UpstreamState;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{AsyncInstrument, Meter};

use super::metrics::UPSTREAM;
use crate::mcp::Gateway;

/// Registers every observable instrument on `meter`; they read `gateway`
/// for as long as it lives.
pub fn register(meter: &Meter, gateway: &Arc<Gateway>) {
    upstreams(meter, gateway);
    actors(meter, gateway);
    guardrails(meter, gateway);
    cache(meter, gateway);
    tokens(meter, gateway);
    deadlines(meter, gateway);
    front(meter, gateway);
}

/// Registers an observable u64 counter whose callback reads `gateway`.
fn counter(
    meter: &Meter,
    gateway: &Arc<Gateway>,
    name: &'static str,
    description: &'static str,
    read: impl Fn(&Gateway, &dyn AsyncInstrument<u64>) + Send + Sync + 'static,
) {
    let weak = Arc::downgrade(gateway);
    meter
        .u64_observable_counter(name)
        .with_description(description)
        .with_callback(move |observer| with(&weak, |g| read(g, observer)))
        .build();
}

/// Registers an observable i64 gauge whose callback reads `gateway`.
fn gauge(
    meter: &Meter,
    gateway: &Arc<Gateway>,
    name: &'static str,
    description: &'static str,
    read: impl Fn(&Gateway, &dyn AsyncInstrument<i64>) + Send + Sync + 'static,
) {
    let weak = Arc::downgrade(gateway);
    meter
        .i64_observable_gauge(name)
        .with_description(description)
        .with_callback(move |observer| with(&weak, |g| read(g, observer)))
        .build();
}

fn with(weak: &Weak<Gateway>, read: impl FnOnce(&Gateway)) {
    if let Some(gateway) = weak.upgrade() {
        read(&gateway);
    }
}

fn count(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

fn upstream(name: &str) -> KeyValue {
    KeyValue::new(UPSTREAM, name.to_owned())
}

fn upstreams(meter: &Meter, gateway: &Arc<Gateway>) {
    gauge(
        meter,
        gateway,
        "bulwark.upstream.state",
        "1 for the state each upstream is in, 0 for the others",
        |g, o| {
            for entry in g.registry.servers().iter() {
                let current = entry.pool.state();
                for state in UpstreamState::ALL {
                    o.observe(
                        i64::from(state == current),
                        &[
                            upstream(&entry.spec.name),
                            KeyValue::new("state", state.as_str()),
                        ],
                    );
                }
            }
        },
    );
    counter(
        meter,
        gateway,
        "bulwark.upstream.restarts",
        "Upstream restarts by why the instance before ended (exit, signal, hung, token_rotation, requested, …)",
        |g, o| {
            for entry in g.registry.servers().iter() {
                for (reason, n) in entry.pool.restarts_by_reason() {
                    o.observe(
                        u64::from(n),
                        &[upstream(&entry.spec.name), KeyValue::new("reason", reason)],
                    );
                }
            }
        },
    );
    gauge(
        meter,
        gateway,
        "bulwark.upstream.calls_in_flight",
        "Requests waiting on each upstream",
        |g, o| {
            for entry in g.registry.servers().iter() {
                o.observe(count(entry.pool.in_flight()), &[upstream(&entry.spec.name)]);
            }
        },
    );
    gauge(
        meter,
        gateway,
        "bulwark.upstream.instance.routable",
        "1 for each pool instance that takes calls (ready, not ejected), 0 otherwise",
        |g, o| {
            for entry in g.registry.servers().iter() {
                for status in entry.pool.instances() {
                    o.observe(
                        i64::from(status.routable_link().is_some()),
                        &[upstream(&entry.spec.name), instance(status.index())],
                    );
                }
            }
        },
    );
    counter(
        meter,
        gateway,
        "bulwark.upstream.instance.ejections",
        "Times health checks took each pool instance out of rotation",
        |g, o| {
            for entry in g.registry.servers().iter() {
                for status in entry.pool.instances() {
                    o.observe(
                        u64::from(status.ejections()),
                        &[upstream(&entry.spec.name), instance(status.index())],
                    );
                }
            }
        },
    );
}

/// An instance's actor name: the server's, with `#N` in a pool of several.
pub(crate) fn instance_name(
    entry: &bulwark_supervisors::registry::ServerEntry,
    index: usize,
) -> String {
    if entry.pool.instances().len() == 1 {
        entry.spec.name.clone()
    } else {
        format!("{}#{index}", entry.spec.name)
    }
}

fn instance(index: usize) -> KeyValue {
    KeyValue::new("instance", i64::try_from(index).unwrap_or(i64::MAX))
}

/// Every actor's mailbox, as `/api/v1/actors` lists them.
fn each_mailbox(g: &Gateway, mut visit: impl FnMut(&MailboxStats, [KeyValue; 2])) {
    let actor = |name: &str, kind: &'static str| {
        [
            KeyValue::new("actor", name.to_owned()),
            KeyValue::new("kind", kind),
        ]
    };
    let registry = &g.registry;
    visit(&registry.root_mailbox, actor("root", "root_supervisor"));
    for shared in registry.shared() {
        visit(&shared.mailbox, actor(shared.name, shared.kind));
    }
    for entry in registry.servers().iter() {
        let name = &entry.spec.name;
        visit(&entry.supervisor_mailbox, actor(name, "server_supervisor"));
        for status in entry.pool.instances() {
            visit(
                &status.mailbox,
                actor(&instance_name(entry, status.index()), "upstream"),
            );
        }
    }
}

fn actors(meter: &Meter, gateway: &Arc<Gateway>) {
    gauge(
        meter,
        gateway,
        "bulwark.actor.mailbox.depth",
        "Messages waiting in each actor's mailbox",
        |g, o| each_mailbox(g, |stats, attrs| o.observe(count(stats.depth()), &attrs)),
    );
    counter(
        meter,
        gateway,
        "bulwark.actor.messages.handled",
        "Messages each actor has handled",
        |g, o| each_mailbox(g, |stats, attrs| o.observe(stats.handled_total(), &attrs)),
    );
    counter(
        meter,
        gateway,
        "bulwark.actor.restarts",
        "Restarts of each shared actor by the root supervisor",
        |g, o| {
            for shared in g.registry.shared() {
                o.observe(
                    u64::from(shared.restart_count()),
                    &[
                        KeyValue::new("actor", shared.name),
                        KeyValue::new("kind", shared.kind),
                    ],
                );
            }
        },
    );
}

fn guardrails(meter: &Meter, gateway: &Arc<Gateway>) {
    counter(
        meter,
        gateway,
        "bulwark.guardrail.blocks",
        "Requests and results refused by a guardrail, by policy, direction and detector",
        |g, o| {
            for row in g.guardrails.block_counts() {
                o.observe(
                    row.count,
                    &[
                        KeyValue::new("policy", row.policy),
                        KeyValue::new("direction", row.direction),
                        KeyValue::new("detector", row.detector),
                    ],
                );
            }
        },
    );
    counter(
        meter,
        gateway,
        "bulwark.guardrail.checks",
        "Guardrail checks run, by direction",
        |g, o| {
            let stats = g.guardrails.stats();
            o.observe(stats.inputs_checked, &[KeyValue::new("direction", "input")]);
            o.observe(
                stats.outputs_checked,
                &[KeyValue::new("direction", "output")],
            );
        },
    );
    counter(
        meter,
        gateway,
        "bulwark.guardrail.rewrites",
        "Values replaced by placeholders (input) or masked (output)",
        |g, o| {
            let stats = g.guardrails.stats();
            o.observe(stats.redacted, &[KeyValue::new("direction", "input")]);
            o.observe(stats.masked, &[KeyValue::new("direction", "output")]);
        },
    );
    counter(
        meter,
        gateway,
        "bulwark.guardrail.provider_errors",
        "Remote guardrail provider failures and timeouts",
        |g, o| o.observe(g.guardrails.stats().provider_errors, &[]),
    );
    counter(
        meter,
        gateway,
        "bulwark.guardrail.tools_flagged",
        "Tools flagged by tool-list scans (poisoning, rug pulls)",
        |g, o| o.observe(g.guardrails.stats().tools_flagged, &[]),
    );
}

fn cache(meter: &Meter, gateway: &Arc<Gateway>) {
    type Read = fn(&bulwark_actors::cache::KindStats) -> u64;
    let kinds: [(&'static str, &'static str, Read); 5] = [
        ("bulwark.cache.hits", "Cache reads answered, by kind", |k| {
            k.hits
        }),
        (
            "bulwark.cache.misses",
            "Cache reads that found nothing, by kind",
            |k| k.misses,
        ),
        (
            "bulwark.cache.evictions",
            "Entries evicted to stay within bounds, by kind",
            |k| k.evictions,
        ),
        (
            "bulwark.cache.expirations",
            "Entries dropped when their TTL ran out, by kind",
            |k| k.expirations,
        ),
        (
            "bulwark.cache.errors",
            "Cache backend operations that failed, by kind",
            |k| k.errors,
        ),
    ];
    for (name, description, read) in kinds {
        counter(meter, gateway, name, description, move |g, o| {
            for row in g.cache.stats().kinds {
                o.observe(read(&row), &[kind(row.kind)]);
            }
        });
    }
    gauge(
        meter,
        gateway,
        "bulwark.cache.entries",
        "Live entries in the memory cache, by kind (absent on Redis)",
        |g, o| {
            for row in g.cache.stats().kinds {
                if let Some(entries) = row.entries {
                    o.observe(count(entries), &[kind(row.kind)]);
                }
            }
        },
    );
}

fn kind(kind: CacheKind) -> KeyValue {
    KeyValue::new("kind", kind.name())
}

fn tokens(meter: &Meter, gateway: &Arc<Gateway>) {
    type Read = fn(&bulwark_actors::oauth::TokenMetricsSnapshot) -> u64;
    let counts: [(&'static str, &'static str, Read); 3] = [
        (
            "bulwark.oauth.token.acquisitions",
            "Upstream OAuth tokens obtained",
            |t| t.acquisitions,
        ),
        (
            "bulwark.oauth.token.failures",
            "Upstream OAuth token requests that failed",
            |t| t.failures,
        ),
        (
            "bulwark.oauth.token.refreshes",
            "Proactive token refreshes that succeeded",
            |t| t.refreshes,
        ),
    ];
    for (name, description, read) in counts {
        counter(meter, gateway, name, description, move |g, o| {
            o.observe(read(&g.registry.tokens.metrics.snapshot()), &[]);
        });
    }
    let weak = Arc::downgrade(gateway);
    meter
        .f64_observable_gauge("bulwark.oauth.token.request.duration")
        .with_unit("s")
        .with_description("Token request time (retries included): mean and max since start")
        .with_callback(move |o| {
            with(&weak, |g| {
                let t = g.registry.tokens.metrics.snapshot();
                let secs = |us: u64| us as f64 / 1e6;
                o.observe(secs(t.latency_us_mean), &[KeyValue::new("stat", "mean")]);
                o.observe(secs(t.latency_us_max), &[KeyValue::new("stat", "max")]);
            });
        })
        .build();
}

fn deadlines(meter: &Meter, gateway: &Arc<Gateway>) {
    type Read = fn(&OpCounts) -> u64;
    let events: [(&'static str, &'static str, Read); 3] = [
        (
            "bulwark.deadline.warnings",
            "Operations past the warn share of their deadline",
            |c| c.warned,
        ),
        (
            "bulwark.deadline.timeouts",
            "Operations cancelled at their deadline",
            |c| c.timed_out,
        ),
        (
            "bulwark.deadline.hung",
            "Operations whose instance was declared hung",
            |c| c.escalated,
        ),
    ];
    for (name, description, read) in events {
        counter(meter, gateway, name, description, move |g, o| {
            each_op_count(g, &g.deadlines.metrics(), |c, attrs| {
                o.observe(read(c), attrs)
            });
        });
    }
}

/// Each configured upstream's counts (labelled by upstream) and each
/// kind's (by `op_kind`), as the escalation actor keeps them. Rows under
/// names no longer (or never) configured are left out.
fn each_op_count(
    g: &Gateway,
    snapshot: &MetricsSnapshot,
    mut visit: impl FnMut(&OpCounts, &[KeyValue]),
) {
    for row in &snapshot.kinds {
        visit(&row.counts, &[KeyValue::new("op_kind", row.kind.name())]);
    }
    for row in &snapshot.upstreams {
        if g.registry.get(&row.upstream).is_some() {
            visit(
                &row.counts,
                &[KeyValue::new(UPSTREAM, row.upstream.clone())],
            );
        }
    }
}

fn front(meter: &Meter, gateway: &Arc<Gateway>) {
    gauge(
        meter,
        gateway,
        "bulwark.sessions.open",
        "MCP client sessions open",
        |g, o| o.observe(count(g.sessions.open()), &[]),
    );
    counter(
        meter,
        gateway,
        "bulwark.auth.failures",
        "Requests refused by authentication or authorization, by reason",
        |g, o| {
            for (reason, n) in g.auth.failures.snapshot() {
                o.observe(n, &[KeyValue::new("reason", reason)]);
            }
        },
    );
    counter(
        meter,
        gateway,
        "bulwark.ratelimit.refusals",
        "Requests refused by a rate limit, by limit",
        |g, o| {
            for (limit, n) in g.auth.limits().refusals() {
                o.observe(n, &[KeyValue::new("limit", limit.as_str())]);
            }
        },
    );
    counter(
        meter,
        gateway,
        "bulwark.ratelimit.fallbacks",
        "Per-key checks answered by the local limiter because the shared one (Redis) was unreachable",
        |g, o| {
            if let Some(n) = g.auth.limits().shared_fallbacks() {
                o.observe(n, &[]);
            }
        },
    );
}
