//! Sends proxy requests with reqwest, retrying as Nango does (see `providers::retry`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::providers::retry::{is_retryable, wait_before_retry};
use crate::providers::{PreparedRequest, Provider};

/// A response as the script sees it.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Sends `request`, retrying up to `retries` times on retryable statuses and network errors.
/// `on_retry` is told each retry (reason, wait, attempt) so it can be logged.
pub async fn send_with_retries(
    client: &reqwest::Client,
    request: &PreparedRequest,
    provider: &Provider,
    retries: u32,
    retry_on: &[u16],
    base_delay: Duration,
    on_retry: &mut dyn FnMut(&str, Duration, u32),
) -> Result<HttpResponse, String> {
    let provider_retry = provider.proxy.as_ref().and_then(|p| p.retry.as_ref());
    let mut attempt = 0;
    loop {
        let outcome = send_once(client, request).await;
        let (reason, wait) = match &outcome {
            Ok(response)
                if is_retryable(response.status, provider_retry, retry_on, &response.headers) =>
            {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64());
                (
                    format!("status {}", response.status),
                    wait_before_retry(attempt, base_delay, provider_retry, &response.headers, now),
                )
            }
            Ok(_) => return outcome,
            Err(error) => (
                error.clone(),
                crate::providers::retry::exponential(attempt, base_delay),
            ),
        };
        if attempt >= retries {
            return outcome;
        }
        attempt += 1;
        on_retry(&reason, wait, attempt);
        tokio::time::sleep(wait).await;
    }
}

/// The largest body size taken from a `Content-Length` to size the buffer before reading (a larger body
/// still reads whole, growing the buffer as it comes).
const MAX_PRESIZED_BODY: u64 = 64 << 20;

/// Sends `request` once.
pub async fn send_once(
    client: &reqwest::Client,
    request: &PreparedRequest,
) -> Result<HttpResponse, String> {
    let method =
        reqwest::Method::from_bytes(request.method.as_bytes()).map_err(|e| e.to_string())?;
    let mut builder = client.request(method, &request.url);
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    if let Some(body) = &request.body {
        builder = builder.body(body.clone());
    }
    let mut response = builder.send().await.map_err(describe_network_error)?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    // Read into one buffer of the announced size: collecting the chunks and then copying them into a Vec
    // would copy a page of records twice.
    let mut body = Vec::with_capacity(
        response
            .content_length()
            .map_or(0, |length| length.min(MAX_PRESIZED_BODY) as usize),
    );
    while let Some(chunk) = response.chunk().await.map_err(describe_network_error)? {
        body.extend_from_slice(&chunk);
    }
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

/// A network error without the URL's query (which may carry an API key).
fn describe_network_error(error: reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let target = error
        .url()
        .map(|u| {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!(
                "{}://{}{port}{}",
                u.scheme(),
                u.host_str().unwrap_or(""),
                u.path()
            )
        })
        .unwrap_or_default();
    format!("HTTP {kind}: {target}")
}
