//! A batch's records out of QuickJS as JSON text, exactly as `JSON.stringify` writes them, but faster.
//!
//! QuickJS' `JSON.stringify` makes a quoted copy of every key and string before appending it, and one
//! string of the whole batch that Rust then copies again; for pages of records that costs about four
//! times what writing the text from Rust does. So plain data is written here, reading the values through
//! QuickJS's C API (each value borrowed, no wrapper made for it): objects whose prototype is
//! `Object.prototype` or `null`, arrays, strings, numbers, booleans, `null`, and any object with a `toJSON`
//! method (a `Date`), whose result is written instead, as `JSON.stringify` does.
//!
//! A record that holds anything else (an instance of a class, a boxed primitive, a Proxy, a BigInt, or a
//! cycle) is handed whole to `JSON.stringify`, so the text, and any error, is always the one
//! `JSON.stringify` gives. (A `toJSON` method met before such a value runs twice then.)
//!
//! Two limits apply to every record, each failing the batch with an error that names the record's index:
//! its JSON text may not pass the run's `max_record_size` (checked as the text grows, so an array of
//! length 2^32 - 1 stops after the limit, not after four billion `null`s), and it may not be nested deeper
//! than [`MAX_RECORD_DEPTH`] (the writer recurses once per level, on the backend's own stack).

use std::cell::RefCell;
use std::fmt::Write;

use rquickjs::{Ctx, Exception, Object, Value, qjs};
use rustc_hash::FxHashMap;

use super::SaveOp;
use super::validate::CheckedRecord;
use crate::records::batch::RecordBatch;

/// From this depth on, each object is looked for among the objects that enclose it: a cycle goes to
/// `JSON.stringify`, which reports it in its own words.
const CYCLE_CHECK_DEPTH: usize = 200;

/// The deepest nesting of arrays and objects a record may have. Node's `JSON.stringify` manages about
/// 5,000 levels with its default stack, QuickJS' about as many within its 1 MB; Postgres' `jsonb` input
/// about 10,000 within its 2 MB `max_stack_depth`. 1,000 is far beyond any real record and keeps the
/// writer's recursion (a few hundred bytes a level) well inside the backend's stack.
pub const MAX_RECORD_DEPTH: usize = 1_000;

/// Integers up to this magnitude are exact in a double and print the same in JS and Rust.
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

/// Reads each of `records` (checked by [`super::validate`]) into a [`RecordBatch`] for the write `op`,
/// with the records' `jsonb` bytes when `build_jsonb`; a record whose JSON text is longer than
/// `max_record_size` bytes fails the batch, and so do records whose texts add up to more than
/// `max_batch_size` bytes.
pub fn record_batch<'js>(
    ctx: &Ctx<'js>,
    (op, build_jsonb): (SaveOp, bool),
    records: Vec<CheckedRecord<'js>>,
    (max_record_size, max_batch_size): (usize, usize),
) -> rquickjs::Result<RecordBatch> {
    let writer = Writer::new(ctx, max_record_size)?;
    let mut batch_size = 0usize;
    let method = op.method();
    RecordBatch::hashed(build_jsonb, |push| {
        for checked in records {
            let fail = |what: String| {
                Exception::throw_message(
                    ctx,
                    &format!("nango.{method}: record at index {} {what}", checked.index),
                )
            };
            let json = match writer.record(&checked.record) {
                Ok(json) if json.len() > max_record_size => Err(Stop::TooLarge),
                other => other,
            };
            let json = match json {
                Ok(json) => json,
                Err(Stop::TooLarge) => {
                    return Err(fail(format!(
                        "is larger than {max_record_size} bytes as JSON, the limit set by nango.max_record_size"
                    )));
                }
                Err(Stop::TooDeep) => {
                    return Err(fail(format!(
                        "is nested deeper than {MAX_RECORD_DEPTH} levels of arrays and objects"
                    )));
                }
                Err(_) => return Err(rquickjs::Error::Exception),
            };
            if !json.starts_with('{') {
                return Err(Exception::throw_type(
                    ctx,
                    &format!(
                        "nango.{method}: record at index {} is not an object once written as JSON (its toJSON returns something else)",
                        checked.index
                    ),
                ));
            }
            batch_size = batch_size.saturating_add(json.len());
            if batch_size > max_batch_size {
                return Err(Exception::throw_range(
                    ctx,
                    &format!(
                        "nango.{method}: the batch is larger than {max_batch_size} bytes as JSON at the record at index {} (the limit set by nango.script_memory_limit); save in smaller batches",
                        checked.index
                    ),
                ));
            }
            push(checked.id, json);
        }
        Ok(())
    })
}

/// The largest log payload kept, as JSON text. Log lines are for reading; a larger payload would only
/// fill `nango.logs` (and each one is a row written in its own transaction).
pub const MAX_LOG_PAYLOAD: usize = 64 << 10;

/// A log call's payload (JSON text) as it is stored: itself, or, past [`MAX_LOG_PAYLOAD`], a note saying
/// that it was too large and how large it was.
pub fn log_payload(json: String) -> String {
    if json.len() <= MAX_LOG_PAYLOAD {
        return json;
    }
    serde_json::json!({
        "_nango_note": format!(
            "the payload was {} bytes of JSON, more than the {MAX_LOG_PAYLOAD} bytes a log line keeps; it was left out",
            json.len()
        )
    })
    .to_string()
}

/// Why the direct path stopped.
enum Stop {
    /// A value it does not write: `JSON.stringify` takes the record.
    Unusual,
    /// A JS exception (a throwing getter or `toJSON`), pending in the context, passed on to the script.
    Thrown,
    /// The text passed the record size limit.
    TooLarge,
    /// The record is nested deeper than [`MAX_RECORD_DEPTH`].
    TooDeep,
}

/// The key a value is stored under, passed to its `toJSON`.
#[derive(Clone, Copy)]
enum Key {
    Root,
    Name(qjs::JSAtom),
    Index(i64),
}

/// Where a value sits in its record.
#[derive(Clone, Copy)]
struct Place {
    key: Key,
    depth: usize,
    /// False for the value a `toJSON` returned, which JSON.stringify writes as it is.
    check_to_json: bool,
}

impl Place {
    const ROOT: Self = Place {
        key: Key::Root,
        depth: 0,
        check_to_json: true,
    };

    fn child(self, key: Key) -> Self {
        Place {
            key,
            depth: self.depth + 1,
            check_to_json: true,
        }
    }
}

/// A value owned here, freed when dropped.
struct Owned {
    ctx: *mut qjs::JSContext,
    value: qjs::JSValue,
}

impl Owned {
    /// Takes over `value`, the result of a QuickJS call: `Thrown` when it is the exception marker.
    fn new(ctx: *mut qjs::JSContext, value: qjs::JSValue) -> Result<Self, Stop> {
        // SAFETY: only the tag is read.
        if unsafe { qjs::JS_IsException(value) } {
            Err(Stop::Thrown)
        } else {
            Ok(Owned { ctx, value })
        }
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        // SAFETY: the value is owned here, once.
        unsafe { qjs::JS_FreeValue(self.ctx, self.value) };
    }
}

/// UTF-8 text borrowed from QuickJS (a string's own bytes when it is ASCII), freed when dropped.
struct CText {
    ctx: *mut qjs::JSContext,
    ptr: *const std::ffi::c_char,
    len: usize,
}

impl CText {
    fn new(
        ctx: *mut qjs::JSContext,
        ptr: *const std::ffi::c_char,
        len: qjs::size_t,
    ) -> Result<Self, Stop> {
        if ptr.is_null() {
            Err(Stop::Thrown)
        } else {
            Ok(CText {
                ctx,
                ptr,
                len: len as usize,
            })
        }
    }

    /// The text; `None` for a lone surrogate, which has no UTF-8 form (JSON.stringify escapes it).
    fn as_str(&self) -> Option<&str> {
        // SAFETY: QuickJS gives `len` bytes at `ptr`, alive until freed in `drop`.
        std::str::from_utf8(unsafe { std::slice::from_raw_parts(self.ptr.cast(), self.len) }).ok()
    }
}

impl Drop for CText {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from JS_ToCStringLen2 or JS_AtomToCStringLen and is freed once.
        unsafe { qjs::JS_FreeCString(self.ctx, self.ptr) };
    }
}

struct Writer<'js> {
    ctx: Ctx<'js>,
    raw: *mut qjs::JSContext,
    /// `toJSON`, held until the writer is dropped.
    to_json: qjs::JSAtom,
    /// Held so that the raw pointers below stay valid.
    _prototypes: [Object<'js>; 2],
    object_prototype: *mut std::ffi::c_void,
    array_prototype: *mut std::ffi::c_void,
    /// Property names as quoted JSON, per atom (each held once here): a batch's records share their keys.
    keys: RefCell<FxHashMap<qjs::JSAtom, Box<str>>>,
    /// The longest text a record may have.
    limit: usize,
    /// The objects that enclose the value being written, innermost last, to tell a cycle from depth.
    path: RefCell<Vec<*mut std::ffi::c_void>>,
}

impl<'js> Writer<'js> {
    fn new(ctx: &Ctx<'js>, limit: usize) -> rquickjs::Result<Self> {
        let prototype = |name: &str| -> rquickjs::Result<Object<'js>> {
            let constructor: Object = ctx.globals().get(name)?;
            constructor.get("prototype")
        };
        let prototypes = [prototype("Object")?, prototype("Array")?];
        // SAFETY: a C string; the atom is freed in `drop`.
        let to_json = unsafe { qjs::JS_NewAtom(ctx.as_raw().as_ptr(), c"toJSON".as_ptr()) };
        if to_json == qjs::JS_ATOM_NULL {
            return Err(rquickjs::Error::Allocation);
        }
        // SAFETY: both are objects; only their addresses are taken.
        let [object_prototype, array_prototype] = prototypes
            .each_ref()
            .map(|p| unsafe { qjs::JS_VALUE_GET_PTR(p.as_raw()) });
        Ok(Self {
            ctx: ctx.clone(),
            raw: ctx.as_raw().as_ptr(),
            to_json,
            _prototypes: prototypes,
            object_prototype,
            array_prototype,
            keys: RefCell::new(FxHashMap::default()),
            limit,
            path: RefCell::new(Vec::new()),
        })
    }

    /// One record's JSON text. `Thrown` leaves the exception pending in the context.
    fn record(&self, record: &Value<'js>) -> Result<String, Stop> {
        let mut out = String::with_capacity(1024);
        self.path.borrow_mut().clear();
        match self.value(record.as_raw(), Place::ROOT, &mut out) {
            Ok(true) => Ok(out),
            Ok(false) => Ok(String::new()),
            Err(Stop::Unusual) => {
                // The text of JSON.stringify lives in the QuickJS heap (bounded by the memory limit) until
                // it is measured here.
                let text = self
                    .ctx
                    .json_stringify(record.clone())
                    .map_err(|_| Stop::Thrown)?;
                let Some(text) = text else {
                    return Ok(String::new());
                };
                let mut len = 0;
                // SAFETY: `text` is a live string of this context; only its length is read.
                let ptr =
                    unsafe { qjs::JS_ToCStringLen2(self.raw, &mut len, text.as_raw(), false) };
                let text = CText::new(self.raw, ptr, len)?;
                if text.len > self.limit {
                    return Err(Stop::TooLarge);
                }
                // SAFETY: QuickJS gives `len` bytes at `ptr`, alive while `text` is.
                let bytes = unsafe { std::slice::from_raw_parts(text.ptr.cast::<u8>(), text.len) };
                Ok(String::from_utf8_lossy(bytes).into_owned())
            }
            Err(stop) => Err(stop),
        }
    }

    /// Fails once `out` has passed the record size limit.
    fn within_limit(&self, out: &str) -> Result<(), Stop> {
        if out.len() > self.limit {
            Err(Stop::TooLarge)
        } else {
            Ok(())
        }
    }

    /// Writes `value` (borrowed); `false` when `JSON.stringify` would leave it out (undefined, a function,
    /// a symbol).
    fn value(&self, value: qjs::JSValue, place: Place, out: &mut String) -> Result<bool, Stop> {
        // SAFETY: `value` is a live value of this context; the accessors match its tag.
        unsafe {
            match qjs::JS_VALUE_GET_TAG(value) {
                qjs::JS_TAG_UNDEFINED | qjs::JS_TAG_SYMBOL => return Ok(false),
                qjs::JS_TAG_NULL => out.push_str("null"),
                qjs::JS_TAG_BOOL => out.push_str(if qjs::JS_VALUE_GET_BOOL(value) {
                    "true"
                } else {
                    "false"
                }),
                qjs::JS_TAG_INT => {
                    let _ = write!(out, "{}", qjs::JS_VALUE_GET_INT(value));
                }
                qjs::JS_TAG_FLOAT64 => self.number(value, qjs::JS_VALUE_GET_FLOAT64(value), out)?,
                qjs::JS_TAG_STRING | qjs::JS_TAG_STRING_ROPE => {
                    let text = self.text_of(value)?;
                    // Refused before it is copied: a string may be as large as the script's heap.
                    if out.len().saturating_add(text.len) > self.limit {
                        return Err(Stop::TooLarge);
                    }
                    quote(text.as_str().ok_or(Stop::Unusual)?, out);
                }
                qjs::JS_TAG_OBJECT => return self.object(value, place, out),
                _ => return Err(Stop::Unusual),
            }
        }
        Ok(true)
    }

    fn number(&self, value: qjs::JSValue, number: f64, out: &mut String) -> Result<(), Stop> {
        if !number.is_finite() {
            out.push_str("null");
        } else if number.trunc() == number && number.abs() <= MAX_SAFE_INTEGER {
            // -0 too: JSON.stringify writes it as 0.
            let _ = write!(out, "{}", number as i64);
        } else {
            // Fractions and large numbers: JS's own shortest form (1.5, 1e+21, 5e-7).
            // SAFETY: a number converts to a string without side effects.
            let string = Owned::new(self.raw, unsafe { qjs::JS_ToString(self.raw, value) })?;
            out.push_str(self.text_of(string.value)?.as_str().ok_or(Stop::Unusual)?);
        }
        Ok(())
    }

    /// The UTF-8 text of a (borrowed) string value.
    fn text_of(&self, string: qjs::JSValue) -> Result<CText, Stop> {
        let mut len = 0;
        // SAFETY: `string` is a live string value of this context.
        let ptr = unsafe { qjs::JS_ToCStringLen2(self.raw, &mut len, string, false) };
        CText::new(self.raw, ptr, len)
    }

    /// An object or array: its `toJSON` result, or its elements, or its own enumerable properties.
    fn object(&self, value: qjs::JSValue, place: Place, out: &mut String) -> Result<bool, Stop> {
        // SAFETY (for the block): `value` is a live object of this context; every value a call returns is
        // taken over by an `Owned`.
        unsafe {
            if qjs::JS_IsProxy(value) {
                return Err(Stop::Unusual);
            }
            if place.check_to_json {
                let to_json =
                    Owned::new(self.raw, qjs::JS_GetProperty(self.raw, value, self.to_json))?;
                if qjs::JS_IsFunction(self.raw, to_json.value) {
                    let key = Owned::new(self.raw, self.key_value(place.key))?;
                    let mut argument = key.value;
                    let result = Owned::new(
                        self.raw,
                        qjs::JS_Call(self.raw, to_json.value, value, 1, &mut argument),
                    )?;
                    let place = Place {
                        check_to_json: false,
                        ..place.child(Key::Root)
                    };
                    return self.value(result.value, place, out);
                }
            }
            if qjs::JS_IsFunction(self.raw, value) {
                return Ok(false);
            }
            let address = qjs::JS_VALUE_GET_PTR(value);
            if place.depth >= CYCLE_CHECK_DEPTH {
                if self.path.borrow().contains(&address) {
                    return Err(Stop::Unusual);
                }
                if place.depth >= MAX_RECORD_DEPTH {
                    return Err(Stop::TooDeep);
                }
            }
            // Not a Proxy, so this cannot throw; only the prototype's address is compared.
            let prototype = Owned::new(self.raw, qjs::JS_GetPrototype(self.raw, value))?;
            let prototype = if qjs::JS_VALUE_GET_TAG(prototype.value) == qjs::JS_TAG_OBJECT {
                qjs::JS_VALUE_GET_PTR(prototype.value)
            } else {
                std::ptr::null_mut()
            };
            let array = qjs::JS_IsArray(value);
            if !(array && prototype == self.array_prototype
                || !array && (prototype.is_null() || prototype == self.object_prototype))
            {
                return Err(Stop::Unusual);
            }
            self.path.borrow_mut().push(address);
            let written = if array {
                self.array(value, place, out)
            } else {
                self.properties(value, place, out)
            };
            self.path.borrow_mut().pop();
            written?;
        }
        Ok(true)
    }

    /// The key passed to a `toJSON`, as a new JS string.
    fn key_value(&self, key: Key) -> qjs::JSValue {
        // SAFETY: makes a string from an atom held by the caller, or from Rust text.
        unsafe {
            match key {
                Key::Name(atom) => qjs::JS_AtomToString(self.raw, atom),
                Key::Root => qjs::JS_NewStringLen(self.raw, c"".as_ptr(), 0),
                Key::Index(index) => {
                    let text = index.to_string();
                    qjs::JS_NewStringLen(self.raw, text.as_ptr().cast(), text.len() as _)
                }
            }
        }
    }

    /// `[…]` of a (borrowed) array: holes and values JSON.stringify leaves out are written as `null`.
    fn array(&self, array: qjs::JSValue, place: Place, out: &mut String) -> Result<(), Stop> {
        let mut length = 0i64;
        // SAFETY: `array` is a live array of this context.
        if unsafe { qjs::JS_GetLength(self.raw, array, &mut length) } < 0 {
            return Err(Stop::Thrown);
        }
        out.push('[');
        for index in 0..length {
            if index > 0 {
                out.push(',');
            }
            // SAFETY: as above; the element is taken over by `Owned`.
            let item = Owned::new(self.raw, unsafe {
                qjs::JS_GetPropertyInt64(self.raw, array, index)
            })?;
            if !self.value(item.value, place.child(Key::Index(index)), out)? {
                out.push_str("null");
            }
            self.within_limit(out)?;
        }
        out.push(']');
        Ok(())
    }

    /// `{…}` of the own enumerable string-keyed properties of a (borrowed) object, in their order; those
    /// JSON.stringify leaves out are dropped with their key.
    fn properties(&self, object: qjs::JSValue, place: Place, out: &mut String) -> Result<(), Stop> {
        let names = PropertyNames::of(self.raw, object)?;
        out.push('{');
        let mut first = true;
        for name in names.atoms() {
            // SAFETY: `object` is live and `name` held by `names`; the value is taken over by `Owned`.
            let item = Owned::new(self.raw, unsafe {
                qjs::JS_GetProperty(self.raw, object, name)
            })?;
            let mark = out.len();
            if !first {
                out.push(',');
            }
            self.key(name, out)?;
            out.push(':');
            if self.value(item.value, place.child(Key::Name(name)), out)? {
                first = false;
            } else {
                out.truncate(mark);
            }
            self.within_limit(out)?;
        }
        out.push('}');
        Ok(())
    }

    /// Writes a property name as a quoted JSON string.
    fn key(&self, name: qjs::JSAtom, out: &mut String) -> Result<(), Stop> {
        if let Some(quoted) = self.keys.borrow().get(&name) {
            out.push_str(quoted);
            return Ok(());
        }
        let mut len = 0;
        // SAFETY: `name` is an atom held by the caller.
        let text = CText::new(
            self.raw,
            unsafe { qjs::JS_AtomToCStringLen(self.raw, &mut len, name) },
            len,
        )?;
        let mut quoted = String::new();
        quote(text.as_str().ok_or(Stop::Unusual)?, &mut quoted);
        out.push_str(&quoted);
        // SAFETY: the map holds its own reference to the atom, freed in `drop`.
        unsafe { qjs::JS_DupAtom(self.raw, name) };
        self.keys.borrow_mut().insert(name, quoted.into());
        Ok(())
    }
}

impl Drop for Writer<'_> {
    fn drop(&mut self) {
        for atom in self.keys.get_mut().keys() {
            // SAFETY: each atom was duplicated once when it entered the map.
            unsafe { qjs::JS_FreeAtom(self.raw, *atom) };
        }
        // SAFETY: made in `new`, freed once.
        unsafe { qjs::JS_FreeAtom(self.raw, self.to_json) };
    }
}

/// An object's own enumerable string-keyed property names, freed when dropped.
struct PropertyNames {
    ctx: *mut qjs::JSContext,
    table: *mut qjs::JSPropertyEnum,
    len: u32,
}

impl PropertyNames {
    fn of(ctx: *mut qjs::JSContext, object: qjs::JSValue) -> Result<Self, Stop> {
        let mut table = std::ptr::null_mut();
        let mut len = 0;
        let flags = (qjs::JS_GPN_STRING_MASK | qjs::JS_GPN_ENUM_ONLY) as std::ffi::c_int;
        // SAFETY: `object` is a live object; the table is owned by the result.
        if unsafe { qjs::JS_GetOwnPropertyNames(ctx, &mut table, &mut len, object, flags) } < 0 {
            return Err(Stop::Thrown);
        }
        Ok(PropertyNames { ctx, table, len })
    }

    fn atoms(&self) -> impl Iterator<Item = qjs::JSAtom> + '_ {
        // SAFETY: the table holds `len` entries until dropped.
        let entries = if self.len == 0 {
            &[][..]
        } else {
            unsafe { std::slice::from_raw_parts(self.table, self.len as usize) }
        };
        entries.iter().map(|entry| entry.atom)
    }
}

impl Drop for PropertyNames {
    fn drop(&mut self) {
        // SAFETY: the table and its atoms came from JS_GetOwnPropertyNames and are freed once.
        unsafe { qjs::JS_FreePropertyEnum(self.ctx, self.table, self.len) };
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
    let bytes = text.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Eight bytes at a time while none of them needs escaping (most text has no escapes at all).
        if let Some(word) = bytes.get(i..i + 8)
            && !needs_escape(u64::from_le_bytes(word.try_into().unwrap_or_default()))
        {
            i += 8;
            continue;
        }
        let byte = bytes[i];
        let escape = ESCAPES[byte as usize];
        if escape != 0 {
            out.push_str(&text[start..i]);
            if escape == b'u' {
                let _ = write!(out, "\\u{byte:04x}");
            } else {
                out.push('\\');
                out.push(escape as char);
            }
            start = i + 1;
        }
        i += 1;
    }
    out.push_str(&text[start..]);
    out.push('"');
}

/// Whether any of the eight bytes of `word` is a control character, a quote or a backslash. (It may say
/// yes for a byte after a real one; it never says no when there is one.)
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte below n (n <= 0x80) makes (byte - n) borrow into its high bit while its own high bit is clear.
    let below = |word: u64, n: u64| word.wrapping_sub(ONES * n) & !word & HIGH;
    let zero_byte = |word: u64| below(word, 1);
    below(word, 0x20)
        | zero_byte(word ^ (ONES * u64::from(b'"')))
        | zero_byte(word ^ (ONES * u64::from(b'\\')))
        != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use rquickjs::{Array, CatchResultExt, Context, Runtime};

    /// `records` checked as a save checks them, then written.
    fn batch_of<'js>(ctx: &Ctx<'js>, records: &Array<'js>) -> rquickjs::Result<RecordBatch> {
        let checked = super::super::validate::checked_records(
            ctx,
            "batchSave",
            "Item",
            records,
            &mut |_| {},
        )?;
        record_batch(ctx, (SaveOp::Save, true), checked, (1 << 20, usize::MAX))
    }

    /// Each record of `script` (a JS expression for an array) written here and by JSON.stringify.
    fn both(script: &str) -> Vec<(String, String)> {
        let runtime = Runtime::new().unwrap();
        let context = Context::full(&runtime).unwrap();
        context.with(|ctx| {
            let records: Array = ctx.eval(script).unwrap();
            let batch = batch_of(&ctx, &records).unwrap();
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
            let error = batch_of(&ctx, &records).catch(&ctx).unwrap_err();
            error.to_string()
        })
    }

    #[test]
    fn records_sharing_one_string_cannot_add_up_past_the_batch_limit() {
        // One 64 KB string in the heap, referenced by 100 records: 6.4 MB of JSON outside it.
        let runtime = Runtime::new().unwrap();
        let context = Context::full(&runtime).unwrap();
        let error = context.with(|ctx| {
            let records: Array = ctx
                .eval("const s = 'x'.repeat(65536); Array.from({ length: 100 }, (_, i) => ({ id: String(i), s }))")
                .unwrap();
            let checked = super::super::validate::checked_records(
                &ctx,
                "batchSave",
                "Item",
                &records,
                &mut |_| {},
            )
            .unwrap();
            record_batch(&ctx, (SaveOp::Save, true), checked, (1 << 20, 1 << 20))
                .catch(&ctx)
                .unwrap_err()
                .to_string()
        });
        assert!(
            error.contains(
                "nango.batchSave: the batch is larger than 1048576 bytes as JSON at the record at index 15 (the limit set by nango.script_memory_limit)"
            ),
            "{error}"
        );
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
    fn strings_are_escaped_at_any_position() {
        let characters = (0u8..0x80)
            .map(char::from)
            .chain(['é', '中', '😀', '\u{2028}']);
        for character in characters {
            for position in 0..20 {
                let text: String = (0..24)
                    .map(|i| if i == position { character } else { 'a' })
                    .collect();
                let mut quoted = String::new();
                quote(&text, &mut quoted);
                assert_eq!(quoted, serde_json::to_string(&text).unwrap(), "{text:?}");
            }
        }
    }

    #[test]
    fn ids_are_read_as_strings_and_hashes_are_taken() {
        let runtime = Runtime::new().unwrap();
        let context = Context::full(&runtime).unwrap();
        context.with(|ctx| {
            let records: Array = ctx.eval(r#"[{ id: 12, x: 1 }, { id: 'a' }]"#).unwrap();
            let batch = batch_of(&ctx, &records).unwrap();
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
