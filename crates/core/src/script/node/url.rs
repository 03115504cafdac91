//! WHATWG URL parsing and the `application/x-www-form-urlencoded` format for `URL` and `URLSearchParams`,
//! through the `url` crate (which implements the WHATWG URL standard). A URL crosses to JavaScript as the
//! array of its components (see [`components`]); the JavaScript object keeps that array.

use rquickjs::{Ctx, Exception, Function, Object, Result};
use url::{Url, form_urlencoded, quirks};

/// The components of `url`: href, origin, protocol, username, password, host, hostname, port, pathname,
/// search, hash.
pub fn components(url: &Url) -> Vec<String> {
    vec![
        quirks::href(url).to_string(),
        quirks::origin(url),
        quirks::protocol(url).to_string(),
        quirks::username(url).to_string(),
        quirks::password(url).to_string(),
        quirks::host(url).to_string(),
        quirks::hostname(url).to_string(),
        quirks::port(url).to_string(),
        quirks::pathname(url).to_string(),
        quirks::search(url).to_string(),
        quirks::hash(url).to_string(),
    ]
}

/// Parses `input` against `base` as `new URL(input, base)` does.
pub fn parse(input: &str, base: Option<&str>) -> Option<Url> {
    match base {
        Some(base) => Url::parse(base).ok()?.join(input).ok(),
        None => Url::parse(input).ok(),
    }
}

/// Applies the setter of `component` to `url`. Invalid values are ignored, as the standard says, except for
/// `href`, which fails.
pub fn set(url: &mut Url, component: &str, value: &str) -> std::result::Result<(), ()> {
    match component {
        "href" => return quirks::set_href(url, value).map_err(|_| ()),
        "protocol" => drop(quirks::set_protocol(url, value)),
        "username" => drop(quirks::set_username(url, value)),
        "password" => drop(quirks::set_password(url, value)),
        "host" => drop(quirks::set_host(url, value)),
        "hostname" => drop(quirks::set_hostname(url, value)),
        "port" => drop(quirks::set_port(url, value)),
        "pathname" => quirks::set_pathname(url, value),
        "search" => quirks::set_search(url, value),
        "hash" => quirks::set_hash(url, value),
        _ => {}
    }
    Ok(())
}

/// Registers `urlParse`, `urlSet`, `formParse` and `formSerialize` on `native`.
pub(super) fn register<'js>(ctx: &Ctx<'js>, native: &Object<'js>) -> Result<()> {
    native.set(
        "urlParse",
        Function::new(ctx.clone(), |input: String, base: Option<String>| {
            parse(&input, base.as_deref()).map(|url| components(&url))
        })?,
    )?;
    native.set(
        "urlSet",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>,
             href: String,
             component: String,
             value: String|
             -> Result<Option<Vec<String>>> {
                let mut url =
                    Url::parse(&href).map_err(|_| Exception::throw_type(&ctx, "Invalid URL"))?;
                match set(&mut url, &component, &value) {
                    Ok(()) => Ok(Some(components(&url))),
                    Err(()) => Ok(None),
                }
            },
        )?,
    )?;
    native.set(
        "formParse",
        Function::new(ctx.clone(), |query: String| -> Vec<String> {
            form_urlencoded::parse(query.as_bytes())
                .flat_map(|(name, value)| [name.into_owned(), value.into_owned()])
                .collect()
        })?,
    )?;
    native.set(
        "formSerialize",
        Function::new(ctx.clone(), |flat: Vec<String>| -> String {
            let mut serializer = form_urlencoded::Serializer::new(String::new());
            for pair in flat.chunks_exact(2) {
                serializer.append_pair(&pair[0], &pair[1]);
            }
            serializer.finish()
        })?,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_sets_like_whatwg() {
        let url = parse("../b?x=1#h", Some("https://user:pw@Example.COM:8443/a/c")).unwrap();
        assert_eq!(
            components(&url),
            vec![
                "https://user:pw@example.com:8443/b?x=1#h",
                "https://example.com:8443",
                "https:",
                "user",
                "pw",
                "example.com:8443",
                "example.com",
                "8443",
                "/b",
                "?x=1",
                "#h"
            ]
        );
        assert!(parse("not a url", None).is_none());
        let mut url = parse("http://a.test:80/p", None).unwrap();
        assert_eq!(quirks::port(&url), "");
        set(&mut url, "port", "8080").unwrap();
        set(&mut url, "search", "q=a b").unwrap();
        set(&mut url, "port", "nonsense").unwrap();
        assert_eq!(url.as_str(), "http://a.test:8080/p?q=a%20b");
        assert!(set(&mut url, "href", "::").is_err());
    }
}
