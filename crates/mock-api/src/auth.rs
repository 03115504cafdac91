//! Token endpoints for the auth modes, and a resource that shows the auth it got:
//!
//! - `POST /auth/cc/token`: the OAuth2 client credentials grant for [`CC_CLIENT_ID`]/[`CC_CLIENT_SECRET`]
//!   (form fields or Basic auth); issues `cc-N`, valid one hour;
//! - `POST /auth/two-step/login`: JSON `{user, pass}` = [`TWO_STEP_USER`]/[`TWO_STEP_PASS`] with header
//!   `x-app: two-step-app`; answers `{data: {session: "ts-N", ttl: 3600}}`;
//! - `POST /auth/app/installations/{id}/access_tokens`: a GitHub-App-like installation token for a
//!   `Bearer` RS256 JWT that the key set with [`MockServer::set_app_public_key`] verifies; issues `ghs-N`;
//! - `POST /auth/bill/login`: BILL's session login, JSON `{username, password, organizationId, devKey}` =
//!   [`BILL_USER`]/[`BILL_PASS`]/[`BILL_ORG`]/[`BILL_DEV_KEY`]; answers `{sessionId: "bill-N", …}`;
//! - `GET /auth/whoami`: answers (and records) the request's headers and query.
//!
//! [`MockServer::set_app_public_key`]: crate::MockServer::set_app_public_key

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Mutex;

use super::AppState;

pub const CC_CLIENT_ID: &str = "cc-client";
pub const CC_CLIENT_SECRET: &str = "cc-secret";
pub const TWO_STEP_USER: &str = "ts-user";
pub const TWO_STEP_PASS: &str = "ts-pass";
pub const BILL_USER: &str = "bill-user";
pub const BILL_PASS: &str = "bill-pass";
pub const BILL_ORG: &str = "00801bill";
pub const BILL_DEV_KEY: &str = "bill-dev-key";

/// What the auth routes saw and issued.
#[derive(Default)]
pub(crate) struct AuthLog {
    /// Tokens issued, per endpoint (`cc`, `two-step`, `app`).
    issued: Mutex<HashMap<String, usize>>,
    /// The headers and query of each `/auth/whoami` request.
    seen: Mutex<Vec<Value>>,
    /// The PEM public key app JWTs must verify with.
    pub(crate) app_public_key: Mutex<Option<String>>,
}

impl AuthLog {
    pub(crate) fn issued(&self, kind: &str) -> usize {
        self.issued
            .lock()
            .expect("auth lock")
            .get(kind)
            .copied()
            .unwrap_or(0)
    }

    pub(crate) fn seen(&self) -> Vec<Value> {
        self.seen.lock().expect("auth lock").clone()
    }

    fn issue(&self, kind: &str) -> usize {
        let mut issued = self.issued.lock().expect("auth lock");
        let n = issued.entry(kind.to_string()).or_default();
        *n += 1;
        *n
    }
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth/cc/token", post(client_credentials))
        .route("/auth/two-step/login", post(two_step))
        .route(
            "/auth/app/installations/{id}/access_tokens",
            post(installation_token),
        )
        .route("/auth/bill/login", post(bill_login))
        .route("/auth/whoami", get(whoami))
}

fn refused(status: StatusCode, error: &str) -> Response {
    (status, Json(json!({ "error": error }))).into_response()
}

async fn client_credentials(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> Response {
    let field = |name: &str| form.get(name).cloned().unwrap_or_default();
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
        .and_then(|v| String::from_utf8(v).ok());
    let (id, secret) = match basic.as_deref().and_then(|b| b.split_once(':')) {
        Some((id, secret)) => (id.to_string(), secret.to_string()),
        None => (field("client_id"), field("client_secret")),
    };
    if id != CC_CLIENT_ID || secret != CC_CLIENT_SECRET {
        return refused(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    if field("grant_type") != "client_credentials" {
        return refused(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    let n = state.auth.issue("cc");
    Json(json!({"access_token": format!("cc-{n}"), "token_type": "bearer", "expires_in": 3600}))
        .into_response()
}

async fn two_step(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if headers.get("x-app").and_then(|v| v.to_str().ok()) != Some("two-step-app") {
        return refused(StatusCode::BAD_REQUEST, "missing x-app header");
    }
    if body["user"] != TWO_STEP_USER || body["pass"] != TWO_STEP_PASS {
        return refused(StatusCode::UNAUTHORIZED, "wrong user or password");
    }
    let n = state.auth.issue("two-step");
    Json(json!({"data": {"session": format!("ts-{n}"), "ttl": 3600}})).into_response()
}

async fn bill_login(State(state): State<AppState>, Json(body): Json<Value>) -> Response {
    if body["devKey"] != BILL_DEV_KEY {
        return refused(StatusCode::UNAUTHORIZED, "BDC_1109: invalid devKey");
    }
    if body["username"] != BILL_USER
        || body["password"] != BILL_PASS
        || body["organizationId"] != BILL_ORG
    {
        return refused(
            StatusCode::UNAUTHORIZED,
            "BDC_1102: wrong username or password",
        );
    }
    let n = state.auth.issue("bill");
    Json(json!({"sessionId": format!("bill-{n}"), "organizationId": BILL_ORG, "userId": "00601user"}))
        .into_response()
}

async fn installation_token(
    State(state): State<AppState>,
    Path(installation): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(public_key) = state.auth.app_public_key.lock().expect("auth lock").clone() else {
        return refused(StatusCode::INTERNAL_SERVER_ERROR, "no app public key set");
    };
    let jwt = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let key = match jsonwebtoken::DecodingKey::from_rsa_pem(public_key.as_bytes()) {
        Ok(key) => key,
        Err(_) => return refused(StatusCode::INTERNAL_SERVER_ERROR, "bad app public key"),
    };
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_required_spec_claims(&["exp", "iat", "iss"]);
    match jsonwebtoken::decode::<Value>(jwt, &key, &validation) {
        Ok(decoded) if decoded.claims["iss"].is_string() => {}
        _ => {
            return refused(
                StatusCode::UNAUTHORIZED,
                "A JSON web token could not be decoded",
            );
        }
    }
    let n = state.auth.issue("app");
    let expires_at = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    (
        StatusCode::CREATED,
        Json(json!({"token": format!("ghs-{n}"), "expires_at": expires_at, "installation": installation})),
    )
        .into_response()
}

async fn whoami(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), json!(v.to_str().unwrap_or(""))))
        .collect();
    let seen = json!({"headers": headers, "query": query});
    state
        .auth
        .seen
        .lock()
        .expect("auth lock")
        .push(seen.clone());
    Json(seen).into_response()
}
