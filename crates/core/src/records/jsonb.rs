//! A record's JSON text as a Postgres `jsonb` value, built here, off the database's thread.
//!
//! Postgres turning a batch's texts into `jsonb` is about a fifth of what writing the batch costs, and it
//! runs on the one thread that talks to the database. The record's thread builds the same bytes while
//! the previous batch is written, and the store passes them as `jsonb` values.
//!
//! The bytes are exactly those of Postgres' `jsonb_in` (PostgreSQL 13 to 17, whose on-disk format is
//! the same): containers and `JEntry` offsets as `convertToJsonb` lays them out (`jsonb_util.c`), object
//! keys sorted by length then bytes with the last of duplicate keys kept (`uniqueifyJsonbObject`),
//! numbers as `numeric_in` stores them (`set_var_from_str`, `make_result` in `numeric.c`), and strings
//! unescaped as the JSON lexer does in a UTF-8 database.
//!
//! Anything this does not build exactly as Postgres would, or that Postgres would refuse, gets `None`,
//! and the record goes to Postgres as text, to be parsed there or refused in Postgres' words: a
//! `\u0000` or a lone surrogate escape, nesting deeper than [`MAX_DEPTH`], a number with more than
//! [`MAX_NUMBER_DIGITS`] digits or so large an exponent, text that is not JSON, a text longer than
//! [`MAX_TEXT`], or a machine that is not little-endian. The size limit keeps this far inside Postgres'
//! own limits (it refuses an array of more than 2^24 elements, an object of more than 2^23 pairs before
//! duplicates are dropped, a string of more than 2^28 bytes), and bounds the tree built here, which
//! takes tens of times the text's size.

use std::borrow::Cow;

/// The deepest nesting built here; deeper records go as text.
pub const MAX_DEPTH: usize = 64;
/// The most digits, and the largest exponent, of a number built here; others go as text.
pub const MAX_NUMBER_DIGITS: usize = 1000;
/// The longest JSON text built here, in bytes; longer records go as text.
pub const MAX_TEXT: usize = 256 * 1024;

// jsonb.h
const JENTRY_OFFLENMASK: u32 = 0x0FFF_FFFF;
const JENTRY_TYPEMASK: u32 = 0x7000_0000;
const JENTRY_HAS_OFF: u32 = 0x8000_0000;
const JENTRY_ISSTRING: u32 = 0x0000_0000;
const JENTRY_ISNUMERIC: u32 = 0x1000_0000;
const JENTRY_ISBOOL_FALSE: u32 = 0x2000_0000;
const JENTRY_ISBOOL_TRUE: u32 = 0x3000_0000;
const JENTRY_ISNULL: u32 = 0x4000_0000;
const JENTRY_ISCONTAINER: u32 = 0x5000_0000;
const JB_OFFSET_STRIDE: usize = 32;
const JB_FSCALAR: u32 = 0x1000_0000;
const JB_FOBJECT: u32 = 0x2000_0000;
const JB_FARRAY: u32 = 0x4000_0000;

/// The `jsonb` value of `json`, varlena header included; `None` when it is left to Postgres (see the
/// module's documentation).
pub fn encode(json: &str) -> Option<Vec<u8>> {
    if cfg!(target_endian = "big") || json.len() > MAX_TEXT {
        return None;
    }
    let mut parser = Parser {
        text: json.as_bytes(),
        at: 0,
    };
    let root = parser.document()?;
    let mut out = Vec::with_capacity(json.len() + json.len() / 4 + 16);
    out.extend_from_slice(&[0; 4]);
    match root {
        // A scalar document is a one-element array marked as a raw scalar.
        Node::Array(_) | Node::Object(_) => convert(&mut out, &root)?,
        scalar => array(&mut out, std::slice::from_ref(&scalar), JB_FSCALAR)?,
    };
    let header = (out.len() as u32) << 2;
    out[..4].copy_from_slice(&header.to_le_bytes());
    Some(out)
}

/// A parsed JSON value; a number is kept as its `numeric` bytes.
enum Node<'a> {
    Null,
    Bool(bool),
    String(Cow<'a, str>),
    Number(Vec<u8>),
    Array(Vec<Node<'a>>),
    Object(Vec<(Cow<'a, str>, Node<'a>)>),
}

struct Parser<'a> {
    text: &'a [u8],
    at: usize,
}

impl<'a> Parser<'a> {
    fn document(&mut self) -> Option<Node<'a>> {
        let root = self.value(0)?;
        self.skip_whitespace();
        (self.at == self.text.len()).then_some(root)
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        self.skip_whitespace();
        let found = self.peek() == Some(byte);
        self.at += usize::from(found);
        found
    }

    fn literal(&mut self, word: &[u8], node: Node<'a>) -> Option<Node<'a>> {
        let found = self.text[self.at..].starts_with(word);
        self.at += word.len();
        found.then_some(node)
    }

    fn value(&mut self, depth: usize) -> Option<Node<'a>> {
        self.skip_whitespace();
        match self.peek()? {
            b'{' if depth < MAX_DEPTH => {
                self.at += 1;
                let mut pairs = Vec::new();
                if !self.eat(b'}') {
                    loop {
                        self.skip_whitespace();
                        let key = self.string()?;
                        if !self.eat(b':') {
                            return None;
                        }
                        pairs.push((key, self.value(depth + 1)?));
                        if self.eat(b'}') {
                            break;
                        }
                        if !self.eat(b',') {
                            return None;
                        }
                    }
                }
                Some(Node::Object(unique_sorted(pairs)))
            }
            b'[' if depth < MAX_DEPTH => {
                self.at += 1;
                let mut elements = Vec::new();
                if !self.eat(b']') {
                    loop {
                        elements.push(self.value(depth + 1)?);
                        if self.eat(b']') {
                            break;
                        }
                        if !self.eat(b',') {
                            return None;
                        }
                    }
                }
                Some(Node::Array(elements))
            }
            b'"' => self.string().map(Node::String),
            b't' => self.literal(b"true", Node::Bool(true)),
            b'f' => self.literal(b"false", Node::Bool(false)),
            b'n' => self.literal(b"null", Node::Null),
            b'-' | b'0'..=b'9' => self.number().map(Node::Number),
            _ => None,
        }
    }

    /// A string at the cursor, unescaped.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        if self.peek() != Some(b'"') {
            return None;
        }
        self.at += 1;
        let start = self.at;
        // Plain text is borrowed; the first escape switches to an owned copy.
        loop {
            match *self.text.get(self.at)? {
                b'"' => {
                    let plain = std::str::from_utf8(&self.text[start..self.at]).ok()?;
                    self.at += 1;
                    return Some(Cow::Borrowed(plain));
                }
                b'\\' => break,
                0..0x20 => return None,
                _ => self.at += 1,
            }
        }
        let mut owned = std::str::from_utf8(&self.text[start..self.at])
            .ok()?
            .to_string();
        loop {
            let run = self.at;
            while !matches!(*self.text.get(self.at)?, b'"' | b'\\' | 0..0x20) {
                self.at += 1;
            }
            owned.push_str(std::str::from_utf8(&self.text[run..self.at]).ok()?);
            match self.text[self.at] {
                b'"' => {
                    self.at += 1;
                    return Some(Cow::Owned(owned));
                }
                b'\\' => {
                    self.at += 1;
                    owned.push(self.escape()?);
                }
                _ => return None,
            }
        }
    }

    /// The character of the escape after a backslash. Postgres refuses `\u0000` and lone surrogates.
    fn escape(&mut self) -> Option<char> {
        let byte = *self.text.get(self.at)?;
        self.at += 1;
        Some(match byte {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let unit = self.hex4()?;
                match unit {
                    0 | 0xDC00..=0xDFFF => return None,
                    0xD800..=0xDBFF => {
                        if !self.text[self.at..].starts_with(b"\\u") {
                            return None;
                        }
                        self.at += 2;
                        let low = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return None;
                        }
                        char::from_u32(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))?
                    }
                    _ => char::from_u32(unit)?,
                }
            }
            _ => return None,
        })
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.text.get(self.at..self.at + 4)?;
        self.at += 4;
        let digits = std::str::from_utf8(digits).ok()?;
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(digits, 16).ok()
    }

    /// A number at the cursor (JSON's grammar, as Postgres' lexer checks it), as `numeric` bytes.
    fn number(&mut self) -> Option<Vec<u8>> {
        let start = self.at;
        let digits = |parser: &mut Self| {
            let from = parser.at;
            while matches!(parser.peek(), Some(b'0'..=b'9')) {
                parser.at += 1;
            }
            parser.at - from
        };
        self.at += usize::from(self.peek() == Some(b'-'));
        match self.peek()? {
            b'0' => self.at += 1,
            b'1'..=b'9' => {
                digits(self);
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if digits(self) == 0 {
                return None;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if digits(self) == 0 {
                return None;
            }
        }
        // Postgres' lexer takes a number to end at a delimiter; `1x` is one bad token, not two.
        if matches!(self.peek(), Some(b) if b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80) {
            return None;
        }
        numeric(&self.text[start..self.at])
    }
}

/// An object's pairs as `jsonb` keeps them: sorted by key length, then key bytes, and of pairs with the
/// same key only the last.
fn unique_sorted<'a>(mut pairs: Vec<(Cow<'a, str>, Node<'a>)>) -> Vec<(Cow<'a, str>, Node<'a>)> {
    // A stable sort keeps pairs with the same key in their order, so the last of each run wins.
    pairs.sort_by(|(a, _), (b, _)| {
        a.len()
            .cmp(&b.len())
            .then_with(|| a.as_bytes().cmp(b.as_bytes()))
    });
    let mut unique: Vec<(Cow<'a, str>, Node<'a>)> = Vec::with_capacity(pairs.len());
    for pair in pairs {
        match unique.last_mut() {
            Some(last) if last.0 == pair.0 => *last = pair,
            _ => unique.push(pair),
        }
    }
    unique
}

/// A JSON number (checked against JSON's grammar) as Postgres' `numeric_in` stores it: base-10000
/// digits without leading or trailing zeros, the weight of the first, and the display scale, in the
/// short header when they fit it. `None` past [`MAX_NUMBER_DIGITS`].
fn numeric(token: &[u8]) -> Option<Vec<u8>> {
    const DEC_DIGITS: i64 = 4;
    let negative = token.first() == Some(&b'-');
    let mut rest = &token[usize::from(negative)..];
    // Decimal digits, after DEC_DIGITS zeros of padding for the alignment below.
    let mut decimal: Vec<u8> = vec![0; DEC_DIGITS as usize];
    let (mut weight10, mut scale) = (-1i64, 0i64);
    let mut after_point = false;
    while let Some((&byte, tail)) = rest.split_first() {
        match byte {
            b'0'..=b'9' => {
                decimal.push(byte - b'0');
                if after_point {
                    scale += 1;
                } else {
                    weight10 += 1;
                }
            }
            b'.' => after_point = true,
            _ => break,
        }
        rest = tail;
    }
    let count = decimal.len() as i64 - DEC_DIGITS;
    if count as usize > MAX_NUMBER_DIGITS {
        return None;
    }
    decimal.extend_from_slice(&[0; DEC_DIGITS as usize - 1]);
    if let Some((_, exponent)) = rest.split_first() {
        let exponent: i64 = std::str::from_utf8(exponent).ok()?.parse().ok()?;
        if exponent.unsigned_abs() as usize > MAX_NUMBER_DIGITS {
            return None;
        }
        weight10 += exponent;
        scale = (scale - exponent).max(0);
    }
    // To base 10000: `offset` zeros before the first digit align it to a base-10000 digit.
    let mut weight = if weight10 >= 0 {
        (weight10 + DEC_DIGITS) / DEC_DIGITS - 1
    } else {
        -((-weight10 - 1) / DEC_DIGITS + 1)
    };
    let offset = (weight + 1) * DEC_DIGITS - (weight10 + 1);
    let groups = (count + offset + DEC_DIGITS - 1) / DEC_DIGITS;
    let first = (DEC_DIGITS - offset) as usize;
    let mut digits: Vec<i16> = (0..groups as usize)
        .map(|g| {
            let d = &decimal[first + 4 * g..first + 4 * g + 4];
            ((i16::from(d[0]) * 10 + i16::from(d[1])) * 10 + i16::from(d[2])) * 10 + i16::from(d[3])
        })
        .collect();
    let leading = digits.iter().take_while(|&&d| d == 0).count();
    digits.drain(..leading);
    weight -= leading as i64;
    while digits.last() == Some(&0) {
        digits.pop();
    }
    let negative = negative && !digits.is_empty();
    if digits.is_empty() {
        weight = 0;
    }
    let mut out = Vec::with_capacity(8 + 2 * digits.len());
    out.extend_from_slice(&[0; 4]);
    if scale <= 63 && (-64..=63).contains(&weight) {
        let header = 0x8000u16
            | if negative { 0x2000 } else { 0 }
            | ((scale as u16) << 7)
            | if weight < 0 { 0x0040 } else { 0 }
            | (weight as u16 & 0x003F);
        out.extend_from_slice(&header.to_ne_bytes());
    } else {
        let sign_scale = if negative { 0x4000u16 } else { 0 } | (scale as u16 & 0x3FFF);
        out.extend_from_slice(&sign_scale.to_ne_bytes());
        out.extend_from_slice(&(weight as i16).to_ne_bytes());
    }
    for digit in digits {
        out.extend_from_slice(&digit.to_ne_bytes());
    }
    let header = (out.len() as u32) << 2;
    out[..4].copy_from_slice(&header.to_le_bytes());
    Some(out)
}

/// Appends zeros up to a multiple of four bytes from the start of the value; returns how many.
fn pad(out: &mut Vec<u8>) -> usize {
    let padding = (4 - out.len() % 4) % 4;
    out.resize(out.len() + padding, 0);
    padding
}

/// Appends `node`'s data and returns its `JEntry` (`convertJsonbValue`).
fn convert(out: &mut Vec<u8>, node: &Node) -> Option<u32> {
    let length = |n: usize| u32::try_from(n).ok().filter(|&n| n <= JENTRY_OFFLENMASK);
    match node {
        Node::Null => Some(JENTRY_ISNULL),
        Node::Bool(false) => Some(JENTRY_ISBOOL_FALSE),
        Node::Bool(true) => Some(JENTRY_ISBOOL_TRUE),
        Node::String(text) => {
            out.extend_from_slice(text.as_bytes());
            Some(JENTRY_ISSTRING | length(text.len())?)
        }
        Node::Number(numeric) => {
            let padding = pad(out);
            out.extend_from_slice(numeric);
            Some(JENTRY_ISNUMERIC | length(padding + numeric.len())?)
        }
        Node::Array(elements) => array(out, elements, 0),
        Node::Object(pairs) => object(out, pairs),
    }
}

/// Appends a container's header, its `JEntry`s and its children's data; returns its own `JEntry`. Every
/// `JB_OFFSET_STRIDE`th child's entry holds the end offset of its data rather than its length.
fn container<'n, 'a: 'n>(
    out: &mut Vec<u8>,
    flags: u32,
    count: usize,
    children: impl ExactSizeIterator<Item = ChildRef<'n, 'a>>,
) -> Option<u32> {
    let start = out.len();
    pad(out);
    // A count fits its 28 bits: a text of at most MAX_TEXT bytes has fewer children than that.
    out.extend_from_slice(&(count as u32 | flags).to_ne_bytes());
    let mut entry_at = out.len();
    out.resize(entry_at + 4 * children.len(), 0);
    let mut total = 0u32;
    for (i, child) in children.enumerate() {
        let entry = match child {
            ChildRef::Key(key) => convert_key(out, key)?,
            ChildRef::Value(node) => convert(out, node)?,
        };
        total = total.checked_add(entry & JENTRY_OFFLENMASK)?;
        if total > JENTRY_OFFLENMASK {
            return None;
        }
        let entry = if i % JB_OFFSET_STRIDE == 0 {
            (entry & JENTRY_TYPEMASK) | total | JENTRY_HAS_OFF
        } else {
            entry
        };
        out[entry_at..entry_at + 4].copy_from_slice(&entry.to_ne_bytes());
        entry_at += 4;
    }
    let length = u32::try_from(out.len() - start)
        .ok()
        .filter(|&n| n <= JENTRY_OFFLENMASK)?;
    Some(JENTRY_ISCONTAINER | length)
}

/// A child of a container: an object's key, or a value.
enum ChildRef<'n, 'a> {
    Key(&'n str),
    Value(&'n Node<'a>),
}

fn convert_key(out: &mut Vec<u8>, key: &str) -> Option<u32> {
    out.extend_from_slice(key.as_bytes());
    u32::try_from(key.len())
        .ok()
        .filter(|&n| n <= JENTRY_OFFLENMASK)
}

fn array(out: &mut Vec<u8>, elements: &[Node], flags: u32) -> Option<u32> {
    container(
        out,
        JB_FARRAY | flags,
        elements.len(),
        elements.iter().map(ChildRef::Value),
    )
}

/// An object's keys come first, then its values in the same order.
fn object(out: &mut Vec<u8>, pairs: &[(Cow<str>, Node)]) -> Option<u32> {
    let keys = pairs.iter().map(|(key, _)| ChildRef::Key(key));
    let values = pairs.iter().map(|(_, value)| ChildRef::Value(value));
    let children: Vec<ChildRef> = keys.chain(values).collect();
    container(out, JB_FOBJECT, pairs.len(), children.into_iter())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes after the varlena header.
    fn built(json: &str) -> String {
        let bytes = encode(json).unwrap_or_else(|| panic!("{json} was not built"));
        assert_eq!(
            u32::from_le_bytes(bytes[..4].try_into().unwrap()) >> 2,
            bytes.len() as u32
        );
        hex::encode(&bytes[4..])
    }

    #[test]
    fn documents_are_built_as_postgres_stores_them() {
        // As PostgreSQL 15 stores each text cast to jsonb (read back with pageinspect).
        let cases = [
            (r#"{"id":"1"}"#, "010000200200008001000000696431"),
            ("{}", "00000020"),
            ("1", "01000050080000902000000000800100"),
            ("-0", "0100005006000090180000000080"),
            ("0.5", "010000500800009020000000ff808813"),
            (
                "1.7976931348623157e+308",
                "01000050120000904800000000004d000100281f6124fe12550c",
            ),
            (
                "123456789012345678901234567890",
                "01000050160000905800000007800c00800dd21ed2042e163423800dd21e",
            ),
            // The last of duplicate keys is kept.
            (
                r#"{"a":1,"a":2}"#,
                "01000020010000800b000010610000002000000000800200",
            ),
            // Keys by length, then bytes; values padded to four bytes before numbers and containers.
            (
                r#"{"b":1,"a":2,"aa":3,"a":[1,2,{"z":null,"y":true}]}"#,
                "03000020010000800100000002000000360000500a000010080000106162616103000040080000900800001016000050200000000080010020000000008002000200002001000080010000000000003000000040797a000020000000008001002000000000800300",
            ),
        ];
        for (json, expected) in cases {
            assert_eq!(built(json), expected, "{json}");
        }
    }

    #[test]
    fn every_thirty_second_entry_holds_an_offset() {
        let array: Vec<String> = (0..70).map(|n| format!("\"{n}\"")).collect();
        let bytes = encode(&format!("[{}]", array.join(","))).unwrap();
        let entry = |i: usize| u32::from_ne_bytes(bytes[8 + 4 * i..12 + 4 * i].try_into().unwrap());
        // Entry 0 ends at 1 byte ("0"); entry 32 at 10 one-digit and 23 two-digit strings.
        assert_eq!(entry(0), JENTRY_HAS_OFF | 1);
        assert_eq!(entry(1), 1);
        assert_eq!(entry(32), JENTRY_HAS_OFF | (10 + 23 * 2));
        assert_eq!(entry(33), 2);
    }

    #[test]
    fn what_postgres_refuses_or_this_does_not_build_is_left_to_postgres() {
        for json in [
            r#"{"k":"\u0000"}"#,
            r#"{"k":"\ud800"}"#,
            r#"{"k":"\udc00"}"#,
            r#"{"k":"\ud800\u0041"}"#,
            r#"{"k":"\x"}"#,
            "{\"k\":\"\u{1}\"}",
            "[1,]",
            "01",
            "1.",
            "-",
            "1e",
            "{\"a\" 1}",
            "[1] x",
            "tru",
            "",
        ] {
            assert_eq!(encode(json), None, "{json}");
        }
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(encode(&deep), None);
        let deepest = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(encode(&deepest).is_some());
        assert_eq!(encode(&format!("1{}", "0".repeat(MAX_NUMBER_DIGITS))), None);
        assert_eq!(encode(&format!("1e{}", MAX_NUMBER_DIGITS + 1)), None);
        assert!(encode(&format!("1e-{MAX_NUMBER_DIGITS}")).is_some());
        let longest = format!("\"{}\"", "x".repeat(MAX_TEXT - 2));
        assert!(encode(&longest).is_some());
        let longer = format!("\"{}\"", "x".repeat(MAX_TEXT - 1));
        assert_eq!(encode(&longer), None);
    }

    #[test]
    fn escapes_are_unescaped() {
        let plain = encode(r#"{"k":"é😀\n\"/"}"#).unwrap();
        let escaped = encode(r#"{"k":"\u00e9\ud83d\ude00\n\"\/"}"#).unwrap();
        assert_eq!(plain, escaped);
    }
}
