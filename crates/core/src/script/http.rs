//! Sends proxy requests with reqwest, retrying as Nango does (see `providers::retry`).

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use url::Url;

use super::Limits;
use crate::providers::egress::{self, EgressPolicy, Route};
use crate::providers::retry::{is_retryable, wait_before_retry};
use crate::providers::{PreparedRequest, Provider, ProxyCall};

/// A response as the script sees it.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Sends `request`, retrying up to `call.retries` times on retryable statuses (the provider's and
/// `call.retry_on`) and network errors; `sign` completes each attempt's copy of the request.
/// `on_retry` is told each retry (reason, wait, attempt) so it can be logged.
pub async fn send_with_retries(
    client: &HttpClient,
    request: &PreparedRequest,
    provider: &Provider,
    call: &ProxyCall,
    base_delay: Duration,
    sign: &dyn Fn(&mut PreparedRequest) -> Result<(), String>,
    on_retry: &mut dyn FnMut(&str, Duration, u32),
) -> Result<HttpResponse, String> {
    let (retries, retry_on) = (call.retries, call.retry_on.as_slice());
    let provider_retry = provider.proxy.as_ref().and_then(|p| p.retry.as_ref());
    let mut attempt = 0;
    loop {
        // Each attempt is signed afresh (a TBA signature's nonce and timestamp must not be replayed).
        let mut signed = request.clone();
        sign(&mut signed)?;
        let outcome = send_once(client, &signed).await;
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
            Ok(_) => return outcome.map_err(|e| e.message),
            Err(error) if !error.retryable => return outcome.map_err(|e| e.message),
            Err(error) => (
                error.message.clone(),
                crate::providers::retry::exponential(attempt, base_delay),
            ),
        };
        if attempt >= retries {
            return outcome.map_err(|e| e.message);
        }
        attempt += 1;
        on_retry(&reason, wait, attempt);
        tokio::time::sleep(wait).await;
    }
}

/// The largest body size taken from a `Content-Length` to size the buffer before reading (a larger body
/// still reads whole, growing the buffer as it comes, up to `nango.max_response_size`).
const MAX_PRESIZED_BODY: u64 = 64 << 20;

/// How many redirects a request follows.
const MAX_REDIRECTS: usize = 10;

/// Why a request failed, and whether trying again could help.
#[derive(Debug, Clone, PartialEq)]
pub struct SendError {
    pub message: String,
    /// Network errors are retried; a refused host, a bad redirect or a too large response are not.
    pub retryable: bool,
}

impl SendError {
    fn fatal(message: impl Into<String>) -> SendError {
        SendError {
            message: message.into(),
            retryable: false,
        }
    }
}

/// The HTTP side of a run: the egress policy and the two clients it picks from, with redirects followed
/// here (not by reqwest) so each hop is checked and credentials stay with their origin. Requests run on
/// the process's HTTP thread ([`io_thread`]).
pub struct HttpClient {
    clients: std::sync::Arc<Clients>,
    io: tokio::runtime::Handle,
}

struct Clients {
    /// For the provider's host and `nango.allowed_hosts`: resolves as the system does.
    trusted: reqwest::Client,
    /// For any other host: its resolver refuses names with a non-public address, and the connection is
    /// made to the addresses it checked.
    public_only: reqwest::Client,
    policy: EgressPolicy,
    max_response_size: usize,
}

/// The process's HTTP thread: a tokio runtime of its own that does every run's HTTP I/O, so a request (and
/// reading its response) goes on while the run's thread is busy writing records in Postgres or running
/// JavaScript. It blocks every signal (a backend's signal handlers must run on the backend's thread), as
/// do the threads it starts (DNS lookups), which inherit its mask. It lives as long as the process, so the
/// pooled connections it drives serve run after run of a long-lived worker.
fn io_thread() -> Result<tokio::runtime::Handle, String> {
    static IO: std::sync::OnceLock<Result<tokio::runtime::Handle, String>> =
        std::sync::OnceLock::new();
    IO.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("could not start the HTTP runtime: {e}"))?;
        let handle = runtime.handle().clone();
        crate::records::batch::with_signals_blocked(|| {
            std::thread::Builder::new()
                .name("pg_nango http".into())
                .spawn(move || runtime.block_on(std::future::pending::<()>()))
        })
        .map_err(|e| format!("could not start the HTTP thread: {e}"))?;
        Ok(handle)
    })
    .clone()
}

impl HttpClient {
    /// The clients of a run with these limits.
    pub fn new(limits: &Limits) -> Result<HttpClient, String> {
        let (trusted, public_only) = shared_clients(limits.http_timeout)?;
        Ok(HttpClient {
            clients: std::sync::Arc::new(Clients {
                trusted,
                public_only,
                policy: EgressPolicy::new(&limits.allowed_hosts),
                max_response_size: limits.max_response_size,
            }),
            io: io_thread()?,
        })
    }
}

/// How long a pooled connection may stay idle before a request opens a new one: below the keep-alive
/// timeouts servers commonly use, so a run rarely meets a connection the server is closing.
const POOL_IDLE: Duration = Duration::from_secs(20);

/// The trusted and public-only clients for `timeout`, built once per process and timeout. Building one
/// costs milliseconds (TLS roots), and the runs of a long-lived worker share the kept-alive connections
/// of its pool, driven by the HTTP thread; they share nothing else: there is no cookie store, and
/// credentials, the egress policy and size limits are applied per request and per run.
fn shared_clients(timeout: Duration) -> Result<(reqwest::Client, reqwest::Client), String> {
    type Cached = Option<(Duration, reqwest::Client, reqwest::Client)>;
    static CLIENTS: std::sync::Mutex<Cached> = std::sync::Mutex::new(None);
    let mut cached = CLIENTS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((built_for, trusted, public_only)) = cached.as_ref()
        && *built_for == timeout
    {
        return Ok((trusted.clone(), public_only.clone()));
    }
    // No proxy from the environment: a proxy would resolve and reach hosts this policy never saw.
    let builder = || {
        reqwest::Client::builder()
            .timeout(timeout)
            .pool_idle_timeout(POOL_IDLE)
            .user_agent(concat!("pg_nango/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
    };
    let build_error = |e: reqwest::Error| format!("could not build the HTTP client: {e}");
    let trusted = builder().build().map_err(build_error)?;
    let public_only = builder()
        .dns_resolver(PublicResolver)
        .build()
        .map_err(build_error)?;
    *cached = Some((timeout, trusted.clone(), public_only.clone()));
    Ok((trusted, public_only))
}

/// Aborts the task when the request's future is dropped (the run ended while it was in flight).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Resolves a name and accepts it only when every address is public ([`egress::check_resolved`]).
struct PublicResolver;

impl reqwest::dns::Resolve for PublicResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addresses: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let ips: Vec<IpAddr> = addresses.iter().map(SocketAddr::ip).collect();
            egress::check_resolved(&host, &ips)?;
            Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Sends `request` once, following redirects (each hop checked against the egress policy, credentials
/// dropped when the origin changes), and reads the body up to `nango.max_response_size`.
pub async fn send_once(
    client: &HttpClient,
    request: &PreparedRequest,
) -> Result<HttpResponse, SendError> {
    let (clients, request) = (client.clients.clone(), request.clone());
    let mut task = AbortOnDrop(
        client
            .io
            .spawn(async move { send_on_io_thread(&clients, &request).await }),
    );
    (&mut task.0).await.unwrap_or_else(|error| {
        Err(SendError::fatal(format!(
            "the HTTP request ended abnormally: {error}"
        )))
    })
}

async fn send_on_io_thread(
    client: &Clients,
    request: &PreparedRequest,
) -> Result<HttpResponse, SendError> {
    let mut current = Cow::Borrowed(request);
    let mut hops = 0;
    loop {
        let url = Url::parse(&current.url)
            .map_err(|_| SendError::fatal(format!("invalid URL {}", current.url)))?;
        let http = match client
            .policy
            .route(&url, current.trusted_host.as_deref())
            .map_err(|e| SendError::fatal(e.to_string()))?
        {
            Route::Trusted => &client.trusted,
            Route::PublicOnly => &client.public_only,
        };
        let method = reqwest::Method::from_bytes(current.method.as_bytes())
            .map_err(|e| SendError::fatal(e.to_string()))?;
        let mut builder = http.request(method, url.clone());
        for (name, value) in &current.headers {
            builder = builder.header(name, value);
        }
        if let Some(body) = &current.body {
            builder = builder.body(body.clone());
        }
        let response = builder.send().await.map_err(describe_network_error)?;
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|value| value.to_str().ok());
        if let (301 | 302 | 303 | 307 | 308, Some(location)) = (status, location) {
            if hops == MAX_REDIRECTS {
                return Err(SendError::fatal(format!(
                    "{} {} was redirected more than {MAX_REDIRECTS} times",
                    current.method,
                    without_query(&url)
                )));
            }
            let target = url.join(location).map_err(|_| {
                SendError::fatal(format!(
                    "{} {} redirected to an invalid URL",
                    current.method,
                    without_query(&url)
                ))
            })?;
            // A 307/308 resends the body, and a body may carry secrets (a token refresh sends the client
            // secret and the refresh token in its form): it never goes to another origin.
            if matches!(status, 307 | 308)
                && current.body.is_some()
                && url.origin() != target.origin()
            {
                return Err(SendError::fatal(format!(
                    "{} {} was redirected ({status}) to another origin with its body; such a redirect is not followed",
                    current.method,
                    without_query(&url)
                )));
            }
            current = Cow::Owned(egress::redirect(&current, status, &target));
            hops += 1;
            continue;
        }
        return read_response(response, &current.method, client.max_response_size).await;
    }
}

/// The response with its body, refused when the body is larger than `limit`: by its `Content-Length`
/// before reading, else as soon as the bytes read pass it. The buffer never grows past `limit`.
async fn read_response(
    mut response: reqwest::Response,
    method: &str,
    limit: usize,
) -> Result<HttpResponse, SendError> {
    let too_large = |response: &reqwest::Response| {
        let size = if limit.is_multiple_of(1 << 20) {
            format!("{} MB", limit >> 20)
        } else {
            format!("{limit} bytes")
        };
        SendError::fatal(format!(
            "the response to {method} {} is larger than nango.max_response_size ({size})",
            without_query(response.url())
        ))
    };
    // A HEAD response announces the length of a body it does not have.
    let announced = response.content_length().filter(|_| method != "HEAD");
    if announced.is_some_and(|length| length > limit as u64) {
        return Err(too_large(&response));
    }
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
    let mut body =
        Vec::with_capacity(announced.map_or(0, |length| length.min(MAX_PRESIZED_BODY) as usize));
    while let Some(chunk) = response.chunk().await.map_err(describe_network_error)? {
        let needed = body.len() + chunk.len();
        if needed > limit {
            return Err(too_large(&response));
        }
        if needed > body.capacity() {
            // Grow as a Vec would (doubling) but never past the limit.
            let target = needed.max(body.capacity() * 2).min(limit);
            body.reserve_exact(target - body.len());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

/// `scheme://host:port/path` of `url`: its query may carry an API key.
fn without_query(url: &Url) -> String {
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    format!(
        "{}://{}{port}{}",
        url.scheme(),
        url.host_str().unwrap_or(""),
        url.path()
    )
}

/// A network error without the URL's query (which may carry an API key); a host refused by the resolver
/// is reported as the egress policy words it, and is not retried.
fn describe_network_error(error: reqwest::Error) -> SendError {
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<egress::EgressError>() {
            return SendError::fatal(refused.to_string());
        }
        source = cause.source();
    }
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let target = error.url().map(without_query).unwrap_or_default();
    SendError {
        message: format!("HTTP {kind}: {target}"),
        retryable: true,
    }
}
