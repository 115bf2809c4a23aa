//! A loopback stand-in for the Enkrypt and OpenAI moderation services that
//! speaks their wire formats over real HTTP, for tests.
//!
//! Enkrypt (`POST /guardrails/detect`, header `apikey`): `injection_attack`
//! fires on "ignore previous", `pii` on "@", `toxicity` (a label list) on
//! "idiot". Moderation (`POST /v1/moderations`, `Authorization: Bearer`):
//! `violence` on "kill". `/gated/...` variants answer only once the test
//! opens the gate; the key is checked on every route.
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::sync::watch;

/// The key the fake accepts.
pub const KEY: &str = "test-key-7f3a9c1e5b2d";

#[derive(Clone)]
struct FakeState {
    requests: Arc<Mutex<Vec<(HeaderMap, Value)>>>,
    gate: watch::Receiver<bool>,
    /// How many gated requests are waiting at the gate.
    waiting: watch::Sender<usize>,
}

/// A running fake provider.
pub struct FakeProvider {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    requests: Arc<Mutex<Vec<(HeaderMap, Value)>>>,
    gate: watch::Sender<bool>,
    waiting: watch::Sender<usize>,
}

impl FakeProvider {
    /// Serves on a free loopback port until the runtime ends.
    pub async fn start() -> Self {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (gate, gate_rx) = watch::channel(false);
        let waiting = watch::Sender::new(0);
        let state = FakeState {
            requests: requests.clone(),
            gate: gate_rx,
            waiting: waiting.clone(),
        };
        let app = Router::new()
            .route("/guardrails/detect", post(enkrypt))
            .route("/gated/guardrails/detect", post(gated_enkrypt))
            .route("/v1/moderations", post(moderation))
            .route("/not-json", post(|| async { "plain text" }))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            base,
            requests,
            gate,
            waiting,
        }
    }

    /// Waits until `n` gated requests are waiting at the gate.
    pub async fn gated_requests(&self, n: usize) {
        let _ = self.waiting.subscribe().wait_for(|w| *w >= n).await;
    }

    /// Lets gated requests answer.
    pub fn open_gate(&self) {
        self.gate.send_replace(true);
    }

    /// Every request received so far (headers, JSON body).
    pub fn requests(&self) -> Vec<(HeaderMap, Value)> {
        self.requests.lock().unwrap().clone()
    }
}

fn record(state: &FakeState, headers: &HeaderMap, body: &Value) {
    state
        .requests
        .lock()
        .unwrap()
        .push((headers.clone(), body.clone()));
}

async fn enkrypt(
    State(state): State<FakeState>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    record(&state, &headers, &body);
    if headers.get("apikey").and_then(|v| v.to_str().ok()) != Some(KEY) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "Invalid API key"})),
        )
            .into_response();
    }
    let text = body["text"].as_str().unwrap_or_default().to_lowercase();
    let injection = text.contains("ignore previous");
    let pii = text.contains('@');
    let toxic: Vec<&str> = if text.contains("idiot") {
        vec!["insult"]
    } else {
        vec![]
    };
    Json(json!({
        "summary": {
            "injection_attack": i32::from(injection),
            "pii": i32::from(pii),
            "toxicity": toxic,
            "nsfw": 0
        },
        "details": {
            "injection_attack": { "safe": if injection { "0.01" } else { "0.99" },
                                  "attack": if injection { "0.99" } else { "0.01" } },
            "toxicity": { "insult": if toxic.is_empty() { 0.0 } else { 0.93 } }
        }
    }))
    .into_response()
}

async fn gated_enkrypt(
    State(state): State<FakeState>,
    headers: HeaderMap,
    body: Json<Value>,
) -> Response {
    let mut gate = state.gate.clone();
    state.waiting.send_modify(|w| *w += 1);
    let _ = gate.wait_for(|open| *open).await;
    enkrypt(State(state), headers, body).await
}

async fn moderation(
    State(state): State<FakeState>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    record(&state, &headers, &body);
    let expected = format!("Bearer {KEY}");
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}})),
        )
            .into_response();
    }
    let violent = body["input"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase()
        .contains("kill");
    Json(json!({
        "id": "modr-0001",
        "model": body["model"],
        "results": [{
            "flagged": violent,
            "categories": { "violence": violent, "hate": false, "harassment": false },
            "category_scores": { "violence": if violent { 0.97 } else { 0.001 },
                                 "hate": 0.0001, "harassment": 0.0002 }
        }]
    }))
    .into_response()
}
