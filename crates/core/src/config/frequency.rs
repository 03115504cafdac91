//! The `runs:` grammar, as Nango reads it: a few fixed phrases, else `every ` followed by a duration in the
//! grammar of the `ms` package (`30m`, `2 hours`, `1.5h`, `every 5mins`; a bare number is milliseconds).

use std::time::Duration;

/// Why a `runs:` value was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FrequencyError {
    #[error(
        "Sync interval is invalid: \"{0}\" is not a frequency (write e.g. \"every hour\" or \"every 30 minutes\")"
    )]
    Invalid(String),
    #[error("Sync interval is too short: \"{runs}\" is less than the minimum of {minimum} seconds")]
    TooShort { runs: String, minimum: u64 },
}

/// Parses a `runs:` value into its interval. Phrases are case-sensitive, as in Nango.
pub fn parse_frequency(runs: &str) -> Result<Duration, FrequencyError> {
    let fixed = match runs {
        "every half day" => Some(12 * 3600),
        "every half hour" => Some(30 * 60),
        "every quarter hour" => Some(15 * 60),
        "every hour" => Some(3600),
        "every day" => Some(86400),
        "every month" => Some(30 * 86400),
        "every week" => Some(7 * 86400),
        _ => None,
    };
    if let Some(secs) = fixed {
        return Ok(Duration::from_secs(secs));
    }
    let rest = runs.strip_prefix("every ").unwrap_or(runs);
    let millis = parse_ms(rest).ok_or_else(|| FrequencyError::Invalid(runs.to_string()))?;
    if millis <= 0.0 || !millis.is_finite() {
        return Err(FrequencyError::Invalid(runs.to_string()));
    }
    Ok(Duration::from_millis(millis.round() as u64))
}

/// Parses `runs:` and checks it against the smallest interval accepted (`nango.min_frequency`).
pub fn parse_frequency_with_minimum(
    runs: &str,
    minimum: Duration,
) -> Result<Duration, FrequencyError> {
    let interval = parse_frequency(runs)?;
    if interval < minimum {
        return Err(FrequencyError::TooShort {
            runs: runs.to_string(),
            minimum: minimum.as_secs(),
        });
    }
    Ok(interval)
}

/// The `ms` package's grammar: `^(-?(?:\d+)?\.?\d+) *(unit)?$`, case-insensitive, at most 100 characters.
fn parse_ms(text: &str) -> Option<f64> {
    if text.is_empty() || text.len() > 100 {
        return None;
    }
    let number_end = text
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || c == '.' || (c == '-' && i == 0)))
        .map_or(text.len(), |(i, _)| i);
    let (number, unit) = text.split_at(number_end);
    if number.is_empty() || number.ends_with('.') || number.matches('.').count() > 1 {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    let unit = unit.trim_start_matches(' ').to_ascii_lowercase();
    let factor = match unit.as_str() {
        "" | "ms" | "msec" | "msecs" | "millisecond" | "milliseconds" => 1.0,
        "s" | "sec" | "secs" | "second" | "seconds" => 1000.0,
        "m" | "min" | "mins" | "minute" | "minutes" => 60_000.0,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3_600_000.0,
        "d" | "day" | "days" => 86_400_000.0,
        "w" | "week" | "weeks" => 604_800_000.0,
        "y" | "yr" | "yrs" | "year" | "years" => 31_557_600_000.0,
        _ => return None,
    };
    Some(value * factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(runs: &str) -> u64 {
        parse_frequency(runs).unwrap().as_secs()
    }

    #[test]
    fn phrases() {
        assert_eq!(secs("every half hour"), 1800);
        assert_eq!(secs("every quarter hour"), 900);
        assert_eq!(secs("every day"), 86400);
        assert_eq!(secs("every week"), 604800);
        assert_eq!(secs("every month"), 30 * 86400);
        assert_eq!(secs("every half day"), 43200);
    }

    #[test]
    fn ms_grammar() {
        assert_eq!(secs("every 5m"), 300);
        assert_eq!(secs("every 5min"), 300);
        assert_eq!(secs("every 5mins"), 300);
        assert_eq!(secs("every 5 minutes"), 300);
        assert_eq!(secs("every 1h"), 3600);
        assert_eq!(secs("every 6 hours"), 21600);
        assert_eq!(secs("every 2 days"), 172800);
        assert_eq!(secs("every 1.5 hours"), 5400);
        assert_eq!(secs("every 30 seconds"), 30);
        assert_eq!(secs("30m"), 1800);
        assert_eq!(
            parse_frequency("every 5000").unwrap(),
            Duration::from_millis(5000)
        );
    }

    #[test]
    fn rejects() {
        for bad in [
            "Every Hour",
            "every",
            "every banana",
            "every 0m",
            "every -5m",
            "every 5 parsecs",
            "",
        ] {
            assert!(
                matches!(parse_frequency(bad), Err(FrequencyError::Invalid(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn minimum() {
        let err = parse_frequency_with_minimum("every 10s", Duration::from_secs(30)).unwrap_err();
        assert_eq!(
            err,
            FrequencyError::TooShort {
                runs: "every 10s".into(),
                minimum: 30
            }
        );
        assert!(parse_frequency_with_minimum("every 30s", Duration::from_secs(30)).is_ok());
    }
}
