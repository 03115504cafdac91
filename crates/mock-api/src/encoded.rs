//! Bodies that are not plain JSON: `GET /encoded/{gzip|deflate}` answers `{"encoded": "<encoding>", "items":
//! [1, 2, 3]}` compressed with that encoding (and the matching `Content-Encoding`), whatever the request's
//! `Accept-Encoding`; `GET /plain` answers `text/plain` text; `GET /bytes` answers the bytes 0 to 255 as
//! `application/octet-stream`.

use std::io::Write;

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The text `/plain` serves.
pub const PLAIN_TEXT: &str = "plain text, not JSON: {\"a\": 1}";

pub(crate) async fn encoded(Path(encoding): Path<String>) -> Response {
    let body = format!("{{\"encoded\": \"{encoding}\", \"items\": [1, 2, 3]}}");
    let compressed = match encoding.as_str() {
        "gzip" => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder
                .write_all(body.as_bytes())
                .and_then(|_| encoder.finish())
        }
        "deflate" => {
            let mut encoder =
                flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            encoder
                .write_all(body.as_bytes())
                .and_then(|_| encoder.finish())
        }
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    match compressed {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, "application/json".to_string()),
                (header::CONTENT_ENCODING, encoding),
            ],
            bytes,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

pub(crate) async fn plain() -> Response {
    ([(header::CONTENT_TYPE, "text/plain")], PLAIN_TEXT).into_response()
}

pub(crate) async fn bytes() -> Response {
    let body: Vec<u8> = (0..=255u8).collect();
    ([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response()
}
