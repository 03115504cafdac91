//! A small JSON API on 127.0.0.1 standing in for GitHub, HubSpot and friends in pg_nango's demo, tests and
//! benchmarks. Everything is in memory:
//!
//! - `GET /tickets?cursor=&limit=`: the demo's help-desk tickets, cursor-paginated (`{data, next_cursor}`);
//! - `PUT /_admin/datasets/{name}` with a JSON array: stores a dataset; `GET /datasets/{name}?cursor=&limit=`
//!   serves it cursor-paginated the same way;
//! - `GET /status/{code}`: answers with that status; `GET /slow?ms=`: answers after a delay;
//! - `ANY /echo`: returns the request it got (method, path, query, headers, body);
//! - `GET /_admin/requests`: the requests served so far (method, path, query, authorization present).
//!
//! Every route outside `/_admin` and `/echo` requires `authorization: Bearer <api key>`.

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, put};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The key the demo and tests use unless they choose another.
pub const DEFAULT_API_KEY: &str = "demo-key";
/// How many demo tickets `/tickets` serves.
pub const DEMO_TICKETS: usize = 250;

#[derive(Default)]
struct Shared {
    api_key: String,
    datasets: Mutex<HashMap<String, Arc<Vec<Value>>>>,
    requests: Mutex<Vec<Value>>,
}

type AppState = Arc<Shared>;

/// The API's routes, with `api_key` as the only accepted bearer token.
pub fn router(api_key: &str) -> Router {
    let state = Arc::new(Shared {
        api_key: api_key.to_string(),
        ..Shared::default()
    });
    Router::new()
        .route("/tickets", get(tickets))
        .route("/datasets/{name}", get(dataset))
        .route("/status/{code}", get(status))
        .route("/slow", get(slow))
        .route("/echo", any(echo))
        .route("/_admin/datasets/{name}", put(store_dataset))
        .route("/_admin/requests", get(requests))
        .with_state(state)
}

/// A server running on its own thread.
pub struct MockServer {
    pub addr: SocketAddr,
}

impl MockServer {
    /// Starts the API on 127.0.0.1 at `port` (0 picks a free port) on a background thread.
    pub fn start(port: u16, api_key: &str) -> std::io::Result<MockServer> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let app = router(api_key);
        std::thread::Builder::new()
            .name("mock-api".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("tokio runtime");
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                    axum::serve(listener, app).await.expect("mock API server");
                });
            })?;
        Ok(MockServer { addr })
    }

    /// `http://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// The demo's tickets, the same on every start.
pub fn demo_tickets() -> Vec<Value> {
    const SUBJECTS: [&str; 5] = [
        "Cannot log in",
        "Invoice is wrong",
        "Feature request: dark mode",
        "App crashes on start",
        "Password reset email missing",
    ];
    const STATES: [&str; 3] = ["open", "pending", "closed"];
    (1..=DEMO_TICKETS)
        .map(|n| {
            json!({
                "id": n,
                "subject": format!("{} (#{n})", SUBJECTS[n % SUBJECTS.len()]),
                "status": STATES[n % STATES.len()],
                "priority": (n % 4) + 1,
                "requester": {"name": format!("Customer {}", n % 37), "email": format!("customer{}@example.com", n % 37)},
                "tags": if n % 2 == 0 { json!(["billing"]) } else { json!(["support", "web"]) },
                "created_at": format!("2026-01-{:02}T{:02}:00:00Z", (n % 28) + 1, n % 24),
            })
        })
        .collect()
}

fn authorized(state: &Shared, headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok())
        == Some(format!("Bearer {}", state.api_key).as_str())
}

fn record(
    state: &Shared,
    method: &str,
    path: &str,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
) {
    let entry = json!({"method": method, "path": path, "query": query, "authorized": authorized(state, headers)});
    state.requests.lock().expect("requests lock").push(entry);
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"error": "missing or wrong bearer token"})),
    )
        .into_response()
}

/// `{data: [...], next_cursor}` for `items`, starting after `cursor` (an index), `limit` per page.
fn page(items: &[Value], query: &HashMap<String, String>) -> Response {
    let start: usize = query
        .get("cursor")
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let limit: usize = query
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(100)
        .clamp(1, 1000);
    let end = (start + limit).min(items.len());
    let data = items.get(start..end).unwrap_or(&[]).to_vec();
    let next = (end < items.len()).then(|| end.to_string());
    Json(json!({"data": data, "next_cursor": next})).into_response()
}

async fn tickets(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    record(&state, "GET", "/tickets", &query, &headers);
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let tickets = {
        let mut datasets = state.datasets.lock().expect("datasets lock");
        datasets
            .entry("__tickets".into())
            .or_insert_with(|| Arc::new(demo_tickets()))
            .clone()
    };
    page(&tickets, &query)
}

async fn dataset(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    record(
        &state,
        "GET",
        &format!("/datasets/{name}"),
        &query,
        &headers,
    );
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let items = state
        .datasets
        .lock()
        .expect("datasets lock")
        .get(&name)
        .cloned();
    match items {
        Some(items) => page(&items, &query),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no dataset {name}")})),
        )
            .into_response(),
    }
}

async fn store_dataset(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(items): Json<Vec<Value>>,
) -> Response {
    let count = items.len();
    state
        .datasets
        .lock()
        .expect("datasets lock")
        .insert(name, Arc::new(items));
    Json(json!({"stored": count})).into_response()
}

async fn status(
    State(state): State<AppState>,
    Path(code): Path<u16>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    record(&state, "GET", &format!("/status/{code}"), &query, &headers);
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
    (code, Json(json!({"status": code.as_u16()}))).into_response()
}

async fn slow(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    record(&state, "GET", "/slow", &query, &headers);
    let ms: u64 = query.get("ms").and_then(|m| m.parse().ok()).unwrap_or(1000);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Json(json!({"slept_ms": ms})).into_response()
}

async fn echo(request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let headers: serde_json::Map<String, Value> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), json!(v.to_str().unwrap_or(""))))
        .collect();
    Json(json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    }))
    .into_response()
}

async fn requests(State(state): State<AppState>) -> Response {
    Json(Value::Array(
        state.requests.lock().expect("requests lock").clone(),
    ))
    .into_response()
}
