//! A batch's records checked before anything of it is written, as the SDK's `batchSave`, `batchUpdate`
//! and `batchDelete` check them: each record is an object (not an array, not a function) with an `id` that
//! is neither `undefined`, `null` nor `''`, read as a string (`String(id)`) of at most [`MAX_ID_LENGTH`]
//! UTF-16 units. A `_nango_metadata` field is deleted from the record. A repeated id keeps its last
//! occurrence, in that occurrence's place, and each repetition is reported through `warn`.
//!
//! The first record that fails throws an `Error` naming its index; the batch is then not written at all.
//! A batch of more than [`MAX_BATCH_RECORDS`] records fails as a whole, before any record is read.
//! Done here rather than in the SDK's JavaScript because a page of records passes through it on every
//! save: in JS, a closure call and a `Map` entry per record cost about a twentieth of a re-sync.

use rquickjs::{Array, Atom, Coerced, Ctx, Exception, Value, qjs};
use rustc_hash::FxHashMap;

/// The longest id, in UTF-16 units (JavaScript's `length`), as Nango allows.
pub const MAX_ID_LENGTH: usize = 255;

/// The most records one call may pass. Nango saves pages of a few hundred; a batch this size already
/// holds a few hundred megabytes of JSON, which the store sends to Postgres in one statement.
pub const MAX_BATCH_RECORDS: usize = 100_000;

/// A record that passed, with its id as a string and its index in the batch as the script passed it.
pub struct CheckedRecord<'js> {
    pub index: usize,
    pub id: String,
    pub record: Value<'js>,
}

/// The records of `records` that are written, in order; throws on the first one that fails.
pub fn checked_records<'js>(
    ctx: &Ctx<'js>,
    method: &str,
    model: &str,
    records: &Array<'js>,
    warn: &mut dyn FnMut(&str),
) -> rquickjs::Result<Vec<CheckedRecord<'js>>> {
    let id_name = Atom::from_str(ctx.clone(), "id")?;
    let metadata_name = Atom::from_str(ctx.clone(), "_nango_metadata")?;
    let fail = |index: usize, what: &str| {
        Exception::throw_message(
            ctx,
            &format!("nango.{method}: record at index {index} {what}"),
        )
    };
    // The length is the script's to choose (`new Array(2 ** 31 - 1)`, 2 ** 32 - 1, or whatever a Proxy
    // answers): read as `JS_GetLength` reads it (never a panic, whatever it is) and checked before anything
    // is sized by it.
    let mut length = 0i64;
    // SAFETY: `records` is a live object of this context.
    if unsafe { qjs::JS_GetLength(ctx.as_raw().as_ptr(), records.as_raw(), &mut length) } < 0 {
        return Err(rquickjs::Error::Exception);
    }
    let length = usize::try_from(length).unwrap_or(usize::MAX);
    if length > MAX_BATCH_RECORDS {
        return Err(Exception::throw_range(
            ctx,
            &format!(
                "nango.{method}: a batch holds at most {MAX_BATCH_RECORDS} records and this one has {length}; save in smaller batches"
            ),
        ));
    }
    let mut kept: Vec<Option<CheckedRecord<'js>>> = Vec::with_capacity(length);
    // Where each id was last seen in `kept`.
    let mut last_seen: FxHashMap<String, usize> = FxHashMap::default();
    for index in 0..length {
        let record: Value = records.get(index)?;
        let object = match record.as_object() {
            Some(object) if !record.is_array() && !record.is_function() => object,
            _ => return Err(fail(index, "is not an object")),
        };
        let id: Value = object.get(id_name.clone())?;
        // `''` is no id; an id that only reads as '' (an empty array) passes, as the check is `id === ''`.
        let id = match id.as_string() {
            Some(text) => Some(text.to_string()?).filter(|text| !text.is_empty()),
            None if id.is_undefined() || id.is_null() => None,
            None => Some(id.get::<Coerced<String>>()?.0),
        };
        let Some(id) = id else {
            return Err(fail(index, "has no id field"));
        };
        // UTF-8 never has fewer bytes than UTF-16 has units, so most ids need no count.
        if id.len() > MAX_ID_LENGTH && id.encode_utf16().count() > MAX_ID_LENGTH {
            return Err(fail(
                index,
                &format!("has an id longer than {MAX_ID_LENGTH} characters"),
            ));
        }
        if object.contains_key(metadata_name.clone())? {
            object.remove(metadata_name.clone())?;
        }
        if let Some(previous) = last_seen.insert(id.clone(), kept.len()) {
            warn(&format!(
                "Found duplicate id '{id}' for model {model} in one batch; the last occurrence is kept."
            ));
            kept[previous] = None;
        }
        kept.push(Some(CheckedRecord { index, id, record }));
    }
    Ok(kept.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use rquickjs::{CatchResultExt, Context, Runtime};

    use super::*;

    /// The ids kept from `script` (a JS expression for an array) and the warnings, or the error.
    fn check(script: &str) -> Result<(Vec<String>, Vec<String>), String> {
        let runtime = Runtime::new().unwrap();
        let context = Context::full(&runtime).unwrap();
        context.with(|ctx| {
            let records: Array = ctx.eval(script).unwrap();
            let mut warnings = Vec::new();
            let checked = checked_records(&ctx, "batchSave", "Item", &records, &mut |w| {
                warnings.push(w.to_string())
            })
            .catch(&ctx)
            .map_err(|e| e.to_string())?;
            Ok((checked.into_iter().map(|c| c.id).collect(), warnings))
        })
    }

    #[test]
    fn each_failure_names_its_index() {
        let cases = [
            (
                "[{ id: 'a' }, { title: 'x' }]",
                "record at index 1 has no id field",
            ),
            ("[{ id: null }]", "record at index 0 has no id field"),
            (
                "[{ id: 'a' }, { id: '' }]",
                "record at index 1 has no id field",
            ),
            ("[{ id: 'a' }, 5]", "record at index 1 is not an object"),
            ("[null]", "record at index 0 is not an object"),
            ("[{ id: 'a' }, [1]]", "record at index 1 is not an object"),
            ("[() => 1]", "record at index 0 is not an object"),
            (
                "[{ id: 'a' }, { id: 'b' }, { id: 'x'.repeat(256) }]",
                "record at index 2 has an id longer than 255 characters",
            ),
            (
                "[{ id: '😀'.repeat(128) }]",
                "record at index 0 has an id longer than 255 characters",
            ),
        ];
        for (script, message) in cases {
            let error = check(script).unwrap_err();
            assert!(
                error.contains(&format!("nango.batchSave: {message}")),
                "{script}: {error}"
            );
        }
    }

    #[test]
    fn ids_read_as_strings_and_lengths_count_utf16_units() {
        let (ids, _) =
            check("[{ id: 12 }, { id: 'é'.repeat(255) }, { id: [] }, { id: 'x'.repeat(255) }]")
                .unwrap();
        assert_eq!(
            ids,
            [
                "12".to_string(),
                "é".repeat(255),
                String::new(),
                "x".repeat(255)
            ]
        );
    }

    #[test]
    fn a_repeated_id_keeps_its_last_occurrence_in_its_place_with_a_warning() {
        let (ids, warnings) =
            check("[{ id: 'a' }, { id: 'b' }, { id: 'a' }, { id: 'c' }, { id: 'a' }]").unwrap();
        assert_eq!(ids, ["b", "c", "a"]);
        assert_eq!(warnings.len(), 2);
        assert_eq!(
            warnings[0],
            "Found duplicate id 'a' for model Item in one batch; the last occurrence is kept."
        );
    }

    #[test]
    fn the_metadata_field_is_deleted_from_the_record() {
        let runtime = Runtime::new().unwrap();
        let context = Context::full(&runtime).unwrap();
        context.with(|ctx| {
            let records: Array = ctx
                .eval("globalThis.r = { id: 'a', _nango_metadata: { x: 1 }, keep: 1 }; [r]")
                .unwrap();
            let checked =
                checked_records(&ctx, "batchSave", "Item", &records, &mut |_| {}).unwrap();
            assert_eq!(checked.len(), 1);
            let left: String = ctx.eval("JSON.stringify(globalThis.r)").unwrap();
            assert_eq!(left, r#"{"id":"a","keep":1}"#);
        });
    }
}
