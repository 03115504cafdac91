//! A small JSON API on 127.0.0.1 standing in for GitHub, HubSpot and friends in pg_nango's demo, tests and
//! benchmarks. Everything is in memory:
//!
//! - `GET /tickets?cursor=&limit=`: the demo's help-desk tickets, cursor-paginated (`{data, next_cursor}`);
//!   `POST /tickets` with `{subject, requester: {name, email}}` creates one and returns it;
//! - `PUT /_admin/datasets/{name}` with a JSON array: stores a dataset; `GET /datasets/{name}?cursor=&limit=`
//!   serves it cursor-paginated the same way;
//! - `GET /status/{code}`: answers with that status; `GET /slow?ms=`: answers after a delay;
//! - `GET /encoded/{gzip|deflate}`, `GET /plain`, `GET /bytes`: compressed JSON, plain text and binary
//!   bodies (see `encoded.rs`);
//! - `ANY /echo`: returns the request it got (method, path, query, headers, body);
//! - `GET /redirect?to=URL&status=S`: answers `S` (302 by default) with `Location: URL`, to which it adds
//!   the request's other query parameters (as a server that keeps the query across a redirect does);
//! - `GET /_admin/requests`: the requests served so far (method, path, query, authorization present);
//! - `GET /paged/link/{name}?page=&per_page=`: a dataset as a bare array with a `Link: <…>; rel="next"`
//!   header; `GET /paged/link-body/{name}?page=&per_page=`: `{items, next}` with the next page's URL in the
//!   body; `GET /paged/offset/{name}?offset=&limit=`: `{results}`;
//! - `ANY /pages/{cursor|offset|link}/{name}`: a dataset paged by query or JSON body, each request's raw
//!   query string and body recorded (see [`pages`]);
//! - `GET /flaky/{key}?fail=N&status=S&retry_after=SECS&reset_in=SECS`: the first N calls for `key` answer
//!   `S` (with a `retry-after` or an `x-ratelimit-reset` epoch header when asked), then 200;
//! - `POST /oauth/token`: OAuth2 refresh (`grant_type=refresh_token`, form body) for client
//!   [`OAUTH_CLIENT_ID`]/[`OAUTH_CLIENT_SECRET`]; issues `at-N`/`rt-N`, valid one hour, after a short delay;
//! - `/auth/…`: token endpoints for the auth modes (see [`auth`]).
//!
//! Every route outside `/_admin`, `/echo`, `/encoded`, `/plain`, `/bytes`, `/redirect`, `/status`, `/slow`,
//! `/oauth` and `/auth` requires `authorization: Bearer <api key>` or a token issued by `/oauth/token`.

pub mod auth;
mod pages;
pub mod signing;

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, put};
use axum::{Json, Router};
use serde_json::value::{RawValue, to_raw_value};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod encoded;
pub use encoded::PLAIN_TEXT;

/// The key the demo and tests use unless they choose another.
pub const DEFAULT_API_KEY: &str = "demo-key";
/// How many demo tickets `/tickets` serves.
pub const DEMO_TICKETS: usize = 250;
/// The OAuth2 client `/oauth/token` accepts.
pub const OAUTH_CLIENT_ID: &str = "client-id";
pub const OAUTH_CLIENT_SECRET: &str = "client-secret";

#[derive(Default)]
struct Shared {
    api_key: String,
    /// Each item is kept as its JSON text, written once when the dataset is stored: serving a page is
    /// then a copy of that text, so a benchmark's figures are pg_nango's, not the serializer's here.
    datasets: Mutex<HashMap<String, Items>>,
    requests: Mutex<Vec<Value>>,
    /// Calls so far per `/flaky` key.
    flaky: Mutex<HashMap<String, u32>>,
    /// Access tokens issued by `/oauth/token`.
    tokens: Mutex<Vec<String>>,
    /// What the `/auth/…` routes saw and issued.
    auth: auth::AuthLog,
}

type AppState = Arc<Shared>;

/// A dataset's items as JSON text.
type Items = Arc<Vec<Box<RawValue>>>;

/// `items` as JSON text, once.
fn items_of(items: Vec<Value>) -> Items {
    Arc::new(
        items
            .iter()
            .map(|item| to_raw_value(item).expect("a JSON value serializes"))
            .collect(),
    )
}

/// The API's routes, with `api_key` as the only accepted bearer token.
pub fn router(api_key: &str) -> Router {
    routes(Arc::new(Shared {
        api_key: api_key.to_string(),
        ..Shared::default()
    }))
}

fn routes(state: AppState) -> Router {
    Router::new()
        .route("/paged/link/{name}", get(paged_link))
        .route("/paged/link-body/{name}", get(paged_link_body))
        .route("/paged/offset/{name}", get(paged_offset))
        .route("/pages/{mode}/{name}", any(pages::pages))
        .route("/flaky/{key}", get(flaky))
        .route("/oauth/token", axum::routing::post(oauth_token))
        .route("/tickets", get(tickets).post(create_ticket))
        .route("/datasets/{name}", get(dataset))
        .route("/status/{code}", get(status))
        .route("/slow", get(slow))
        .route("/echo", any(echo))
        .route("/encoded/{encoding}", get(encoded::encoded))
        .route("/plain", get(encoded::plain))
        .route("/bytes", get(encoded::bytes))
        .route("/redirect", get(redirect).post(redirect))
        .route("/_admin/datasets/{name}", put(store_dataset))
        .route("/_admin/requests", get(requests))
        .merge(auth::routes())
        .merge(signing::routes())
        .with_state(state)
}

/// A server running on its own thread.
pub struct MockServer {
    pub addr: SocketAddr,
    state: AppState,
}

impl MockServer {
    /// Starts the API on 127.0.0.1 at `port` (0 picks a free port) on a background thread.
    pub fn start(port: u16, api_key: &str) -> std::io::Result<MockServer> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Shared {
            api_key: api_key.to_string(),
            ..Shared::default()
        });
        let app = routes(state.clone());
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
        Ok(MockServer { addr, state })
    }

    /// Stores (or replaces) a dataset served by `/datasets/{name}` and `/paged/*/{name}`.
    pub fn set_dataset(&self, name: &str, items: Vec<Value>) {
        self.state
            .datasets
            .lock()
            .expect("datasets lock")
            .insert(name.to_string(), items_of(items));
    }

    /// The requests served so far, oldest first: `{method, path, query, authorized}` (`/pages/…`:
    /// `{method, path, raw_query, body}`).
    pub fn requests(&self) -> Vec<Value> {
        self.state.requests.lock().expect("requests lock").clone()
    }

    /// How many tokens `/oauth/token` has issued.
    pub fn tokens_issued(&self) -> usize {
        self.state.tokens.lock().expect("tokens lock").len()
    }

    /// How many tokens the `/auth/…` endpoint `kind` (`cc`, `two-step`, `app`) has issued.
    pub fn auth_tokens_issued(&self, kind: &str) -> usize {
        self.state.auth.issued(kind)
    }

    /// The headers and query of each `/auth/whoami` request so far.
    pub fn auth_seen(&self) -> Vec<Value> {
        self.state.auth.seen()
    }

    /// The PEM public key `/auth/app/…` verifies app JWTs with.
    pub fn set_app_public_key(&self, pem: &str) {
        *self.state.auth.app_public_key.lock().expect("auth lock") = Some(pem.to_string());
    }

    /// `http://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// A raw HTTP/1.1 answer: `200 OK` with the JSON body `{"ok":true}`, closing the connection.
pub const OK_JSON: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\nconnection: close\r\n\r\n{\"ok\":true}";

/// A bare HTTP server on any address of 127.0.0.0/8 (tests use 127.0.0.2 as "another host") that answers
/// every request with the same raw bytes and keeps the head (request line and headers) of each request.
pub struct RecordingServer {
    pub port: u16,
    heads: Arc<Mutex<Vec<String>>>,
}

impl RecordingServer {
    /// Listens on `ip` at a free port, on a background thread.
    pub fn start(ip: &str, response: Vec<u8>) -> std::io::Result<RecordingServer> {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind((ip, 0))?;
        let port = listener.local_addr()?.port();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = heads.clone();
        std::thread::Builder::new()
            .name("recording-server".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    let Ok(mut stream) = stream else { return };
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                        head.push(byte[0]);
                    }
                    seen.lock()
                        .expect("heads lock")
                        .push(String::from_utf8_lossy(&head).into_owned());
                    let _ = stream.write_all(&response);
                }
            })?;
        Ok(RecordingServer { port, heads })
    }

    /// The heads of the requests received so far, oldest first.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().expect("heads lock").clone()
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
    let Some(token) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    token == state.api_key
        || state
            .tokens
            .lock()
            .expect("tokens lock")
            .iter()
            .any(|t| t == token)
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
fn page(items: &[Box<RawValue>], query: &HashMap<String, String>) -> Response {
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
    Json(Page {
        data: items.get(start..end).unwrap_or(&[]),
        next_cursor: (end < items.len()).then(|| end.to_string()),
    })
    .into_response()
}

/// A page of a dataset, serialized straight from the stored items.
#[derive(serde::Serialize)]
struct Page<'a> {
    data: &'a [Box<RawValue>],
    next_cursor: Option<String>,
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
            .or_insert_with(|| items_of(demo_tickets()))
            .clone()
    };
    page(&tickets, &query)
}

async fn create_ticket(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    record(&state, "POST", "/tickets", &HashMap::new(), &headers);
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let Some(subject) = body
        .get("subject")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    else {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"error": "subject is required"})),
        )
            .into_response();
    };
    let mut datasets = state.datasets.lock().expect("datasets lock");
    let tickets = datasets
        .entry("__tickets".into())
        .or_insert_with(|| items_of(demo_tickets()));
    let mut all = tickets.as_ref().clone();
    let ticket = json!({
        "id": all.len() + 1,
        "subject": subject,
        "status": "open",
        "priority": 2,
        "requester": body.get("requester").cloned().unwrap_or_else(|| json!({"name": "Unknown", "email": "unknown@example.com"})),
        "tags": [],
        "created_at": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    });
    all.push(to_raw_value(&ticket).expect("a JSON value serializes"));
    *tickets = Arc::new(all);
    (StatusCode::CREATED, Json(ticket)).into_response()
}

async fn dataset(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/datasets/{name}");
    match guarded_dataset(&state, &path, &name, &query, &headers) {
        Ok(items) => page(&items, &query),
        Err(response) => response,
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
        .insert(name, items_of(items));
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

async fn redirect(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    record(&state, "GET", "/redirect", &query, &headers);
    let status = query
        .get("status")
        .and_then(|s| s.parse().ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::FOUND);
    let mut location = query.get("to").cloned().unwrap_or_default();
    let mut rest: Vec<(&String, &String)> = query
        .iter()
        .filter(|(name, _)| *name != "to" && *name != "status")
        .collect();
    rest.sort();
    for (name, value) in rest {
        location.push(if location.contains('?') { '&' } else { '?' });
        location.push_str(&format!("{name}={value}"));
    }
    (status, [("location", location)]).into_response()
}

async fn requests(State(state): State<AppState>) -> Response {
    Json(Value::Array(
        state.requests.lock().expect("requests lock").clone(),
    ))
    .into_response()
}

/// The dataset `name` after an auth check, or the error response (returned as is by the handler, so
/// boxing it would only add an allocation).
#[allow(clippy::result_large_err)]
fn guarded_dataset(
    state: &Shared,
    path: &str,
    name: &str,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<Items, Response> {
    record(state, "GET", path, query, headers);
    if !authorized(state, headers) {
        return Err(unauthorized());
    }
    state
        .datasets
        .lock()
        .expect("datasets lock")
        .get(name)
        .cloned()
        .ok_or_else(|| {
            (
                StatusCode::NOT_FOUND,
                Json(json!({"error": format!("no dataset {name}")})),
            )
                .into_response()
        })
}

fn number(query: &HashMap<String, String>, name: &str, default: usize) -> usize {
    query
        .get(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Page `page` (1-based) of `per_page` items, and whether another page follows.
fn numbered_page(
    items: &[Box<RawValue>],
    page: usize,
    per_page: usize,
) -> (Vec<Box<RawValue>>, bool) {
    let start = (page.max(1) - 1) * per_page.max(1);
    let end = (start + per_page.max(1)).min(items.len());
    (
        items.get(start..end).unwrap_or(&[]).to_vec(),
        end < items.len(),
    )
}

async fn paged_link(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/paged/link/{name}");
    let items = match guarded_dataset(&state, &path, &name, &query, &headers) {
        Ok(items) => items,
        Err(response) => return response,
    };
    let (page, per_page) = (number(&query, "page", 1), number(&query, "per_page", 30));
    let (data, more) = numbered_page(&items, page, per_page);
    let mut response = Json(data).into_response();
    if more {
        let host = headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("127.0.0.1");
        let link = format!(
            "<http://{host}{path}?page={}&per_page={per_page}>; rel=\"next\", <http://{host}{path}?page=1&per_page={per_page}>; rel=\"first\"",
            page + 1
        );
        response
            .headers_mut()
            .insert("link", link.parse().expect("link header"));
    }
    response
}

async fn paged_link_body(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/paged/link-body/{name}");
    let items = match guarded_dataset(&state, &path, &name, &query, &headers) {
        Ok(items) => items,
        Err(response) => return response,
    };
    let (page, per_page) = (number(&query, "page", 1), number(&query, "per_page", 30));
    let (data, more) = numbered_page(&items, page, per_page);
    let next = more.then(|| format!("{path}?page={}&per_page={per_page}", page + 1));
    Json(json!({"items": data, "paging": {"next": next}})).into_response()
}

async fn paged_offset(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/paged/offset/{name}");
    let items = match guarded_dataset(&state, &path, &name, &query, &headers) {
        Ok(items) => items,
        Err(response) => return response,
    };
    let (offset, limit) = (number(&query, "offset", 0), number(&query, "limit", 30));
    let end = (offset + limit).min(items.len());
    let data = items.get(offset..end).unwrap_or(&[]).to_vec();
    Json(json!({"results": data})).into_response()
}

async fn flaky(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    record(&state, "GET", &format!("/flaky/{key}"), &query, &headers);
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let calls = {
        let mut flaky = state.flaky.lock().expect("flaky lock");
        let calls = flaky.entry(key).or_insert(0);
        *calls += 1;
        *calls
    };
    if calls as usize > number(&query, "fail", 0) {
        return Json(json!({"ok": true, "calls": calls})).into_response();
    }
    let status = StatusCode::from_u16(number(&query, "status", 500) as u16)
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response =
        (status, Json(json!({"error": "try again", "calls": calls}))).into_response();
    if let Some(after) = query.get("retry_after") {
        response
            .headers_mut()
            .insert("retry-after", after.parse().expect("retry-after header"));
    }
    if let Some(reset_in) = query.get("reset_in").and_then(|v| v.parse::<u64>().ok()) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        response.headers_mut().insert(
            "x-ratelimit-reset",
            (now + reset_in).to_string().parse().expect("reset header"),
        );
    }
    response
}

async fn oauth_token(
    State(state): State<AppState>,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> Response {
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    if field("client_id") != OAUTH_CLIENT_ID || field("client_secret") != OAUTH_CLIENT_SECRET {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    if field("grant_type") != "refresh_token" || !field("refresh_token").starts_with("rt-") {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant"})),
        )
            .into_response();
    }
    // Long enough for two concurrent refreshes to overlap if nothing serialises them.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let n = {
        let mut tokens = state.tokens.lock().expect("tokens lock");
        let n = tokens.len() + 1;
        tokens.push(format!("at-{n}"));
        n
    };
    Json(json!({
        "access_token": format!("at-{n}"),
        "refresh_token": format!("rt-{n}"),
        "token_type": "bearer",
        "expires_in": 3600,
    }))
    .into_response()
}
