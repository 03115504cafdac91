//! Response bodies into JS values, built from Rust rather than by `JSON.parse`.
//!
//! serde_json reads the text and the values are made with QuickJS's own constructors, each property name
//! read straight into an atom, made once per body (a page's records share their keys). On API pages this
//! takes about 60% of the time of `JSON.parse`. The result is what `JSON.parse` gives: properties are
//! defined (not assigned, so a `"__proto__"` key is an own property), a repeated key keeps its first place
//! and its last value, numbers are read exactly (serde_json's `float_roundtrip`) and `-0` stays `-0`. What
//! serde_json refuses goes to `JSON.parse` itself: a `\uD800` without its pair, nesting deeper than 128, a
//! number too large for a double, invalid JSON, text that is not UTF-8. So the value, or the error, is
//! always `JSON.parse`'s.

use std::cell::RefCell;
use std::fmt;

use rquickjs::{Ctx, Value, qjs};
use rustc_hash::FxHashMap;
use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};

/// `JSON.parse(body)`.
pub fn parse<'js>(ctx: &Ctx<'js>, body: &[u8]) -> rquickjs::Result<Value<'js>> {
    match build(ctx, body)? {
        Some(value) => Ok(value),
        None => ctx.json_parse(body.to_vec()),
    }
}

/// The value of `body` built from Rust; `None` when serde_json refuses it.
fn build<'js>(ctx: &Ctx<'js>, body: &[u8]) -> rquickjs::Result<Option<Value<'js>>> {
    let builder = Builder {
        ctx: ctx.as_raw().as_ptr(),
        atoms: RefCell::new(FxHashMap::default()),
    };
    // Checked once here (quicker than string by string); JSON.parse takes text that is not UTF-8.
    let Ok(text) = std::str::from_utf8(body) else {
        return Ok(None);
    };
    let mut reader = serde_json::Deserializer::from_str(text);
    let built = Build(&builder).deserialize(&mut reader).and_then(|value| {
        reader
            .end()
            .map(|()| value)
            .map_err(|e| free_on_error(&builder, value, e))
    });
    drop(builder);
    match built {
        // SAFETY: `value` is a live value of this context, owned here and handed over.
        Ok(value) => Ok(Some(unsafe { Value::from_raw(ctx.clone(), value) })),
        Err(_) if has_exception(ctx) => Err(rquickjs::Error::Exception),
        Err(_) => Ok(None),
    }
}

/// Frees `value` (trailing text after a complete value) and passes the error on.
fn free_on_error(
    builder: &Builder,
    value: qjs::JSValue,
    error: serde_json::Error,
) -> serde_json::Error {
    // SAFETY: `value` was made by `builder` for this context and is owned here.
    unsafe { qjs::JS_FreeValue(builder.ctx, value) };
    error
}

fn has_exception(ctx: &Ctx<'_>) -> bool {
    // SAFETY: the context is alive for the duration of `ctx`.
    unsafe { qjs::JS_HasException(ctx.as_raw().as_ptr()) }
}

/// The context values are made in, and the atoms of the property names seen so far.
struct Builder {
    ctx: *mut qjs::JSContext,
    atoms: RefCell<FxHashMap<Box<str>, qjs::JSAtom>>,
}

impl Builder {
    fn atom(&self, name: &str) -> Option<qjs::JSAtom> {
        if let Some(atom) = self.atoms.borrow().get(name) {
            return Some(*atom);
        }
        // SAFETY: `name` is valid UTF-8 of the given length.
        let atom = unsafe { qjs::JS_NewAtomLen(self.ctx, name.as_ptr().cast(), name.len() as _) };
        if atom == qjs::JS_ATOM_NULL {
            return None;
        }
        self.atoms.borrow_mut().insert(name.into(), atom);
        Some(atom)
    }

    /// `value`, unless it is QuickJS's exception marker (out of memory).
    fn made<E: serde::de::Error>(&self, value: qjs::JSValue) -> Result<qjs::JSValue, E> {
        // SAFETY: only the tag is read.
        if unsafe { qjs::JS_IsException(value) } {
            Err(E::custom("out of memory"))
        } else {
            Ok(value)
        }
    }
}

impl Drop for Builder {
    fn drop(&mut self) {
        for atom in self.atoms.get_mut().values() {
            // SAFETY: each atom was made by JS_NewAtomLen and is held once, by this map.
            unsafe { qjs::JS_FreeAtom(self.ctx, *atom) };
        }
    }
}

/// Builds one value (and, through itself, the values inside it).
#[derive(Clone, Copy)]
struct Build<'b>(&'b Builder);

impl<'de> DeserializeSeed<'de> for Build<'_> {
    type Value = qjs::JSValue;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<qjs::JSValue, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Build<'_> {
    type Value = qjs::JSValue;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("JSON")
    }

    fn visit_unit<E>(self) -> Result<qjs::JSValue, E> {
        Ok(qjs::JS_NULL)
    }

    fn visit_bool<E>(self, value: bool) -> Result<qjs::JSValue, E> {
        Ok(if value { qjs::JS_TRUE } else { qjs::JS_FALSE })
    }

    // An integer beyond 2^53 rounds to the nearest double, as JSON.parse rounds its digits.
    fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<qjs::JSValue, E> {
        self.visit_f64(value as f64)
    }

    fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<qjs::JSValue, E> {
        self.visit_f64(value as f64)
    }

    fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<qjs::JSValue, E> {
        // SAFETY: makes a number (an int when it is one, as the engine's own parser does).
        Ok(unsafe { qjs::JS_NewNumber(self.0.ctx, value) })
    }

    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<qjs::JSValue, E> {
        // SAFETY: `value` is valid UTF-8 of the given length.
        let string =
            unsafe { qjs::JS_NewStringLen(self.0.ctx, value.as_ptr().cast(), value.len() as _) };
        self.0.made(string)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<qjs::JSValue, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        loop {
            match seq.next_element_seed(self) {
                Ok(Some(item)) => items.push(item),
                Ok(None) => break,
                Err(error) => {
                    for item in items {
                        // SAFETY: each item is owned here.
                        unsafe { qjs::JS_FreeValue(self.0.ctx, item) };
                    }
                    return Err(error);
                }
            }
        }
        // SAFETY: the array takes the items over (also when it fails, freeing them).
        let array = unsafe { qjs::JS_NewArrayFrom(self.0.ctx, items.len() as _, items.as_ptr()) };
        self.0.made(array)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<qjs::JSValue, A::Error> {
        // SAFETY: a new object, owned here until returned.
        let object = self.0.made(unsafe { qjs::JS_NewObject(self.0.ctx) })?;
        let filled = (|| {
            while let Some(atom) = map.next_key_seed(Name(self.0))? {
                let value = map.next_value_seed(self)?;
                // Defined as JSON.parse defines it. SAFETY: the object takes `value` over, also on failure.
                let defined = unsafe {
                    qjs::JS_DefinePropertyValue(
                        self.0.ctx,
                        object,
                        atom,
                        value,
                        qjs::JS_PROP_C_W_E as _,
                    )
                };
                if defined < 0 {
                    return Err(A::Error::custom("out of memory"));
                }
            }
            Ok(())
        })();
        match filled {
            Ok(()) => Ok(object),
            Err(error) => {
                // SAFETY: the object is owned here.
                unsafe { qjs::JS_FreeValue(self.0.ctx, object) };
                Err(error)
            }
        }
    }
}

/// A property name, read straight into its atom.
#[derive(Clone, Copy)]
struct Name<'b>(&'b Builder);

impl<'de> DeserializeSeed<'de> for Name<'_> {
    type Value = qjs::JSAtom;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<qjs::JSAtom, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for Name<'_> {
    type Value = qjs::JSAtom;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a property name")
    }

    fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<qjs::JSAtom, E> {
        self.0.atom(name).ok_or_else(|| E::custom("out of memory"))
    }
}

#[cfg(test)]
mod tests {
    use rquickjs::{Context, Runtime};

    use super::*;

    /// What `JSON.stringify` writes of `parse(body)` and of `JSON.parse(body)`, and for each the result of
    /// `check` called on the value.
    fn both(body: &str, check: &str) -> [(String, String); 2] {
        let runtime = Runtime::new().unwrap();
        let context = Context::full(&runtime).unwrap();
        context.with(|ctx| {
            let check: rquickjs::Function = ctx.eval(check).unwrap();
            [
                show(&ctx, &check, parse(&ctx, body.as_bytes()).unwrap()),
                show(&ctx, &check, ctx.json_parse(body).unwrap()),
            ]
        })
    }

    fn show<'js>(
        ctx: &Ctx<'js>,
        check: &rquickjs::Function<'js>,
        value: Value<'js>,
    ) -> (String, String) {
        let text = ctx
            .json_stringify(value.clone())
            .unwrap()
            .map(|s| s.to_string().unwrap())
            .unwrap_or_default();
        let checked: rquickjs::Coerced<String> = check.call((value,)).unwrap();
        (text, checked.0)
    }

    #[test]
    fn values_are_those_json_parse_gives() {
        let describe = "(v) => JSON.stringify(v, (k, x) => typeof x === 'number' ? \
                        (Object.is(x, -0) ? '-0' : String(x)) : x) + ':' + Object.keys(v ?? {}).join('|') \
                        + ':' + (v !== null && typeof v === 'object' ? Object.getPrototypeOf(v) === Object.prototype || Array.isArray(v) : '')";
        for body in [
            r#"{"data":[{"id":1,"title":"A","tags":["x","y"],"n":null,"ok":true,"no":false}],"next":"2"}"#,
            r#"[-0, 0, -0.0, 1.0, 1.5, 1e21, 5e-7, 9007199254740993, 18446744073709551617, -9223372036854775809, 0.1, 2.2250738585072014e-308, 1.7976931348623157e308]"#,
            r#"{"b":1,"a":2,"b":3}"#,
            r#"{"__proto__":{"x":1},"constructor":2}"#,
            r#"{"2":"two","1":"one","x":"x","0":"zero","4294967295":"big"}"#,
            r#"{"s":"tab\t nl\n quote\" back\\ nul\u0000 é 😀 \ud83d\ude00 \u2028"}"#,
            r#"  {"padded": []}  "#,
            r#""just a string""#,
            "12",
            "null",
            r#"{"":{"":[]}}"#,
        ] {
            let [ours, theirs] = both(body, describe);
            assert_eq!(ours, theirs, "for {body}");
            assert!(built(body), "{body} is built from Rust");
        }
    }

    /// Whether `body` is built from Rust (rather than handed to JSON.parse).
    fn built(body: &str) -> bool {
        let runtime = Runtime::new().unwrap();
        let context = Context::full(&runtime).unwrap();
        context.with(|ctx| build(&ctx, body.as_bytes()).unwrap().is_some())
    }

    #[test]
    fn what_serde_json_refuses_is_parsed_by_json_parse() {
        let describe = "(v) => typeof v === 'string' ? [...v].map(c => c.charCodeAt(0)).join(',') : JSON.stringify(v)";
        for body in [
            r#""lone \ud800 surrogate""#,
            r#"[1e400, -1e400]"#,
            r#"[1, "two", {"three": [3], "four": "\ud800"}]"#,
            &format!("{}{}", "[".repeat(300), "]".repeat(300)),
        ] {
            let [ours, theirs] = both(body, describe);
            assert_eq!(ours, theirs, "for {body}");
            assert!(!built(body), "{body} goes to JSON.parse");
        }
    }

    #[test]
    fn invalid_json_is_json_parse_s_error() {
        let runtime = Runtime::new().unwrap();
        let context = Context::full(&runtime).unwrap();
        context.with(|ctx| {
            for body in ["{\"a\":1,}", "[1] 2", "{'a':1}", ""] {
                assert!(parse(&ctx, body.as_bytes()).is_err(), "for {body}");
                let caught = ctx.catch();
                assert!(
                    caught.is_exception() || caught.is_object(),
                    "for {body}: {caught:?}"
                );
            }
            assert!(
                build(&ctx, b"\"\xff\"").unwrap().is_none(),
                "not UTF-8: JSON.parse's"
            );
            // The context still works, and still parses.
            let value = parse(&ctx, br#"{"id":"a"}"#).unwrap();
            assert_eq!(
                ctx.json_stringify(value)
                    .unwrap()
                    .unwrap()
                    .to_string()
                    .unwrap(),
                r#"{"id":"a"}"#
            );
        });
    }
}

/// Checks an action's input given as JSON text, which reaches the script unparsed (so its keys keep their
/// order): at most `max_bytes` long and valid JSON. (Nesting deeper than the script's stack allows fails
/// in the script's `JSON.parse`, as an error of the run.)
pub fn check_action_input(text: &str, max_bytes: usize) -> Result<(), String> {
    if text.len() > max_bytes {
        return Err(format!(
            "the action input is {} bytes of JSON, more than the {max_bytes} bytes allowed (nango.max_record_size)",
            text.len()
        ));
    }
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map(|_| ())
        .map_err(|e| format!("the action input is not valid JSON: {e}"))
}

#[cfg(test)]
mod input_tests {
    use super::check_action_input;

    #[test]
    fn action_input_is_bounded_valid_json() {
        assert_eq!(check_action_input(r#"{"b": 1, "a": [2]}"#, 100), Ok(()));
        assert_eq!(
            check_action_input("{\"a\": 1", 100).unwrap_err(),
            "the action input is not valid JSON: EOF while parsing an object at line 1 column 7"
        );
        assert!(
            check_action_input("{} x", 100)
                .unwrap_err()
                .contains("trailing characters")
        );
        assert_eq!(
            check_action_input("\"0123456789\"", 10).unwrap_err(),
            "the action input is 12 bytes of JSON, more than the 10 bytes allowed (nango.max_record_size)"
        );
    }
}
