//! The connection's credentials made usable before each proxied request: an OAuth2 token about to expire
//! is refreshed, and the token of a mode that fetches or signs one (OAUTH2_CC, TWO_STEP, JWT, APP, CUSTOM)
//! is obtained when missing or about to expire (see [`crate::providers::auth`]). The new credentials are
//! stored, so the next request and the next run reuse them.

use std::cell::RefCell;

use crate::providers::ConnectionInfo;
use crate::providers::Provider;
use crate::providers::auth::{self, Renewal};
use crate::providers::oauth::OAuthClient;

use super::{Host, http};

/// The connection with usable credentials, renewed first when needed, at most one renewal at a time per
/// connection; a request or run that waited for another's renewal uses its result. It is returned as
/// scripts and the proxy see it ([`auth::as_seen`]); the stored form stays in `connection`.
///
/// Two locks: `refreshing` orders the concurrent requests of this run (`Promise.all` of two calls), which
/// share one session and so would both pass the host's lock, and the host's lock orders runs.
pub(super) async fn fresh_connection(
    client: &http::HttpClient,
    provider: &Provider,
    oauth_client: Option<&OAuthClient>,
    connection: &RefCell<ConnectionInfo>,
    refreshing: &tokio::sync::Mutex<()>,
    host: &RefCell<dyn Host>,
) -> Result<ConnectionInfo, String> {
    let stored = async {
        let stale = |credentials: &serde_json::Value| {
            auth::needs_renewal(credentials, provider, chrono::Utc::now())
        };
        if !stale(&connection.borrow().credentials) {
            return Ok(connection.borrow().clone());
        }
        let _one_refresh = refreshing.lock().await;
        let mut current = connection.borrow().clone();
        if !stale(&current.credentials) {
            return Ok(current);
        }
        current.credentials = host.borrow_mut().lock_credentials()?;
        if !stale(&current.credentials) {
            host.borrow_mut().release_credentials();
            *connection.borrow_mut() = current.clone();
            return Ok(current);
        }
        let renewed = async {
            let now = chrono::Utc::now();
            match auth::renewal(provider, &current, oauth_client, now)? {
                Renewal::Computed(credentials) => Ok(credentials),
                Renewal::Fetch(request) => {
                    let response = http::send_once(client, &request)
                        .await
                        .map_err(|e| e.message)?;
                    if response.status >= 400 {
                        return Err(format!(
                            "{} failed: the token endpoint answered HTTP {}",
                            auth::describe(&current.credentials),
                            response.status
                        ));
                    }
                    let credentials = auth::renewed_credentials(
                        provider,
                        &current.credentials,
                        &response.body,
                        chrono::Utc::now(),
                    )?;
                    let renewed = ConnectionInfo {
                        credentials,
                        ..current.clone()
                    };
                    Ok(with_companion(client, provider, oauth_client, renewed, host).await)
                }
            }
        }
        .await;
        match renewed {
            Ok(credentials) => {
                host.borrow_mut().store_credentials(&credentials)?;
                current.credentials = credentials;
                *connection.borrow_mut() = current.clone();
                Ok(current)
            }
            Err(error) => {
                host.borrow_mut().release_credentials();
                Err(error)
            }
        }
    }
    .await;
    stored.map(auth::as_seen)
}

/// The renewed credentials after the refresh that goes with the renewal (a CUSTOM connection's user
/// token); when it fails the credentials are kept as they are and a warning says why, as Nango keeps the
/// user's token and uses the new installation token.
async fn with_companion(
    client: &http::HttpClient,
    provider: &Provider,
    oauth_client: Option<&OAuthClient>,
    renewed: ConnectionInfo,
    host: &RefCell<dyn Host>,
) -> serde_json::Value {
    let Some(request) = auth::companion_refresh(provider, &renewed, oauth_client) else {
        return renewed.credentials;
    };
    let refreshed = match http::send_once(client, &request).await {
        Ok(response) if response.status < 400 => {
            auth::companion_refreshed(&renewed.credentials, &response.body, chrono::Utc::now())
        }
        Ok(response) => Err(format!(
            "the token endpoint answered HTTP {}",
            response.status
        )),
        Err(error) => Err(error.message),
    };
    refreshed.unwrap_or_else(|error| {
        host.borrow_mut().log(
            "warn",
            &format!("refreshing the user's OAuth2 token failed, it is kept as it was: {error}"),
            None,
        );
        renewed.credentials
    })
}
