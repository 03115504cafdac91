//! `ANY /pages/{mode}/{name}`: a dataset paged the way a paginator is told to page it, recording each
//! request's raw query string and body so that tests can compare the requests made with Nango's, exactly.
//!
//! The page is read from the query, or from a JSON body whose nested keys count as dotted names
//! (`{"page": {"size": 2}}` is `page.size=2`):
//!
//! - `cursor`: `cursor` (or `page.cursor`) is an index, `limit` (or `page.size`) the page size (2);
//!   answers `{result: {items}, next_page: {cursor}}`, the cursor `""` after the last item, unless
//!   `endless` is set, which always gives the next index (so the last page is an empty one);
//! - `offset`: `offset` items skipped, or `page` (1-based) pages of `limit` (2); answers `{results}`;
//! - `link`: `page` (1-based) of `limit` (2); answers `{data, paging: {next}}` with the next page's path
//!   in the body and its absolute URL in a `Link: <…>; rel="next"` header (absent after the last page,
//!   unless `endless`, which adds one empty page), the request's other parameters kept.

use std::collections::BTreeMap;

use axum::extract::{Path, RawQuery, Request, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{AppState, unauthorized};

/// Every name of a JSON body's leaves as a dotted path, with its value as text.
fn flatten(prefix: &str, value: &Value, out: &mut BTreeMap<String, String>) {
    match value {
        Value::Object(map) => map.iter().for_each(|(key, value)| {
            let name = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            flatten(&name, value, out);
        }),
        Value::String(s) => {
            out.insert(prefix.to_string(), s.clone());
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

pub(super) async fn pages(
    State(state): State<AppState>,
    Path((mode, name)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let body = String::from_utf8_lossy(&body).into_owned();
    let path = parts.uri.path().to_string();
    let raw = raw.unwrap_or_default();
    state.requests.lock().expect("requests lock").push(json!({
        "method": parts.method.as_str(),
        "path": path,
        "raw_query": raw,
        "body": body,
    }));
    if !super::authorized(&state, &parts.headers) {
        return unauthorized();
    }
    let Some(items) = state
        .datasets
        .lock()
        .expect("datasets lock")
        .get(&name)
        .cloned()
    else {
        return (
            axum::http::StatusCode::NOT_FOUND,
            axum::Json(json!({"error": format!("no dataset {name}")})),
        )
            .into_response();
    };
    let mut params: BTreeMap<String, String> = url::form_urlencoded::parse(raw.as_bytes())
        .into_owned()
        .collect();
    if let Ok(value) = serde_json::from_str::<Value>(&body) {
        flatten("", &value, &mut params);
    }
    let number = |names: &[&str], default: usize| {
        names
            .iter()
            .find_map(|n| params.get(*n).and_then(|v| v.parse().ok()))
            .unwrap_or(default)
    };
    let limit = number(&["limit", "page.size"], 2).max(1);
    let endless = params.contains_key("endless");
    let slice = |start: usize| {
        let end = (start + limit).min(items.len());
        (items.get(start..end).unwrap_or(&[]).to_vec(), end)
    };
    match mode.as_str() {
        "cursor" => {
            let (page, end) = slice(number(&["cursor", "page.cursor"], 0));
            let next = if endless || end < items.len() {
                end.to_string()
            } else {
                String::new()
            };
            axum::Json(json!({"result": {"items": page}, "next_page": {"cursor": next}}))
                .into_response()
        }
        "offset" => {
            let start = match params.get("page").and_then(|p| p.parse::<usize>().ok()) {
                Some(page) => page.saturating_sub(1) * limit,
                None => number(&["offset"], 0),
            };
            axum::Json(json!({"results": slice(start).0})).into_response()
        }
        _ => {
            let page = number(&["page"], 1).max(1);
            let start = (page - 1) * limit;
            let (data, end) = slice(start);
            let more = end < items.len() || (endless && start < items.len());
            let mut kept: Vec<(String, String)> = url::form_urlencoded::parse(raw.as_bytes())
                .into_owned()
                .filter(|(k, _)| k != "page")
                .collect();
            kept.push(("page".into(), (page + 1).to_string()));
            let query: String = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(kept)
                .finish();
            let next = more.then(|| format!("{path}?{query}"));
            let mut response =
                axum::Json(json!({"data": data, "paging": {"next": next}})).into_response();
            if let Some(next) = &next {
                let host = parts
                    .headers
                    .get("host")
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("127.0.0.1");
                let link = format!(
                    "<http://{host}{next}>; rel=\"next\", <http://{host}{path}?page=1>; rel=\"first\""
                );
                if let Ok(value) = link.parse() {
                    response.headers_mut().insert("link", value);
                }
            }
            response
        }
    }
}
