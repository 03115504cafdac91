//! A batch's records out of QuickJS as JSON text, exactly as `JSON.stringify` writes them, but faster.
//!
//! QuickJS' `JSON.stringify` makes a quoted copy of every key and string before appending it, and one
//! string of the whole batch that Rust then copies again; for pages of records that costs about four
//! times what writing the text from Rust does. So plain data is written here: objects whose prototype
//! is `Object.prototype` or `null`, arrays, strings, numbers, booleans, `null`, and any object with a
//! `toJSON` method (a `Date`), whose result is written instead, as `JSON.stringify` does.
//!
//! A record that holds anything else (an instance of a class, a boxed primitive, a Proxy, a BigInt, or a
//! structure deeper than [`MAX_DEPTH`], which is how a cycle shows) is handed whole to `JSON.stringify`,
//! so the text, and any error, is always the one `JSON.stringify` gives. (A `toJSON` method met before
//! such a value runs twice then.)

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write;

use rquickjs::function::This;
use rquickjs::{Array, Atom, Coerced, Ctx, Exception, Function, Object, Type, Value};

use crate::records::batch::RecordBatch;

/// Nesting deeper than this goes to `JSON.stringify`, which also reports cycles.
const MAX_DEPTH: usize = 200;

/// Integers up to this magnitude are exact in a double and print the same in JS and Rust.
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

/// Reads each record of `records` (validated by the SDK: objects with an `id`) into a [`RecordBatch`].
pub fn record_batch<'js>(
    ctx: &Ctx<'js>,
    method: &str,
    records: &Array<'js>,
) -> rquickjs::Result<RecordBatch> {
    let writer = Writer::new(ctx)?;
    RecordBatch::hashed(|push| {
        for (index, record) in records.iter::<Value>().enumerate() {
            let record = record?;
            let id = match record.as_object() {
                Some(object) => object.get::<_, Coerced<String>>(writer.id.clone())?.0,
                None => String::new(),
            };
            let json = writer.record(&record)?;
            if !json.starts_with('{') {
                return Err(Exception::throw_type(
                    ctx,
                    &format!(
                        "nango.{method}: record at index {index} is not an object once written as JSON (its toJSON returns something else)"
                    ),
                ));
            }
            push(id, json);
        }
        Ok(())
    })
}

/// Why the direct path stopped.
enum Stop {
    /// A value it does not write: `JSON.stringify` takes the record.
    Unusual,
    /// A JS exception (a throwing getter or `toJSON`), passed on to the script.
    Js(rquickjs::Error),
}

impl From<rquickjs::Error> for Stop {
    fn from(error: rquickjs::Error) -> Self {
        Stop::Js(error)
    }
}

/// The key a value is stored under, passed to its `toJSON`.
#[derive(Clone, Copy)]
enum Key<'a, 'js> {
    Root,
    Name(&'a Atom<'js>),
    Index(usize),
}

/// Where a value sits in its record.
#[derive(Clone, Copy)]
struct Place<'a, 'js> {
    key: Key<'a, 'js>,
    depth: usize,
    /// False for the value a `toJSON` returned, which JSON.stringify writes as it is.
    check_to_json: bool,
}

impl<'a, 'js> Place<'a, 'js> {
    const ROOT: Self = Place {
        key: Key::Root,
        depth: 0,
        check_to_json: true,
    };

    fn child(self, key: Key<'a, 'js>) -> Self {
        Place {
            key,
            depth: self.depth + 1,
            check_to_json: true,
        }
    }
}

struct Writer<'js> {
    ctx: Ctx<'js>,
    id: Atom<'js>,
    to_json: Atom<'js>,
    object_prototype: Value<'js>,
    array_prototype: Value<'js>,
    /// Property names as quoted JSON, per atom: a batch's records share their keys.
    keys: RefCell<HashMap<Atom<'js>, Box<str>>>,
}

impl<'js> Writer<'js> {
    fn new(ctx: &Ctx<'js>) -> rquickjs::Result<Self> {
        let prototype = |name: &str| -> rquickjs::Result<Value<'js>> {
            let constructor: Object = ctx.globals().get(name)?;
            constructor.get("prototype")
        };
        Ok(Self {
            ctx: ctx.clone(),
            id: Atom::from_str(ctx.clone(), "id")?,
            to_json: Atom::from_str(ctx.clone(), "toJSON")?,
            object_prototype: prototype("Object")?,
            array_prototype: prototype("Array")?,
            keys: RefCell::new(HashMap::new()),
        })
    }

    /// One record's JSON text.
    fn record(&self, record: &Value<'js>) -> rquickjs::Result<String> {
        let mut out = String::with_capacity(1024);
        match self.value(record, Place::ROOT, &mut out) {
            Ok(true) => Ok(out),
            Ok(false) => Ok(String::new()),
            Err(Stop::Js(error)) => Err(error),
            Err(Stop::Unusual) => Ok(self
                .ctx
                .json_stringify(record.clone())?
                .map(|text| text.to_string())
                .transpose()?
                .unwrap_or_default()),
        }
    }

    /// Writes `value`; `false` when `JSON.stringify` would leave it out (undefined, a function, a symbol).
    fn value(
        &self,
        value: &Value<'js>,
        place: Place<'_, 'js>,
        out: &mut String,
    ) -> Result<bool, Stop> {
        if place.depth > MAX_DEPTH {
            return Err(Stop::Unusual);
        }
        match value.type_of() {
            Type::Undefined | Type::Symbol => return Ok(false),
            Type::Null => out.push_str("null"),
            Type::Bool => out.push_str(if value.as_bool() == Some(true) {
                "true"
            } else {
                "false"
            }),
            Type::Int => {
                let _ = write!(out, "{}", value.as_int().unwrap_or_default());
            }
            Type::Float => self.number(value, value.as_float().unwrap_or_default(), out)?,
            Type::String => {
                let Some(string) = value.as_string() else {
                    return Err(Stop::Unusual);
                };
                // Borrowed from QuickJS (no copy for ASCII text). A lone surrogate has no UTF-8 form:
                // JSON.stringify escapes it.
                let text = string.clone().to_cstring()?;
                quote(
                    std::str::from_utf8(text.as_ref()).map_err(|_| Stop::Unusual)?,
                    out,
                );
            }
            Type::Array
            | Type::Object
            | Type::Function
            | Type::Constructor
            | Type::Exception
            | Type::Promise => {
                return self.object(value, place, out);
            }
            _ => return Err(Stop::Unusual),
        }
        Ok(true)
    }

    fn number(&self, value: &Value<'js>, number: f64, out: &mut String) -> Result<(), Stop> {
        if !number.is_finite() {
            out.push_str("null");
        } else if number.trunc() == number && number.abs() <= MAX_SAFE_INTEGER {
            // -0 too: JSON.stringify writes it as 0.
            let _ = write!(out, "{}", number as i64);
        } else {
            // Fractions and large numbers: JS's own shortest form (1.5, 1e+21, 5e-7).
            out.push_str(&value.get::<Coerced<String>>()?.0);
        }
        Ok(())
    }

    /// An object or array: its `toJSON` result, or its elements, or its own enumerable properties.
    fn object(
        &self,
        value: &Value<'js>,
        place: Place<'_, 'js>,
        out: &mut String,
    ) -> Result<bool, Stop> {
        let Some(object) = value.as_object() else {
            return Err(Stop::Unusual);
        };
        if value.is_proxy() {
            return Err(Stop::Unusual);
        }
        if place.check_to_json {
            let to_json: Value = object.get(self.to_json.clone())?;
            if let Some(to_json) = to_json.as_function() {
                let key: Value = match place.key {
                    Key::Root => rquickjs::String::from_str(self.ctx.clone(), "")?.into_value(),
                    Key::Name(name) => name.to_js_string()?.into_value(),
                    Key::Index(index) => {
                        rquickjs::String::from_str(self.ctx.clone(), &index.to_string())?
                            .into_value()
                    }
                };
                let result: Value = Function::call(to_json, (This(value.clone()), key))?;
                let place = Place {
                    check_to_json: false,
                    ..place.child(Key::Root)
                };
                return self.value(&result, place, out);
            }
        }
        if value.is_function() {
            return Ok(false);
        }
        let prototype = object.get_prototype().map(Object::into_value);
        if value.is_array() {
            if prototype.as_ref() != Some(&self.array_prototype) {
                return Err(Stop::Unusual);
            }
            self.array(&Array::from_value(value.clone())?, place, out)?;
        } else if prototype.is_none() || prototype.as_ref() == Some(&self.object_prototype) {
            self.properties(object, place, out)?;
        } else {
            return Err(Stop::Unusual);
        }
        Ok(true)
    }

    /// `[…]`: holes and values JSON.stringify leaves out are written as `null`.
    fn array(
        &self,
        array: &Array<'js>,
        place: Place<'_, 'js>,
        out: &mut String,
    ) -> Result<(), Stop> {
        out.push('[');
        for index in 0..array.len() {
            if index > 0 {
                out.push(',');
            }
            let item: Value = array.get(index)?;
            if !self.value(&item, place.child(Key::Index(index)), out)? {
                out.push_str("null");
            }
        }
        out.push(']');
        Ok(())
    }

    /// `{…}` of the own enumerable string-keyed properties, in their order; those JSON.stringify leaves
    /// out are dropped with their key.
    fn properties(
        &self,
        object: &Object<'js>,
        place: Place<'_, 'js>,
        out: &mut String,
    ) -> Result<(), Stop> {
        out.push('{');
        let mut first = true;
        for property in object.props::<Atom, Value>() {
            let (name, item) = property?;
            let mark = out.len();
            if !first {
                out.push(',');
            }
            self.key(&name, out)?;
            out.push(':');
            if self.value(&item, place.child(Key::Name(&name)), out)? {
                first = false;
            } else {
                out.truncate(mark);
            }
        }
        out.push('}');
        Ok(())
    }
}

impl<'js> Writer<'js> {
    /// Writes a property name as a quoted JSON string.
    fn key(&self, name: &Atom<'js>, out: &mut String) -> Result<(), Stop> {
        if let Some(quoted) = self.keys.borrow().get(name) {
            out.push_str(quoted);
            return Ok(());
        }
        let mut quoted = String::new();
        quote(&name.to_string().map_err(|_| Stop::Unusual)?, &mut quoted);
        out.push_str(&quoted);
        self.keys.borrow_mut().insert(name.clone(), quoted.into());
        Ok(())
    }
}

/// Per byte: 0 when it stands for itself inside a JSON string, else the letter after its backslash (`u` for
/// `\u00XX`): JSON.stringify's escapes.
static ESCAPES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = b'u';
        byte += 1;
    }
    table[0x08] = b'b';
    table[0x0c] = b'f';
    table[b'\n' as usize] = b'n';
    table[b'\r' as usize] = b'r';
    table[b'\t' as usize] = b't';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// Writes `text` as a JSON string, escaped as `JSON.stringify` escapes it.
fn quote(text: &str, out: &mut String) {
    out.push('"');
    let mut start = 0;
    for (i, &byte) in text.as_bytes().iter().enumerate() {
        let escape = ESCAPES[byte as usize];
        if escape == 0 {
            continue;
        }
        out.push_str(&text[start..i]);
        if escape == b'u' {
            let _ = write!(out, "\\u{byte:04x}");
        } else {
            out.push('\\');
            out.push(escape as char);
        }
        start = i + 1;
    }
    out.push_str(&text[start..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use rquickjs::{CatchResultExt, Context, Runtime};

    /// Each record of `script` (a JS expression for an array) written here and by JSON.stringify.
    fn both(script: &str) -> Vec<(String, String)> {
        let runtime = Runtime::new().unwrap();
        let context = Context::full(&runtime).unwrap();
        context.with(|ctx| {
            let records: Array = ctx.eval(script).unwrap();
            let batch = record_batch(&ctx, "batchSave", &records).unwrap();
            batch
                .records
                .into_iter()
                .enumerate()
                .map(|(i, record)| {
                    let expected = ctx
                        .json_stringify(records.get::<Value>(i).unwrap())
                        .unwrap()
                        .unwrap()
                        .to_string()
                        .unwrap();
                    (record.json, expected)
                })
                .collect()
        })
    }

    fn error_of(script: &str) -> String {
        let runtime = Runtime::new().unwrap();
        let context = Context::full(&runtime).unwrap();
        context.with(|ctx| {
            let records: Array = ctx.eval(script).unwrap();
            let error = record_batch(&ctx, "batchSave", &records)
                .catch(&ctx)
                .unwrap_err();
            error.to_string()
        })
    }

    #[test]
    fn writes_what_json_stringify_writes() {
        let cases = both(
            r#"
            class Ticket { constructor() { this.id = 't'; this.n = 1; } }
            const cycle = { id: 'c' }; cycle.self = { back: 1 };
            [
              { id: 'plain', a: 1, b: 'two', c: true, d: null, e: [1, 'x', null, false], f: { g: { h: [] } } },
              { id: 'numbers', i: -7, big: 2 ** 31, huge: 1e21, tiny: 5e-7, frac: 1.5, third: 1 / 3, negzero: -0,
                nan: NaN, inf: -Infinity, max: Number.MAX_SAFE_INTEGER, over: Number.MAX_SAFE_INTEGER + 2, ms: 1700000000123 },
              { id: 'strings', q: 'say "hi"\\ok', ctl: '\n\r\t\b\f\u0001\u001f', uni: 'é中😀', empty: '', sep: '\u2028' },
              { id: 'skipped', u: undefined, f() {}, s: Symbol('x'), arr: [undefined, () => 1, Symbol('y')] },
              { id: 'keys', 2: 'two', 1: 'one', z: 1, a: 2, 'with "quote"': 3 },
              { id: 'dates', at: new Date(Date.UTC(2026, 0, 2, 3, 4, 5)), bad: new Date(NaN), list: [new Date(0)] },
              { id: 'tojson', v: { toJSON(key) { return { key, n: 1 }; } }, w: [{ toJSON(key) { return key; } }] },
              { id: 'holes', h: [1, , 3] },
              { id: 'nullproto', o: Object.assign(Object.create(null), { x: 1 }) },
              { id: 'class', t: new Ticket(), m: new Map([[1, 2]]) },
              { id: 'boxed', s: new String('s'), n: new Number(3) },
              { id: 7, deep: JSON.parse('['.repeat(300) + ']'.repeat(300)) },
              { id: 'getter', get computed() { return 42; } },
              { id: 'proxy', p: new Proxy({ a: 1 }, {}) },
              { id: 'lone', s: 'a\ud800b', ['k\udc00']: 1 },
            ]"#,
        );
        assert_eq!(cases.len(), 15);
        for (ours, theirs) in cases {
            assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn ids_are_read_as_strings_and_hashes_are_taken() {
        let runtime = Runtime::new().unwrap();
        let context = Context::full(&runtime).unwrap();
        context.with(|ctx| {
            let records: Array = ctx.eval(r#"[{ id: 12, x: 1 }, { id: 'a' }]"#).unwrap();
            let batch = record_batch(&ctx, "batchSave", &records).unwrap();
            assert_eq!(batch.records[0].id, "12");
            assert_eq!(batch.records[1].id, "a");
            assert_eq!(batch.records[1].json, r#"{"id":"a"}"#);
            assert_eq!(
                batch.records[1].hash,
                crate::records::batch::content_hash(r#"{"id":"a"}"#)
            );
        });
    }

    #[test]
    fn errors_are_json_stringify_s() {
        assert!(
            error_of("[{ id: 'b', n: 10n }]").contains("BigInt"),
            "{}",
            error_of("[{ id: 'b', n: 10n }]")
        );
        let cycle = error_of("const r = { id: 'c' }; r.self = r; [r]");
        assert!(cycle.contains("circular"), "{cycle}");
        let thrown = error_of("[{ id: 'g', get bad() { throw new Error('getter failed'); } }]");
        assert!(thrown.contains("getter failed"), "{thrown}");
        let not_object = error_of("[{ id: 's', toJSON() { return 'text'; } }]");
        assert!(
            not_object.contains("record at index 0 is not an object once written as JSON"),
            "{not_object}"
        );
    }
}
