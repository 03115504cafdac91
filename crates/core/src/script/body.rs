//! Response bodies as a proxy call's options ask for them: decompressed by their `Content-Encoding`
//! (`decompress`, on by default as with axios in Node), and the data a script sees (`responseType`).

use std::io::Read;

use super::http::HttpResponse;

/// How a proxy call wants its response data (axios' `responseType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseType {
    /// JSON parsed when it looks like JSON, else text (axios' default and `json`).
    Json,
    /// Always the text.
    Text,
    /// The bytes (`arraybuffer`, `blob`).
    Bytes,
    /// The bytes, handed to the script as an async iterable of chunks (`stream`).
    Stream,
}

impl ResponseType {
    /// The type named by a call's `responseType` (an unknown or missing name is the default).
    pub fn parse(name: Option<&str>) -> ResponseType {
        match name {
            Some("text" | "document") => ResponseType::Text,
            Some("arraybuffer" | "blob") => ResponseType::Bytes,
            Some("stream") => ResponseType::Stream,
            _ => ResponseType::Json,
        }
    }
}

/// Decodes `response`'s body when its `Content-Encoding` is gzip, x-gzip, deflate or br, and drops that
/// header and `Content-Length` (they described the encoded body). Other encodings are left as they are.
/// The decoded body is held to `limit` bytes, so a small compressed body cannot expand past
/// `nango.max_response_size`.
pub fn decompress(response: &mut HttpResponse, limit: usize) -> Result<(), String> {
    let Some(encoding) = response
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-encoding"))
        .map(|(_, value)| value.trim().to_ascii_lowercase())
    else {
        return Ok(());
    };
    if response.body.is_empty() {
        return Ok(());
    }
    let body = std::mem::take(&mut response.body);
    let decoded = match encoding.as_str() {
        "gzip" | "x-gzip" => read_bounded(flate2::read::MultiGzDecoder::new(&body[..]), limit),
        // "deflate" is meant to be zlib-wrapped, but some servers send a raw deflate stream.
        "deflate" => read_bounded(flate2::read::ZlibDecoder::new(&body[..]), limit)
            .or_else(|_| read_bounded(flate2::read::DeflateDecoder::new(&body[..]), limit)),
        "br" => read_bounded(
            brotli_decompressor::Decompressor::new(&body[..], 4096),
            limit,
        ),
        _ => {
            response.body = body;
            return Ok(());
        }
    };
    response.body = decoded.map_err(|e| match e {
        Decode::TooLarge => format!(
            "the decompressed response is larger than nango.max_response_size ({limit} bytes)"
        ),
        Decode::Invalid(e) => format!("could not decompress the {encoding} response: {e}"),
    })?;
    response.headers.retain(|(name, _)| {
        !name.eq_ignore_ascii_case("content-encoding")
            && !name.eq_ignore_ascii_case("content-length")
    });
    Ok(())
}

enum Decode {
    TooLarge,
    Invalid(std::io::Error),
}

/// Reads `reader` whole, failing as soon as more than `limit` bytes come out.
fn read_bounded(reader: impl Read, limit: usize) -> Result<Vec<u8>, Decode> {
    let mut out = Vec::new();
    let read = reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(Decode::Invalid)?;
    if read > limit {
        return Err(Decode::TooLarge);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn response(encoding: &str, body: Vec<u8>) -> HttpResponse {
        HttpResponse {
            status: 200,
            headers: vec![
                ("content-encoding".into(), encoding.into()),
                ("content-length".into(), body.len().to_string()),
                ("content-type".into(), "application/json".into()),
            ],
            body,
        }
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn gzip_and_deflate_bodies_are_decoded_and_their_headers_dropped() {
        let mut r = response("gzip", gzip(b"{\"a\":1}"));
        decompress(&mut r, 1000).unwrap();
        assert_eq!(r.body, b"{\"a\":1}");
        assert_eq!(
            r.headers,
            vec![("content-type".to_string(), "application/json".to_string())]
        );

        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        zlib.write_all(b"zlib").unwrap();
        let mut r = response("deflate", zlib.finish().unwrap());
        decompress(&mut r, 1000).unwrap();
        assert_eq!(r.body, b"zlib");

        let mut raw =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        raw.write_all(b"raw").unwrap();
        let mut r = response("deflate", raw.finish().unwrap());
        decompress(&mut r, 1000).unwrap();
        assert_eq!(r.body, b"raw");
    }

    #[test]
    fn brotli_is_decoded() {
        // "hello" compressed with brotli (quality 11).
        let compressed = [0x0b, 0x02, 0x80, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x03];
        let mut r = response("br", compressed.to_vec());
        decompress(&mut r, 1000).unwrap();
        assert_eq!(r.body, b"hello");
    }

    #[test]
    fn a_body_expanding_past_the_limit_is_refused() {
        let mut r = response("gzip", gzip(&vec![b'a'; 100_000]));
        let error = decompress(&mut r, 1000).unwrap_err();
        assert!(
            error.contains("larger than nango.max_response_size"),
            "{error}"
        );
        let mut r = response("gzip", gzip(&vec![b'a'; 1000]));
        decompress(&mut r, 1000).unwrap();
        assert_eq!(r.body.len(), 1000);
    }

    #[test]
    fn unknown_or_absent_encodings_are_left_alone_and_garbage_is_an_error() {
        let mut r = response("zstd", b"abc".to_vec());
        decompress(&mut r, 1000).unwrap();
        assert_eq!(r.body, b"abc");
        assert_eq!(r.headers.len(), 3);
        let mut r = HttpResponse {
            status: 200,
            headers: vec![],
            body: b"plain".to_vec(),
        };
        decompress(&mut r, 1000).unwrap();
        assert_eq!(r.body, b"plain");
        let mut r = response("gzip", b"not gzip".to_vec());
        assert!(
            decompress(&mut r, 1000)
                .unwrap_err()
                .contains("could not decompress the gzip response")
        );
    }

    #[test]
    fn response_types_are_named_as_axios_names_them() {
        assert_eq!(ResponseType::parse(None), ResponseType::Json);
        assert_eq!(ResponseType::parse(Some("json")), ResponseType::Json);
        assert_eq!(ResponseType::parse(Some("text")), ResponseType::Text);
        assert_eq!(
            ResponseType::parse(Some("arraybuffer")),
            ResponseType::Bytes
        );
        assert_eq!(ResponseType::parse(Some("stream")), ResponseType::Stream);
    }
}
