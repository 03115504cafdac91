//! Where a proxy call may go. The provider's base URL host is always reachable; any other host only when it
//! resolves to public addresses or is listed in `nango.allowed_hosts`. Private addresses (loopback, RFC 1918,
//! link-local such as the 169.254.169.254 metadata service, unique-local, and the other ranges
//! [`private_kind`] names) are refused before a connection is made.
//!
//! The decision is made here, without connecting: [`EgressPolicy::route`] says whether a URL's host is
//! trusted (reached as it resolves) or must be public; for the latter, an IP literal is checked at once and
//! a name is checked by the HTTP client's resolver with [`check_resolved`], which hands the client exactly
//! the addresses it checked (no second lookup that a rebinding DNS server could answer differently).
//! [`redirect`] decides what of a request follows a redirect.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

use super::PreparedRequest;

/// Why a request was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    #[error(
        "request to {host} refused: it resolves to a private address ({kind}); list the host in nango.allowed_hosts to allow it"
    )]
    Private { host: String, kind: &'static str },
    #[error("request to {url} refused: only http and https URLs can be requested")]
    Scheme { url: String },
    #[error("request to {url} refused: the URL has no host")]
    NoHost { url: String },
    #[error("request to {host} refused: the name resolves to no address")]
    Unresolved { host: String },
}

/// How a request to a host is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The provider's base URL host or a host in `nango.allowed_hosts`: reached whatever it resolves to.
    Trusted,
    /// Any other host: reached only at public addresses (an IP literal has been checked; a name must be
    /// checked when it is resolved).
    PublicOnly,
}

/// One `nango.allowed_hosts` entry: a host (name or address) and optionally the only port it is allowed on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AllowedHost {
    host: String,
    port: Option<u16>,
}

/// The egress rules of one run.
#[derive(Debug, Clone, Default)]
pub struct EgressPolicy {
    allowed: Vec<AllowedHost>,
}

impl EgressPolicy {
    /// The policy with these `nango.allowed_hosts` entries (`host`, `host:port`, `[v6]:port` or a bare IPv6
    /// address). Entries that are not a host are ignored: they can only fail to match.
    pub fn new(allowed_hosts: &[String]) -> EgressPolicy {
        EgressPolicy {
            allowed: allowed_hosts
                .iter()
                .filter_map(|entry| parse_allowed(entry))
                .collect(),
        }
    }

    /// How `url` may be reached by a request whose trusted host is `trusted_host` (the provider's base URL
    /// host, on any port), or why it may not.
    pub fn route(&self, url: &Url, trusted_host: Option<&str>) -> Result<Route, EgressError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(EgressError::Scheme {
                url: origin_text(url),
            });
        }
        let host = url.host().ok_or_else(|| EgressError::NoHost {
            url: origin_text(url),
        })?;
        let name = host_key(&host);
        let port = url.port_or_known_default();
        if trusted_host.is_some_and(|trusted| normalize(trusted) == name)
            || self
                .allowed
                .iter()
                .any(|a| a.host == name && a.port.is_none_or(|p| Some(p) == port))
        {
            return Ok(Route::Trusted);
        }
        let literal = match host {
            Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
            Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
            Host::Domain(_) => None,
        };
        if let Some(ip) = literal {
            check_resolved(&name, &[ip])?;
        }
        Ok(Route::PublicOnly)
    }
}

/// Accepts the addresses `host` resolved to only when all are public: one private address among public
/// ones is refused too, since the client may pick any of them.
pub fn check_resolved(host: &str, addresses: &[IpAddr]) -> Result<(), EgressError> {
    if addresses.is_empty() {
        return Err(EgressError::Unresolved {
            host: host.to_string(),
        });
    }
    match addresses.iter().find_map(|ip| private_kind(*ip)) {
        Some(kind) => Err(EgressError::Private {
            host: host.to_string(),
            kind,
        }),
        None => Ok(()),
    }
}

/// The kind of non-public address `ip` is, or `None` for a public one. IPv6 forms that carry an IPv4
/// address (mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are
/// judged by that address.
pub fn private_kind(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => private_kind_v4(v4),
        IpAddr::V6(v6) => private_kind_v6(v6),
    }
}

fn private_kind_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, _, _) => "unspecified",
        (10, _, _) | (172, 16..=31, _) | (192, 168, _) => "private network",
        (100, 64..=127, _) => "shared address space",
        (127, _, _) => "loopback",
        (169, 254, _) => "link-local",
        (192, 0, 0) => "IETF protocol assignment",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (198, 18..=19, _) => "benchmarking",
        (224..=239, _, _) => "multicast",
        _ if ip.is_broadcast() => "broadcast",
        (240..=255, _, _) => "reserved",
        _ => return None,
    })
}

fn private_kind_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let segments = ip.segments();
    let embedded_v4 = |high: usize| {
        Ipv4Addr::new(
            (segments[high] >> 8) as u8,
            segments[high] as u8,
            (segments[high + 1] >> 8) as u8,
            segments[high + 1] as u8,
        )
    };
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    match segments {
        // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible, deprecated but still routed by some stacks).
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0, 0, 0, 0, 0, 0, _, _] => {
            return private_kind_v4(embedded_v4(6));
        }
        // NAT64's well-known prefix reaches the IPv4 address in its last 32 bits.
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => return private_kind_v4(embedded_v4(6)),
        // 6to4 relays to the IPv4 address in bits 16..48.
        [0x2002, ..] => return private_kind_v4(embedded_v4(1)),
        _ => {}
    }
    let first = segments[0];
    Some(match first {
        _ if first & 0xffc0 == 0xfe80 => "link-local",
        _ if first & 0xffc0 == 0xfec0 => "site-local",
        _ if first & 0xfe00 == 0xfc00 => "unique-local",
        _ if first & 0xff00 == 0xff00 => "multicast",
        0x2001 if segments[1] == 0x0db8 => "documentation",
        0x0100 if segments[1..4] == [0, 0, 0] => "discard",
        _ => return None,
    })
}

/// What of `request` follows a redirect to `target`: a request to `target` that keeps the method and body
/// for 307 and 308 and becomes a body-less GET for 303 (and for a POST answered 301 or 302, as browsers and
/// HTTP clients do). When the origin (scheme, host or port) changes, the credentials stay behind: the
/// headers built from the connection's credentials and `authorization`, `cookie` and
/// `proxy-authorization`, and the credential query parameters if the server echoed them into `target`.
pub fn redirect(request: &PreparedRequest, status: u16, target: &Url) -> PreparedRequest {
    let mut next = request.clone();
    let to_get = (status == 303 && request.method != "HEAD")
        || (matches!(status, 301 | 302) && request.method == "POST");
    if to_get {
        next.method = "GET".into();
        next.body = None;
        next.headers
            .retain(|(name, _)| name != "content-type" && name != "content-length");
    }
    let mut url = target.clone();
    let same_origin = Url::parse(&request.url).is_ok_and(|from| from.origin() == target.origin());
    if !same_origin {
        next.headers.retain(|(name, _)| {
            !matches!(
                name.as_str(),
                "authorization" | "cookie" | "proxy-authorization"
            ) && !request.credential_headers.contains(name)
        });
        if url
            .query_pairs()
            .any(|(name, _)| request.credential_params.iter().any(|p| *p == name))
        {
            let kept: Vec<(String, String)> = url
                .query_pairs()
                .filter(|(name, _)| !request.credential_params.iter().any(|p| *p == *name))
                .map(|(n, v)| (n.into_owned(), v.into_owned()))
                .collect();
            url.set_query(None);
            if !kept.is_empty() {
                url.query_pairs_mut().extend_pairs(kept);
            }
        }
        next.credential_headers.clear();
        next.credential_params.clear();
    }
    next.url = url.into();
    next
}

/// `scheme://host:port` of `url`, for errors: never its path or query, which may carry a key.
fn origin_text(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    }
}

/// A host as compared: names in lowercase without a trailing dot, IPv6 addresses without brackets.
fn host_key(host: &Host<&str>) -> String {
    match host {
        Host::Domain(name) => normalize(name),
        Host::Ipv4(ip) => ip.to_string(),
        Host::Ipv6(ip) => ip.to_string(),
    }
}

/// A host name or address as written by a user, in the form [`host_key`] gives.
fn normalize(host: &str) -> String {
    let bare = host.trim().trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => bare.trim_end_matches('.').to_ascii_lowercase(),
    }
}

fn parse_allowed(entry: &str) -> Option<AllowedHost> {
    let entry = entry.trim();
    // A bare IPv6 address has colons but no port.
    if entry.parse::<Ipv6Addr>().is_ok() {
        return Some(AllowedHost {
            host: normalize(entry),
            port: None,
        });
    }
    let (host, port) = match entry.strip_prefix('[') {
        Some(bracketed) => {
            let (host, rest) = bracketed.split_once(']')?;
            (host, rest)
        }
        None => match entry.rsplit_once(':') {
            Some((host, _)) => (host, &entry[host.len()..]),
            None => (entry, ""),
        },
    };
    let port = match port {
        "" => None,
        _ => Some(port.strip_prefix(':')?.parse::<u16>().ok()?),
    };
    (!host.is_empty()).then(|| AllowedHost {
        host: normalize(host),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(text: &str) -> Option<&'static str> {
        private_kind(text.parse().unwrap())
    }

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn classifies_ipv4() {
        for (address, expected) in [
            ("127.0.0.1", "loopback"),
            ("127.255.255.254", "loopback"),
            ("10.1.2.3", "private network"),
            ("172.16.0.1", "private network"),
            ("172.31.255.255", "private network"),
            ("192.168.1.1", "private network"),
            ("169.254.169.254", "link-local"),
            ("0.0.0.0", "unspecified"),
            ("0.1.2.3", "unspecified"),
            ("100.64.0.1", "shared address space"),
            ("100.127.255.255", "shared address space"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("240.0.0.1", "reserved"),
            ("192.0.2.10", "documentation"),
            ("198.18.0.1", "benchmarking"),
            ("192.0.0.8", "IETF protocol assignment"),
        ] {
            assert_eq!(kind(address), Some(expected), "{address}");
        }
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "172.15.255.255",
            "172.32.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "169.253.1.1",
            "192.169.0.1",
            "11.0.0.1",
            "223.255.255.255",
        ] {
            assert_eq!(kind(public), None, "{public}");
        }
    }

    #[test]
    fn classifies_ipv6_and_embedded_ipv4() {
        for (address, expected) in [
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fe80::1", "link-local"),
            ("febf::1", "link-local"),
            ("fc00::1", "unique-local"),
            ("fd12:3456::1", "unique-local"),
            ("ff02::1", "multicast"),
            ("fec0::1", "site-local"),
            ("2001:db8::1", "documentation"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "link-local"),
            ("::ffff:10.0.0.1", "private network"),
            ("::127.0.0.1", "loopback"),
            ("::192.168.0.1", "private network"),
            ("64:ff9b::a9fe:a9fe", "link-local"),
            ("2002:7f00:1::1", "loopback"),
            ("2002:c0a8:101::", "private network"),
        ] {
            assert_eq!(kind(address), Some(expected), "{address}");
        }
        for public in [
            "2606:4700:4700::1111",
            "2001:4860:4860::8888",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "fe00::1",
        ] {
            assert_eq!(kind(public), None, "{public}");
        }
    }

    #[test]
    fn the_provider_host_is_trusted_on_any_port() {
        let policy = EgressPolicy::new(&[]);
        assert_eq!(
            policy.route(&url("http://127.0.0.1:8080/a"), Some("127.0.0.1")),
            Ok(Route::Trusted)
        );
        assert_eq!(
            policy.route(&url("https://API.Example.com./x"), Some("api.example.com")),
            Ok(Route::Trusted)
        );
        assert_eq!(
            policy.route(&url("http://[::1]:9/"), Some("[::1]")),
            Ok(Route::Trusted)
        );
    }

    #[test]
    fn other_hosts_must_be_public_or_allowed() {
        let policy = EgressPolicy::new(&[]);
        let refused = policy
            .route(&url("http://127.0.0.2:8080/x?api_key=s"), Some("127.0.0.1"))
            .unwrap_err();
        assert_eq!(
            refused.to_string(),
            "request to 127.0.0.2 refused: it resolves to a private address (loopback); list the host in nango.allowed_hosts to allow it"
        );
        assert!(matches!(
            policy.route(&url("http://169.254.169.254/latest/meta-data"), None),
            Err(EgressError::Private {
                kind: "link-local",
                ..
            })
        ));
        assert!(matches!(
            policy.route(&url("http://[::ffff:10.0.0.1]/"), None),
            Err(EgressError::Private { host, .. }) if host == "::ffff:10.0.0.1"
        ));
        // The URL parser reads these forms as 127.0.0.1 before anything is decided.
        for sneaky in ["http://0x7f.1/", "http://2130706433/", "http://127.1/"] {
            assert!(
                matches!(
                    policy.route(&url(sneaky), None),
                    Err(EgressError::Private {
                        kind: "loopback",
                        ..
                    })
                ),
                "{sneaky}"
            );
        }
        assert_eq!(
            policy.route(&url("https://8.8.8.8/"), None),
            Ok(Route::PublicOnly)
        );
        // A name is checked when it is resolved.
        assert_eq!(
            policy.route(&url("https://other.example/"), Some("api.example")),
            Ok(Route::PublicOnly)
        );
        assert!(matches!(
            policy.route(&url("file:///etc/passwd"), None),
            Err(EgressError::Scheme { .. })
        ));
    }

    #[test]
    fn allowed_hosts_with_and_without_port() {
        let policy = EgressPolicy::new(&[
            "127.0.0.2".into(),
            "Internal.Example:8443".into(),
            "[fd00::5]:80".into(),
            "fe80::7".into(),
            "[fd00::6]".into(),
            ":80".into(),
            " ".into(),
            "bad:port".into(),
        ]);
        assert_eq!(
            policy.route(&url("http://127.0.0.2:1234/"), None),
            Ok(Route::Trusted)
        );
        assert_eq!(
            policy.route(&url("https://internal.example:8443/"), None),
            Ok(Route::Trusted)
        );
        // On another port the name is no longer listed, so it must resolve publicly.
        assert_eq!(
            policy.route(&url("https://internal.example/"), None),
            Ok(Route::PublicOnly)
        );
        assert_eq!(
            policy.route(&url("http://[fd00::5]/"), None),
            Ok(Route::Trusted)
        );
        assert!(policy.route(&url("http://[fd00::5]:81/"), None).is_err());
        assert_eq!(
            policy.route(&url("http://[fe80::7]:1/"), None),
            Ok(Route::Trusted)
        );
        assert_eq!(
            policy.route(&url("http://[fd00::6]:8/"), None),
            Ok(Route::Trusted)
        );
        assert!(policy.route(&url("http://127.0.0.3/"), None).is_err());
        assert_eq!(policy.allowed.len(), 5);
    }

    #[test]
    fn resolved_addresses_must_all_be_public() {
        let public: IpAddr = "93.184.215.14".parse().unwrap();
        let metadata: IpAddr = "169.254.169.254".parse().unwrap();
        assert_eq!(check_resolved("example.com", &[public]), Ok(()));
        assert_eq!(
            check_resolved("rebind.example", &[public, metadata])
                .unwrap_err()
                .to_string(),
            "request to rebind.example refused: it resolves to a private address (link-local); list the host in nango.allowed_hosts to allow it"
        );
        assert!(matches!(
            check_resolved("nothing.example", &[]),
            Err(EgressError::Unresolved { .. })
        ));
    }

    fn request(url: &str, method: &str) -> PreparedRequest {
        PreparedRequest {
            method: method.into(),
            url: url.into(),
            headers: vec![
                ("authorization".into(), "Bearer t".into()),
                ("x-api-key".into(), "secret".into()),
                ("cookie".into(), "s=1".into()),
                ("x-trace".into(), "t1".into()),
                ("content-type".into(), "application/json".into()),
            ],
            body: (method == "POST").then(|| "{}".into()),
            credential_headers: vec!["x-api-key".into()],
            credential_params: vec!["api_key".into()],
            trusted_host: Some("127.0.0.1".into()),
        }
    }

    fn header_names(request: &PreparedRequest) -> Vec<&str> {
        request.headers.iter().map(|(n, _)| n.as_str()).collect()
    }

    #[test]
    fn a_redirect_to_the_same_origin_keeps_everything() {
        let from = request("http://127.0.0.1:80/a?api_key=secret", "GET");
        let next = redirect(&from, 302, &url("http://127.0.0.1/b?api_key=secret&page=2"));
        assert_eq!(next.url, "http://127.0.0.1/b?api_key=secret&page=2");
        assert_eq!(header_names(&next), header_names(&from));
    }

    #[test]
    fn a_redirect_to_another_origin_drops_the_credentials() {
        let from = request("http://127.0.0.1:8080/a?api_key=secret", "GET");
        for target in [
            "http://127.0.0.2:8080/b?api_key=secret&page=2",
            "http://127.0.0.1:8081/b?api_key=secret&page=2",
            "https://127.0.0.1:8080/b?api_key=secret&page=2",
        ] {
            let next = redirect(&from, 307, &url(target));
            assert_eq!(header_names(&next), ["x-trace", "content-type"], "{target}");
            assert!(next.url.ends_with("/b?page=2"), "{}", next.url);
            assert!(next.credential_headers.is_empty());
            // Followed further, nothing is left to drop.
            let again = redirect(&next, 302, &url("http://127.0.0.3/c"));
            assert_eq!(header_names(&again), ["x-trace", "content-type"]);
        }
        let only_key = redirect(&from, 302, &url("http://127.0.0.2/b?api_key=secret"));
        assert_eq!(only_key.url, "http://127.0.0.2/b");
    }

    #[test]
    fn redirect_methods() {
        let post = request("http://127.0.0.1/a", "POST");
        let kept = redirect(&post, 307, &url("http://127.0.0.1/b"));
        assert_eq!(
            (kept.method.as_str(), kept.body.as_deref()),
            ("POST", Some("{}"))
        );
        for status in [301, 302, 303] {
            let get = redirect(&post, status, &url("http://127.0.0.1/b"));
            assert_eq!(
                (get.method.as_str(), get.body.as_deref()),
                ("GET", None),
                "{status}"
            );
            assert!(!header_names(&get).contains(&"content-type"));
        }
        let put = request("http://127.0.0.1/a", "PUT");
        assert_eq!(
            redirect(&put, 302, &url("http://127.0.0.1/b")).method,
            "PUT"
        );
    }
}
