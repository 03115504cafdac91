//! TBA: NetSuite's token-based authentication, an OAuth 1.0a signature (HMAC-SHA256) computed for each
//! request, as Nango does. The token is the connection's `token_id`/`token_secret`; the consumer is the
//! connection's `config_override.client_id`/`client_secret`, else the integration's client id and secret.
//! The header names the account as its realm: `connectionConfig.accountId`, upper case, `-` as `_`.

use base64::Engine;
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;
use sha2::Sha256;

use super::super::ConnectionInfo;
use super::super::oauth::OAuthClient;

/// Everything but RFC 3986's unreserved characters is encoded (RFC 5849 section 3.6).
const RESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

const SIGNATURE_METHOD: &str = "HMAC-SHA256";

fn encode(text: &str) -> String {
    utf8_percent_encode(text, RESERVED).to_string()
}

/// The `Authorization` header of a request of `method` to `url` (with its query), at `timestamp` (seconds)
/// with `nonce`.
pub fn authorization(
    connection: &ConnectionInfo,
    integration: Option<&OAuthClient>,
    method: &str,
    url: &str,
    nonce: &str,
    timestamp: i64,
) -> Result<String, String> {
    let credentials = &connection.credentials;
    let text = |value: Option<&Value>| {
        value
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let overridden = credentials.get("config_override");
    let consumer_key = text(overridden.and_then(|o| o.get("client_id")))
        .or_else(|| integration.map(|c| c.client_id.clone()))
        .ok_or("TBA connections need a consumer key: config_override.client_id in the credentials, or the integration's client id")?;
    let consumer_secret = text(overridden.and_then(|o| o.get("client_secret")))
        .or_else(|| integration.map(|c| c.client_secret.clone()))
        .ok_or("TBA connections need a consumer secret: config_override.client_secret in the credentials, or the integration's client secret")?;
    let token_id = text(credentials.get("token_id")).unwrap_or_default();
    let token_secret = text(credentials.get("token_secret")).unwrap_or_default();
    let realm = text(connection.connection_config.get("accountId"))
        .ok_or("TBA connections need an accountId in connection_config")?
        .replace('-', "_")
        .to_uppercase();
    let timestamp = timestamp.to_string();
    let oauth = [
        ("oauth_consumer_key", consumer_key.as_str()),
        ("oauth_nonce", nonce),
        ("oauth_signature_method", SIGNATURE_METHOD),
        ("oauth_timestamp", timestamp.as_str()),
        ("oauth_token", token_id.as_str()),
        ("oauth_version", "1.0"),
    ];
    let base = base_string(method, url, &oauth)?;
    let key = format!("{}&{}", encode(&consumer_secret), encode(&token_secret));
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes())
        .map_err(|_| "the TBA signing key is not usable".to_string())?;
    mac.update(base.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let mut header = format!("OAuth realm=\"{}\"", encode(&realm));
    let mut fields: Vec<(&str, &str)> = oauth.to_vec();
    fields.push(("oauth_signature", signature.as_str()));
    fields.sort();
    for (name, value) in fields {
        header.push_str(&format!(", {name}=\"{}\"", encode(value)));
    }
    Ok(header)
}

/// RFC 5849 section 3.4.1: the method, the base URI (scheme and host in lower case, the port only when
/// not the default, no query) and the normalized parameters (the query's and `params`, encoded, sorted).
pub fn base_string(method: &str, url: &str, params: &[(&str, &str)]) -> Result<String, String> {
    let parsed = url::Url::parse(url).map_err(|_| "the request URL is not valid".to_string())?;
    let host = parsed.host_str().unwrap_or_default().to_ascii_lowercase();
    // `url` drops a scheme's default port itself.
    let authority = match parsed.port() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    };
    let base_uri = format!(
        "{}://{authority}{}",
        parsed.scheme().to_ascii_lowercase(),
        parsed.path()
    );
    let mut pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(parsed.query().unwrap_or_default().as_bytes())
            .map(|(k, v)| (encode(&k), encode(&v)))
            .chain(params.iter().map(|(k, v)| (encode(k), encode(v))))
            .collect();
    pairs.sort();
    let normalized = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    Ok(format!(
        "{}&{}&{}",
        method.to_ascii_uppercase(),
        encode(&base_uri),
        encode(&normalized)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builds_rfc_5849s_example_base_string() {
        // RFC 5849 section 3.4.1.1, its body parameters given as parameters.
        let base = base_string(
            "post",
            "http://EXAMPLE.COM:80/request?b5=%3D%253D&a3=a&c%40=&a2=r%20b",
            &[
                ("oauth_consumer_key", "9djdj82h48djs9d2"),
                ("oauth_token", "kkk9d7dh3k39sjv7"),
                ("oauth_signature_method", "HMAC-SHA1"),
                ("oauth_timestamp", "137131201"),
                ("oauth_nonce", "7d8f3e4a"),
                ("c2", ""),
                ("a3", "2 q"),
            ],
        )
        .unwrap();
        assert_eq!(
            base,
            "POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3D2%2520q%26a3%3Da%26b5%3D%253D%25253D%26c%2540%3D%26c2%3D%26oauth_consumer_key%3D9djdj82h48djs9d2%26oauth_nonce%3D7d8f3e4a%26oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D137131201%26oauth_token%3Dkkk9d7dh3k39sjv7"
        );
    }

    #[test]
    fn signs_a_netsuite_request() {
        let connection = ConnectionInfo {
            connection_config: json!({"accountId": "1234567-sb1"}),
            credentials: json!({"type": "TBA", "token_id": "tok", "token_secret": "toksecret",
                "config_override": {"client_id": "ck", "client_secret": "cs"}}),
            ..ConnectionInfo::default()
        };
        let header = authorization(
            &connection,
            None,
            "GET",
            "https://1234567-sb1.suitetalk.api.netsuite.com/services/rest/record/v1/customer?limit=5",
            "abc123",
            1_700_000_000,
        )
        .unwrap();
        // The signature computed independently: HMAC-SHA256 of the base string with "cs&toksecret".
        assert_eq!(
            header,
            "OAuth realm=\"1234567_SB1\", oauth_consumer_key=\"ck\", oauth_nonce=\"abc123\", \
             oauth_signature=\"v4dEGb67rDlRc4OD6z9Us2lhOa76Y2DT7wBC5sK%2BAkc%3D\", oauth_signature_method=\"HMAC-SHA256\", \
             oauth_timestamp=\"1700000000\", oauth_token=\"tok\", oauth_version=\"1.0\""
        );
        let mut bare = connection.clone();
        bare.credentials = json!({"type": "TBA", "token_id": "tok", "token_secret": "s"});
        assert!(
            authorization(&bare, None, "GET", "https://x.example/", "n", 1)
                .unwrap_err()
                .contains("consumer key")
        );
        let integration = OAuthClient {
            client_id: "ck".into(),
            client_secret: "cs".into(),
        };
        assert!(
            authorization(
                &bare,
                Some(&integration),
                "GET",
                "https://x.example/",
                "n",
                1
            )
            .is_ok()
        );
    }
}
