//! BILL: a session login, as Nango does it for BILL's Connect API. The connection's `username`,
//! `password`, `organization_id` and `dev_key` are POSTed as JSON (`username`, `password`,
//! `organizationId`, `devKey`) to the provider's `token_url`; the answer's `sessionId` becomes the
//! connection's `session_id`, kept 35 minutes (BILL ends a session after 35 idle minutes and says nothing
//! of it in the answer). The session goes where the provider's `proxy.headers` put it
//! (`${credentials.session_id}`, `${credentials.dev_key}`); no header is added by default.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::super::{ConnectionInfo, PreparedRequest, Provider};
use super::{expires_at, response_json, token_url};

/// How long a session is kept (Nango's 35 minutes).
const SESSION_LIFETIME_SECS: i64 = 35 * 60;

/// The login request.
pub fn token_request(
    provider: &Provider,
    connection: &ConnectionInfo,
) -> Result<PreparedRequest, String> {
    let field = |name: &str| {
        connection
            .credentials
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let body = json!({
        "username": field("username"),
        "password": field("password"),
        "organizationId": field("organization_id"),
        "devKey": field("dev_key"),
    });
    let (url, trusted_host) = token_url(provider, connection, "BILL")?;
    Ok(PreparedRequest {
        method: "POST".into(),
        url,
        headers: vec![("content-type".into(), "application/json".into())],
        body: Some(body.to_string()),
        trusted_host,
        ..PreparedRequest::default()
    })
}

/// The credentials after a login answered `body`: the session, its user, the organization the answer
/// names (else the connection's), the login fields kept for the next login, and the raw answer.
pub fn credentials(old: &Value, body: &[u8], now: DateTime<Utc>) -> Result<Value, String> {
    let response = response_json(body)?;
    let session = response
        .get("sessionId")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or("the login answer has no sessionId")?;
    let mut credentials = json!({
        "type": "BILL",
        "session_id": session,
        "expires_at": expires_at(now, SESSION_LIFETIME_SECS),
    });
    for kept in ["username", "password", "organization_id", "dev_key"] {
        if let Some(value) = old.get(kept) {
            credentials[kept] = value.clone();
        }
    }
    if let Some(organization) = response.get("organizationId").filter(|v| v.is_string()) {
        credentials["organization_id"] = organization.clone();
    }
    if let Some(user) = response.get("userId").filter(|v| v.is_string()) {
        credentials["user_id"] = user.clone();
    }
    credentials["raw"] = response;
    Ok(credentials)
}

#[cfg(test)]
mod tests {
    use super::super::parse_time;
    use super::*;

    fn connection() -> ConnectionInfo {
        ConnectionInfo {
            credentials: json!({"type": "BILL", "username": "u", "password": "p",
                "organization_id": "008o", "dev_key": "dk"}),
            ..ConnectionInfo::default()
        }
    }

    #[test]
    fn logs_in_with_the_four_fields() {
        let provider: Provider =
            serde_yaml::from_str("auth_mode: BILL\ntoken_url: https://gateway.example/v3/login\n")
                .unwrap();
        let request = token_request(&provider, &connection()).unwrap();
        assert_eq!(request.url, "https://gateway.example/v3/login");
        let body: Value = serde_json::from_str(request.body.as_deref().unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"username": "u", "password": "p", "organizationId": "008o", "devKey": "dk"})
        );
    }

    #[test]
    fn keeps_the_session_35_minutes() {
        let now = parse_time("2026-01-01T12:00:00Z").unwrap();
        let old = connection().credentials;
        let new = credentials(
            &old,
            br#"{"sessionId":"s1","organizationId":"008o","userId":"006u"}"#,
            now,
        )
        .unwrap();
        assert_eq!(new["session_id"], "s1");
        assert_eq!(new["user_id"], "006u");
        assert_eq!(new["dev_key"], "dk");
        assert_eq!(new["password"], "p");
        assert_eq!(new["expires_at"], "2026-01-01T12:35:00+00:00");
        assert!(credentials(&old, br#"{"error":"no"}"#, now).is_err());
    }
}
