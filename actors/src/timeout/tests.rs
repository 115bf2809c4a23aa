//! The escalation actor on paused time with a fake instance probe: stage
//! order and timing, progress extension, overrides, probes.
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use ractor::{Actor, ActorRef};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::*;

#[derive(Clone, Copy)]
enum Answer {
    Never,
    Yes,
    No,
}

/// Counts pings, answers as told, reports hung declarations on a channel.
struct FakeProbe {
    answer: Answer,
    pings: AtomicUsize,
    hung: mpsc::UnboundedSender<(String, String)>,
}

impl InstanceProbe for FakeProbe {
    fn responsive(&self, _upstream: Arc<str>) -> BoxFuture<'static, bool> {
        self.pings.fetch_add(1, Ordering::SeqCst);
        match self.answer {
            Answer::Never => Box::pin(std::future::pending()),
            Answer::Yes => Box::pin(async { true }),
            Answer::No => Box::pin(async { false }),
        }
    }

    fn declare_hung(&self, upstream: &str, reason: &str) {
        let _ = self.hung.send((upstream.to_owned(), reason.to_owned()));
    }
}

struct Rig {
    escalation: Escalation,
    actor: ActorRef<EscalationMsg>,
    probe: Arc<FakeProbe>,
    hung: mpsc::UnboundedReceiver<(String, String)>,
}

async fn rig(config: serde_json::Value, answer: Answer) -> Rig {
    let config: TimeoutsConfig = serde_json::from_value(config).unwrap();
    let escalation = Escalation::new(&config, "__").unwrap();
    let (tx, hung) = mpsc::unbounded_channel();
    let probe = Arc::new(FakeProbe {
        answer,
        pings: AtomicUsize::new(0),
        hung: tx,
    });
    let (actor, _) = Actor::spawn(
        None,
        EscalationActor,
        EscalationArgs::new(escalation.clone(), probe.clone()),
    )
    .await
    .unwrap();
    Rig {
        escalation,
        actor,
        probe,
        hung,
    }
}

fn tool_op(rig: &Rig, upstream: &str, tool: &str) -> OpGuard {
    rig.escalation
        .track(OpKind::ToolExecution, upstream.into(), Some(tool.into()))
}

/// Advances paused time in 1 ms steps until `condition` holds; returns the
/// time since `start` at that moment.
async fn when(start: Instant, mut condition: impl FnMut() -> bool) -> Duration {
    let limit = start + Duration::from_secs(3600);
    while !condition() {
        assert!(Instant::now() < limit, "condition never met");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    start.elapsed()
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// `at` lies within two ticks after `expected`.
fn around(at: Duration, expected: f64) {
    let expected = secs(expected);
    assert!(
        at >= expected && at <= expected + DEFAULT_TICK * 3,
        "at {at:?}, expected {expected:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn warn_then_timeout_then_hung_at_their_thresholds() {
    let mut rig = rig(json!({"deadlines": {"tool_execution": 10}}), Answer::Never).await;
    let start = Instant::now();
    let op = tool_op(&rig, "slow", "hang");
    let escalation = rig.escalation.clone();
    let warned_at = when(start, || {
        escalation.metrics().kind(OpKind::ToolExecution).warned == 1
    })
    .await;
    around(warned_at, 8.0);
    assert!(!op.token().is_cancelled());
    assert_eq!(op.timed_out(), None);

    op.token().cancelled().await;
    around(start.elapsed(), 10.0);
    let info = op.timed_out().unwrap();
    assert_eq!(&*info.upstream, "slow");
    assert_eq!(info.tool.as_deref(), Some("hang"));
    assert_eq!(info.deadline, secs(10.0));
    assert_eq!(
        info.to_string(),
        "tool_execution on upstream `slow` (tool `hang`) timed out after 10s"
    );

    let (upstream, reason) = rig.hung.recv().await.unwrap();
    around(start.elapsed(), 12.0);
    assert_eq!(upstream, "slow");
    assert!(reason.contains("did not answer a ping"), "{reason}");
    assert_eq!(rig.probe.pings.load(Ordering::SeqCst), 1);

    drop(op);
    let escalation = rig.escalation.clone();
    when(start, || {
        escalation.metrics().kind(OpKind::ToolExecution).active == 0
    })
    .await;
    let counts = rig.escalation.metrics().kind(OpKind::ToolExecution);
    assert_eq!(
        counts,
        OpCounts {
            active: 0,
            completed: 0,
            warned: 1,
            timed_out: 1,
            escalated: 1
        }
    );
    assert_eq!(
        rig.escalation.metrics().upstream("slow").unwrap().counts,
        counts
    );
    rig.actor.stop(None);
}

#[tokio::test(start_paused = true)]
async fn an_operation_done_before_warn_is_never_escalated_and_its_latency_counts() {
    let rig = rig(json!({"deadlines": {"tool_execution": 10}}), Answer::Never).await;
    let start = Instant::now();
    let op = tool_op(&rig, "echo", "echo");
    let token = op.token().clone();
    tokio::time::sleep(secs(5.0)).await;
    drop(op);
    tokio::time::sleep(secs(30.0)).await;
    assert!(!token.is_cancelled());
    let metrics = rig.escalation.metrics();
    assert_eq!(
        metrics.kind(OpKind::ToolExecution),
        OpCounts {
            completed: 1,
            ..OpCounts::default()
        }
    );
    assert_eq!(rig.probe.pings.load(Ordering::SeqCst), 0);
    let latency = metrics.tool("echo", "echo").unwrap();
    assert_eq!(latency.count, 1);
    assert_eq!(latency.mean_ms, 5000.0);
    assert_eq!(latency.p50_le_ms, Some(5000));
    assert_eq!(metrics.upstream("echo").unwrap().latency.count, 1);
    assert!(start.elapsed() >= secs(35.0));
    rig.actor.stop(None);
}

#[tokio::test(start_paused = true)]
async fn progress_pushes_the_deadline_back_but_not_past_max_total() {
    let rig = rig(
        json!({"deadlines": {"tool_execution": 10}, "reset_on_progress": true, "max_total_secs": 25}),
        Answer::Yes,
    )
    .await;
    let start = Instant::now();
    let op = tool_op(&rig, "slow", "slow");
    let token = op.token().clone();
    let ticking = async {
        loop {
            tokio::time::sleep(secs(5.0)).await;
            op.progress();
        }
    };
    tokio::select! {
        () = token.cancelled() => {}
        () = ticking => unreachable!(),
    }
    // Without the cap progress every 5 s would keep it alive forever.
    around(start.elapsed(), 25.0);
    assert_eq!(
        rig.escalation.metrics().kind(OpKind::ToolExecution).warned,
        1
    );
    assert!(op.timed_out().is_some());
    rig.actor.stop(None);
}

#[tokio::test(start_paused = true)]
async fn progress_extends_by_a_full_deadline_from_the_last_progress() {
    let rig = rig(
        json!({"deadlines": {"tool_execution": 10}, "reset_on_progress": true}),
        Answer::Yes,
    )
    .await;
    let start = Instant::now();
    let op = tool_op(&rig, "slow", "slow");
    tokio::time::sleep(secs(7.0)).await;
    op.progress();
    let escalation = rig.escalation.clone();
    let warned_at = when(start, || {
        escalation.metrics().kind(OpKind::ToolExecution).warned == 1
    })
    .await;
    around(warned_at, 15.0);
    op.token().cancelled().await;
    around(start.elapsed(), 17.0);
    rig.actor.stop(None);
}

#[tokio::test(start_paused = true)]
async fn progress_is_ignored_without_reset_on_progress() {
    let rig = rig(json!({"deadlines": {"tool_execution": 10}}), Answer::Yes).await;
    let start = Instant::now();
    let op = tool_op(&rig, "slow", "slow");
    tokio::time::sleep(secs(7.0)).await;
    op.progress();
    op.token().cancelled().await;
    around(start.elapsed(), 10.0);
    rig.actor.stop(None);
}

#[tokio::test(start_paused = true)]
async fn a_per_tool_deadline_applies_to_that_tool_only() {
    let rig = rig(
        json!({
            "upstreams": {"slow": {"deadlines": {"tool_execution": 4}}},
            "tools": {"slow__hang": {"deadline_secs": 1}}
        }),
        Answer::Yes,
    )
    .await;
    let start = Instant::now();
    let hang = tool_op(&rig, "slow", "hang");
    let slow = tool_op(&rig, "slow", "slow");
    let other = tool_op(&rig, "echo", "hang");
    hang.token().cancelled().await;
    around(start.elapsed(), 1.0);
    assert!(!slow.token().is_cancelled() && !other.token().is_cancelled());
    slow.token().cancelled().await;
    around(start.elapsed(), 4.0);
    other.token().cancelled().await;
    around(start.elapsed(), 60.0);
    rig.actor.stop(None);
}

#[tokio::test(start_paused = true)]
async fn an_instance_that_answers_its_probe_is_not_declared_hung() {
    let mut rig = rig(json!({"deadlines": {"discovery": 2}}), Answer::Yes).await;
    let start = Instant::now();
    let op = rig.escalation.track(OpKind::Discovery, "echo".into(), None);
    op.token().cancelled().await;
    around(start.elapsed(), 2.0);
    tokio::time::sleep(secs(10.0)).await;
    assert!(rig.hung.try_recv().is_err());
    assert_eq!(rig.probe.pings.load(Ordering::SeqCst), 1);
    assert_eq!(
        rig.escalation.metrics().kind(OpKind::Discovery).escalated,
        0
    );
    // The probe is over: the next timeout probes again.
    let op = rig.escalation.track(OpKind::Discovery, "echo".into(), None);
    op.token().cancelled().await;
    let pings = rig.probe.clone();
    when(start, || pings.pings.load(Ordering::SeqCst) == 2).await;
    rig.actor.stop(None);
}

#[tokio::test(start_paused = true)]
async fn a_failed_ping_declares_the_instance_hung_at_once() {
    let mut rig = rig(json!({"deadlines": {"tool_execution": 10}}), Answer::No).await;
    let start = Instant::now();
    let _op = tool_op(&rig, "slow", "hang");
    let (upstream, reason) = rig.hung.recv().await.unwrap();
    around(start.elapsed(), 10.0);
    assert_eq!(upstream, "slow");
    assert!(reason.contains("failed its ping"), "{reason}");
    rig.actor.stop(None);
}

#[tokio::test(start_paused = true)]
async fn simultaneous_timeouts_on_one_upstream_share_one_probe() {
    let mut rig = rig(json!({"deadlines": {"tool_execution": 10}}), Answer::Never).await;
    let ops: Vec<_> = (0..5).map(|_| tool_op(&rig, "slow", "hang")).collect();
    for op in &ops {
        op.token().cancelled().await;
    }
    rig.hung.recv().await.unwrap();
    assert_eq!(rig.probe.pings.load(Ordering::SeqCst), 1);
    tokio::time::sleep(secs(5.0)).await;
    assert!(rig.hung.try_recv().is_err(), "declared hung once");
    let counts = rig.escalation.metrics().kind(OpKind::ToolExecution);
    assert_eq!((counts.timed_out, counts.escalated), (5, 1));
    rig.actor.stop(None);
}

#[tokio::test]
async fn operations_tracked_without_an_actor_are_never_cancelled() {
    let escalation = Escalation::new(&TimeoutsConfig::default(), "__").unwrap();
    let op = escalation.track(OpKind::Connectivity, "x".into(), None);
    assert_eq!(op.limits().deadline, secs(2.0));
    assert!(!op.token().is_cancelled());
    assert_eq!(op.timed_out(), None);
}

#[tokio::test(start_paused = true)]
async fn operations_survive_the_death_of_the_actor_that_took_them_in() {
    let rig = rig(json!({"deadlines": {"tool_execution": 10}}), Answer::Yes).await;
    let start = Instant::now();
    let op = tool_op(&rig, "slow", "hang");
    let escalation = rig.escalation.clone();
    // Taken in by the first actor (it counted the operation)…
    when(start, || {
        escalation.metrics().kind(OpKind::ToolExecution).active == 1
    })
    .await;
    // …which dies without a chance to clean up; the root starts another.
    rig.actor.kill();
    let (second, _) = Actor::spawn(
        None,
        EscalationActor,
        EscalationArgs::new(rig.escalation.clone(), rig.probe.clone()),
    )
    .await
    .unwrap();
    op.token().cancelled().await;
    around(start.elapsed(), 10.0);
    assert!(op.timed_out().is_some());
    second.stop(None);
}

#[tokio::test(start_paused = true)]
async fn the_deadline_counts_from_when_the_request_arrived() {
    let rig = rig(json!({"deadlines": {"tool_execution": 10}}), Answer::Yes).await;
    tokio::time::advance(secs(20.0)).await;
    let start = Instant::now();
    // Queued for 9 s before its handler ran: 1 s of its deadline is left.
    let queued = rig.escalation.track_from(
        OpKind::ToolExecution,
        "slow".into(),
        Some("echo".into()),
        start - secs(9.0),
    );
    assert!(!queued.expire_if_due());
    queued.token().cancelled().await;
    around(start.elapsed(), 1.0);
    assert_eq!(queued.timed_out().unwrap().deadline, secs(10.0));

    // Queued past its deadline: timed out before it is sent anywhere.
    let late = rig.escalation.track_from(
        OpKind::ToolExecution,
        "slow".into(),
        Some("echo".into()),
        Instant::now() - secs(11.0),
    );
    assert!(late.expire_if_due());
    assert!(late.token().is_cancelled());
    assert_eq!(late.timed_out().unwrap().upstream.as_ref(), "slow");
    // The actor counts both as timed out, and probes the upstream only for
    // the one it had: the late one says nothing about the upstream.
    let escalation = rig.escalation.clone();
    when(Instant::now(), || {
        escalation.metrics().kind(OpKind::ToolExecution).timed_out == 2
    })
    .await;
    tokio::time::sleep(secs(5.0)).await;
    assert_eq!(rig.probe.pings.load(Ordering::SeqCst), 1);
    rig.actor.stop(None);
}

#[tokio::test(start_paused = true)]
async fn a_caller_times_its_operation_out_itself_when_the_actor_does_not() {
    let rig = rig(json!({"deadlines": {"tool_execution": 10}}), Answer::Yes).await;
    let start = Instant::now();
    let op = tool_op(&rig, "slow", "hang");
    // The actor dies and nobody restarts it: the deadline still holds.
    rig.actor.kill();
    op.expired().await;
    let at = start.elapsed();
    assert!(at >= secs(10.0) + BACKSTOP, "at {at:?}");
    assert!(at <= secs(10.0) + BACKSTOP + DEFAULT_TICK, "at {at:?}");
    assert!(op.token().is_cancelled());
    assert!(op.timed_out().is_some());
}

#[tokio::test(start_paused = true)]
async fn a_finished_operation_never_expires() {
    let rig = rig(json!({"deadlines": {"tool_execution": 10}}), Answer::Yes).await;
    let op = tool_op(&rig, "slow", "echo");
    let state = op.op.clone();
    let guard = OpGuard {
        op: state,
        events: op.events.clone(),
    };
    drop(op);
    let expired = tokio::time::timeout(secs(60.0), guard.expired()).await;
    assert!(expired.is_err(), "a finished operation expired");
    assert!(guard.timed_out().is_none());
    rig.actor.stop(None);
}
