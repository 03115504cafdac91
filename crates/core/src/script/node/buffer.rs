//! Byte encodings for `Buffer`, `TextEncoder`/`TextDecoder`: the conversions between JavaScript strings and
//! bytes, done here rather than in JavaScript loops. The JavaScript side has already checked the argument
//! types and normalized the encoding name (`utf8`, `utf16le`, `latin1`, `ascii`, `hex`, `base64`,
//! `base64url`); an unknown name is still refused here.

use base64::Engine;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{
    GeneralPurpose, GeneralPurposeConfig, STANDARD, URL_SAFE_NO_PAD,
};
use rquickjs::{Ctx, Exception, Function, Object, Result, TypedArray};

use super::{bytes_of, new_bytes};

/// Node's base64 decoder accepts both alphabets, with or without padding and with stray bits.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Registers `encode`, `decode`, `decodeUtf8`, `byteLength` and `compare` on `native`.
pub(super) fn register<'js>(ctx: &Ctx<'js>, native: &Object<'js>) -> Result<()> {
    native.set(
        "encode",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, text: String, encoding: String| {
                let bytes = encode(&text, &encoding).ok_or_else(|| unknown(&ctx, &encoding))?;
                new_bytes(&ctx, bytes)
            },
        )?,
    )?;
    native.set(
        "decode",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, bytes: TypedArray<'js, u8>, encoding: String| {
                // SAFETY: no JavaScript runs while the slice is alive.
                let text = decode(unsafe { bytes_of(&bytes) }, &encoding);
                text.ok_or_else(|| unknown(&ctx, &encoding))
            },
        )?,
    )?;
    native.set(
        "decodeUtf8",
        Function::new(ctx.clone(), |bytes: TypedArray<'js, u8>, fatal: bool| {
            // SAFETY: no JavaScript runs while the slice is alive.
            let bytes = unsafe { bytes_of(&bytes) };
            if fatal {
                std::str::from_utf8(bytes).ok().map(str::to_string)
            } else {
                Some(String::from_utf8_lossy(bytes).into_owned())
            }
        })?,
    )?;
    native.set(
        "byteLength",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, text: String, encoding: String| {
                byte_length(&text, &encoding).ok_or_else(|| unknown(&ctx, &encoding))
            },
        )?,
    )?;
    native.set(
        "compare",
        Function::new(
            ctx.clone(),
            |a: TypedArray<'js, u8>, b: TypedArray<'js, u8>| -> i32 {
                // SAFETY: no JavaScript runs while the slices are alive.
                let (a, b) = unsafe { (bytes_of(&a), bytes_of(&b)) };
                a.cmp(b) as i32
            },
        )?,
    )?;
    Ok(())
}

fn unknown(ctx: &Ctx<'_>, encoding: &str) -> rquickjs::Error {
    Exception::throw_type(ctx, &format!("Unknown encoding: {encoding}"))
}

/// The bytes of `text` in `encoding`, as `Buffer.from(text, encoding)` gives them.
pub fn encode(text: &str, encoding: &str) -> Option<Vec<u8>> {
    Some(match encoding {
        "utf8" => text.as_bytes().to_vec(),
        // Node keeps the low byte of each UTF-16 unit for both.
        "latin1" | "ascii" => text.encode_utf16().map(|unit| unit as u8).collect(),
        "utf16le" => text.encode_utf16().flat_map(u16::to_le_bytes).collect(),
        "hex" => decode_hex(text),
        "base64" | "base64url" => decode_base64(text),
        _ => return None,
    })
}

/// `bytes` as text in `encoding`, as `buffer.toString(encoding)` gives it.
pub fn decode(bytes: &[u8], encoding: &str) -> Option<String> {
    Some(match encoding {
        "utf8" => String::from_utf8_lossy(bytes).into_owned(),
        "latin1" => bytes.iter().map(|&b| char::from(b)).collect(),
        "ascii" => bytes.iter().map(|&b| char::from(b & 0x7f)).collect(),
        "utf16le" => {
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        "hex" => encode_hex(bytes),
        "base64" => STANDARD.encode(bytes),
        "base64url" => URL_SAFE_NO_PAD.encode(bytes),
        _ => return None,
    })
}

/// The length of [`encode`]'s result, without building it where that is cheap.
fn byte_length(text: &str, encoding: &str) -> Option<usize> {
    Some(match encoding {
        "utf8" => text.len(),
        "latin1" | "ascii" => text.encode_utf16().count(),
        "utf16le" => text.encode_utf16().count() * 2,
        _ => encode(text, encoding)?.len(),
    })
}

const HEX: &[u8; 16] = b"0123456789abcdef";

pub fn encode_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for &byte in bytes {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 15)]));
    }
    out
}

/// Pairs of hex digits up to the first pair that is not one (Node stops there; an odd digit is dropped).
fn decode_hex(text: &str) -> Vec<u8> {
    let digit = |b: u8| char::from(b).to_digit(16).map(|d| d as u8);
    text.as_bytes()
        .chunks_exact(2)
        .map_while(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

/// Node's forgiving base64: either alphabet, characters outside it skipped, the data ending at the first `=`,
/// a dangling sixth of a byte ignored.
fn decode_base64(text: &str) -> Vec<u8> {
    let mut clean: Vec<u8> = Vec::with_capacity(text.len());
    for &byte in text.as_bytes() {
        match byte {
            b'=' => break,
            b'-' => clean.push(b'+'),
            b'_' => clean.push(b'/'),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' => clean.push(byte),
            _ => {}
        }
    }
    if clean.len() % 4 == 1 {
        clean.pop();
    }
    LENIENT.decode(&clean).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_round_trip_like_node() {
        assert_eq!(decode(b"hello", "base64").unwrap(), "aGVsbG8=");
        assert_eq!(decode(&[0xfb, 0xff], "base64url").unwrap(), "-_8");
        assert_eq!(encode("-_8", "base64").unwrap(), vec![0xfb, 0xff]);
        assert_eq!(encode("aGVs bG8=trailing", "base64").unwrap(), b"hello");
        assert_eq!(encode("aGVsbG8", "base64url").unwrap(), b"hello");
        assert_eq!(encode("abzz", "hex").unwrap(), vec![0xab]);
        assert_eq!(encode("abc", "hex").unwrap(), vec![0xab]);
        assert_eq!(decode(&[0xde, 0xad], "hex").unwrap(), "dead");
        assert_eq!(encode("é€", "latin1").unwrap(), vec![0xe9, 0xac]);
        assert_eq!(decode(&[0xe9], "latin1").unwrap(), "é");
        assert_eq!(encode("hé", "utf16le").unwrap(), vec![b'h', 0, 0xe9, 0]);
        assert_eq!(decode(&[0xff, b'a'], "utf8").unwrap(), "\u{fffd}a");
        assert_eq!(byte_length("héllo", "utf8"), Some(6));
        assert_eq!(encode("x", "klingon"), None);
    }
}
