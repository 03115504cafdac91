//! Nango's retry rules for proxy calls: no retry unless the call asks for `retries`; which statuses are
//! retryable (the provider's `error_code` list, else 5xx, 429 and 401, plus the call's `retryOn`); and how
//! long to wait (the provider's `retry.at` reset-time or `retry.after` seconds headers, else exponential
//! backoff from a base delay, doubling, capped at 10 minutes).

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The longest backoff step.
pub const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// The `proxy.retry` section of a provider.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProviderRetry {
    #[serde(default, deserialize_with = "one_or_many")]
    pub at: Vec<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub after: Vec<String>,
    #[serde(default)]
    pub remaining: Option<String>,
    #[serde(default)]
    pub error_code: Vec<String>,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// Whether a response status may be retried.
pub fn is_retryable(
    status: u16,
    retry: Option<&ProviderRetry>,
    retry_on: &[u16],
    headers: &[(String, String)],
) -> bool {
    let by_provider = match retry {
        Some(r) if !r.error_code.is_empty() => {
            r.error_code.iter().any(|code| code_matches(code, status))
        }
        _ => status >= 500 || status == 429 || status == 401,
    };
    let exhausted = retry
        .and_then(|r| r.remaining.as_deref())
        .and_then(|name| header(headers, name))
        .is_some_and(|v| v.trim() == "0");
    by_provider || retry_on.contains(&status) || exhausted
}

/// `'403'`, `'5xx'` or `'500-502'`.
fn code_matches(code: &str, status: u16) -> bool {
    let code = code.trim();
    if let Some(prefix) = code.strip_suffix("xx") {
        return prefix.parse::<u16>().is_ok_and(|p| status / 100 == p);
    }
    if let Some((low, high)) = code.split_once('-') {
        return matches!((low.trim().parse::<u16>(), high.trim().parse::<u16>()), (Ok(l), Ok(h)) if (l..=h).contains(&status));
    }
    code.parse::<u16>() == Ok(status)
}

/// How long to wait before retry number `attempt` (0 for the first retry). `now_epoch_secs` is the current
/// time, passed in so the rule is testable.
pub fn wait_before_retry(
    attempt: u32,
    base_delay: Duration,
    retry: Option<&ProviderRetry>,
    headers: &[(String, String)],
    now_epoch_secs: f64,
) -> Duration {
    if let Some(retry) = retry {
        let from_reset = retry
            .at
            .iter()
            .filter_map(|name| header(headers, name))
            .filter_map(|v| reset_wait(v, now_epoch_secs))
            .max();
        if let Some(wait) = from_reset {
            return wait;
        }
        let from_after = retry
            .after
            .iter()
            .filter_map(|name| header(headers, name))
            .filter_map(|v| v.trim().parse::<f64>().ok())
            .filter(|secs| secs.is_finite() && *secs >= 0.0)
            .map(|secs| Duration::from_millis((secs * 1000.0) as u64))
            .max();
        if let Some(wait) = from_after {
            return wait;
        }
    }
    exponential(attempt, base_delay)
}

/// 1972-01-01 in epoch milliseconds.
const EPOCH_MS_1972: f64 = 63_072_000_000.0;

/// `base · 2^attempt`, capped at [`MAX_BACKOFF`].
pub fn exponential(attempt: u32, base_delay: Duration) -> Duration {
    base_delay
        .saturating_mul(2u32.saturating_pow(attempt.min(20)))
        .min(MAX_BACKOFF)
}

/// A reset time header: epoch seconds (or milliseconds when that reads as a year after 1971), or a date.
fn reset_wait(value: &str, now_epoch_secs: f64) -> Option<Duration> {
    let value = value.trim();
    let reset_secs = if let Ok(n) = value.parse::<f64>() {
        // Nango reads the number as epoch milliseconds when, read so, it is a date after 1971.
        if n >= EPOCH_MS_1972 { n / 1000.0 } else { n }
    } else {
        chrono::DateTime::parse_from_rfc2822(value)
            .or_else(|_| chrono::DateTime::parse_from_rfc3339(value))
            .ok()?
            .timestamp() as f64
    };
    let wait = (reset_secs - now_epoch_secs).ceil();
    (wait > 0.0).then(|| Duration::from_secs(wait as u64))
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(name: &str, value: &str) -> Vec<(String, String)> {
        vec![(name.to_string(), value.to_string())]
    }

    #[test]
    fn retryable_statuses() {
        assert!(is_retryable(500, None, &[], &[]));
        assert!(is_retryable(429, None, &[], &[]));
        assert!(is_retryable(401, None, &[], &[]));
        assert!(!is_retryable(404, None, &[], &[]));
        assert!(is_retryable(404, None, &[404], &[]));
        let github = ProviderRetry {
            error_code: vec!["403".into(), "5xx".into()],
            remaining: Some("x-ratelimit-remaining".into()),
            ..Default::default()
        };
        assert!(is_retryable(403, Some(&github), &[], &[]));
        assert!(is_retryable(503, Some(&github), &[], &[]));
        assert!(!is_retryable(429, Some(&github), &[], &[]));
        assert!(is_retryable(
            429,
            Some(&github),
            &[],
            &h("X-RateLimit-Remaining", "0")
        ));
        assert!(code_matches("500-502", 501));
    }

    #[test]
    fn waits() {
        let base = Duration::from_millis(3000);
        assert_eq!(
            wait_before_retry(0, base, None, &[], 0.0),
            Duration::from_secs(3)
        );
        assert_eq!(
            wait_before_retry(2, base, None, &[], 0.0),
            Duration::from_secs(12)
        );
        assert_eq!(wait_before_retry(30, base, None, &[], 0.0), MAX_BACKOFF);
        let after = ProviderRetry {
            after: vec!["retry-after".into()],
            ..Default::default()
        };
        assert_eq!(
            wait_before_retry(0, base, Some(&after), &h("Retry-After", "2"), 0.0),
            Duration::from_secs(2)
        );
        let at = ProviderRetry {
            at: vec!["x-ratelimit-reset".into()],
            ..Default::default()
        };
        assert_eq!(
            wait_before_retry(0, base, Some(&at), &h("x-ratelimit-reset", "1005"), 1000.2),
            Duration::from_secs(5)
        );
        assert_eq!(
            wait_before_retry(
                0,
                base,
                Some(&at),
                &h("x-ratelimit-reset", "1700000005000"),
                1_700_000_000.0
            ),
            Duration::from_secs(5)
        );
        // A reset time in the past falls back to exponential backoff.
        assert_eq!(
            wait_before_retry(0, base, Some(&at), &h("x-ratelimit-reset", "10"), 1000.0),
            base
        );
    }
}
