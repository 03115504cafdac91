//! Models of zero-YAML projects, read from the JSON Schema that zod's `z.toJSONSchema` (draft-7) writes for
//! each model, into the same [`Model`] the `nango.yaml` grammar gives, so that an equivalent model gets the
//! same typed view and the same record checks whichever format declared it.
//!
//! | JSON Schema                                              | type                                  |
//! |----------------------------------------------------------|---------------------------------------|
//! | `{type: string}`                                         | `String`                              |
//! | `{type: string, format: date-time \| date}`              | `Date` (zod's `z.date()` is written so)|
//! | `{type: number \| integer}` (bounds ignored)             | `Number`                              |
//! | `{type: boolean}`, `{type: null}`                        | `Boolean`, `Null`                     |
//! | `{}`, `true`                                             | `Any`                                 |
//! | `{not: {}}`, `false`                                     | `Undefined` (yaml's `never`)          |
//! | `{type: object}` without `properties`                    | `Object` (a record, any object)       |
//! | `{type: object, properties}`                             | `Nested` (fields in `properties` order, optional unless `required`; `additionalProperties` not kept) |
//! | `{type: object, properties: {}, additionalProperties: X}`| `Object` (`z.looseObject({})`)        |
//! | `{type: array, items: X}`                                | `Array` of X; no `items`: of `Any`    |
//! | tuple (`items: [..]`, `prefixItems`)                     | `Array` of the union of the distinct item types (`Any` if none) |
//! | `const: v`                                               | `Literal` (`null` → `Null`)           |
//! | `enum: [a, b]`                                           | `Union` of `Literal`s (one value: that `Literal`) |
//! | `anyOf`/`oneOf`, `type: [a, b]`                          | `Union`, nested unions flattened (`.nullable()` → `Union [X, Null]`) |
//! | `allOf`                                                  | its one member; objects merged into one `Nested`; members all alike: that type; else `Any` |
//! | `$ref: "#"` (the model itself, recursive)                | `Model` named after the model         |
//! | `$ref` to another place of the document                  | what it points to; `Any` when recursive or missing |
//! | anything else                                            | `Any`                                 |
//!
//! At the top, an object's properties become the model's fields and its `additionalProperties` schema (not
//! `false`) the model's dynamic keys (yaml's `__string`); an object without `properties` (`z.record`) is a
//! model with no fields whose dynamic keys have the `additionalProperties` type (`Any` when absent). Any
//! other top-level schema (an action's `z.string()`, `z.array(..)`, a union, `z.void()` written as
//! `{type: null}`) is a model with no fields and no dynamic keys: there is no column to give it. Its type is
//! what [`type_from_json_schema`] reads.
//!
//! The schema comes from user code, so everything is bounded: a document nested deeper than
//! [`MAX_JSON_DEPTH`] levels, a type deeper than [`MAX_TYPE_DEPTH`] levels (a `$ref` counts as a level) or one
//! with more than [`MAX_TYPES`] types in all (`$ref`s expanded) is refused with an error; nothing recurses
//! past those limits.
//!
//! The order of `properties` is the order of the view's columns. `serde_json` is built here without
//! `preserve_order`, so a [`serde_json::Value`] has its keys sorted: [`model_from_json_schema_text`], which
//! reads the JSON text itself, keeps zod's order, and is the one to use for the columns.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};

use super::models::{Field, FieldType, Model};

/// The deepest JSON document read (as deep as `serde_json` reads JSON text).
pub const MAX_JSON_DEPTH: usize = 128;

/// The deepest type read: a nested object's fields, an array's items, a union's members and the target of a
/// `$ref` are each one level below.
pub const MAX_TYPE_DEPTH: usize = 64;

/// The most types (fields included) one model may hold once its `$ref`s are expanded.
pub const MAX_TYPES: usize = 100_000;

/// Reads a model from the JSON Schema zod produced for it. Key order is the [`serde_json::Value`]'s (sorted
/// in this build); see [`model_from_json_schema_text`] to keep zod's field order.
pub fn model_from_json_schema(name: &str, schema: &serde_json::Value) -> Result<Model, String> {
    let json = Json::from_value(schema, 0).map_err(|e| located(name, e))?;
    Reader::new(name, &json).model()
}

/// [`model_from_json_schema`] from the schema's JSON text (as `JSON.stringify` writes it), with the fields
/// in the order of `properties` there. A key given twice keeps its first place and its last value, as
/// `JSON.parse` does.
pub fn model_from_json_schema_text(name: &str, text: &str) -> Result<Model, String> {
    let json = Json::parse(text).map_err(|e| located(name, e))?;
    Reader::new(name, &json).model()
}

/// The type a JSON Schema describes, whatever it is (an action's input or output need not be an object);
/// `name` is the model's, used for a `$ref` to the whole schema and in errors.
pub fn type_from_json_schema(name: &str, schema: &serde_json::Value) -> Result<FieldType, String> {
    let json = Json::from_value(schema, 0).map_err(|e| located(name, e))?;
    Reader::new(name, &json).root_type()
}

fn located(model: &str, message: String) -> String {
    format!("model {model}: its JSON Schema {message}")
}

/// A JSON value whose objects keep their key order.
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    fn parse(text: &str) -> Result<Json, String> {
        // serde_json refuses nesting deeper than 128 levels (MAX_JSON_DEPTH) with an error.
        serde_json::from_str(text).map_err(|e| format!("is not valid JSON: {e}"))
    }

    fn from_value(value: &serde_json::Value, depth: usize) -> Result<Json, String> {
        use serde_json::Value;
        if depth >= MAX_JSON_DEPTH {
            return Err(format!("nests deeper than {MAX_JSON_DEPTH} levels"));
        }
        Ok(match value {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Number(n) => Json::Number(n.clone()),
            Value::String(s) => Json::String(s.clone()),
            Value::Array(items) => Json::Array(
                items
                    .iter()
                    .map(|v| Json::from_value(v, depth + 1))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => Json::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), Json::from_value(v, depth + 1)?)))
                    .collect::<Result<_, String>>()?,
            ),
        })
    }

    /// The value of `key` in an object.
    fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    fn as_array(&self) -> Option<&[Json]> {
        match self {
            Json::Array(items) => Some(items),
            _ => None,
        }
    }

    /// The literal type of a `const` or `enum` value.
    fn literal(&self) -> FieldType {
        let value = match self {
            Json::Null => return FieldType::Null,
            Json::Bool(b) => serde_json::Value::Bool(*b),
            Json::Number(n) => serde_json::Value::Number(n.clone()),
            Json::String(s) => serde_json::Value::String(s.clone()),
            Json::Array(_) | Json::Object(_) => return FieldType::Any,
        };
        FieldType::Literal { value }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, b: bool) -> Result<Json, E> {
        Ok(Json::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Json, E> {
        Ok(Json::Number(n.into()))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Json, E> {
        Ok(Json::Number(n.into()))
    }
    fn visit_f64<E>(self, n: f64) -> Result<Json, E> {
        Ok(serde_json::Number::from_f64(n).map_or(Json::Null, Json::Number))
    }
    fn visit_str<E>(self, s: &str) -> Result<Json, E> {
        Ok(Json::String(s.to_string()))
    }
    fn visit_string<E>(self, s: String) -> Result<Json, E> {
        Ok(Json::String(s))
    }
    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut entries: Vec<(String, Json)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        while let Some((key, value)) = map.next_entry::<String, Json>()? {
            match index.get(&key) {
                Some(&at) => entries[at].1 = value,
                None => {
                    index.insert(key.clone(), entries.len());
                    entries.push((key, value));
                }
            }
        }
        Ok(Json::Object(entries))
    }
}

/// Reads the types of one model's schema.
struct Reader<'a> {
    name: &'a str,
    root: &'a Json,
    /// Types still allowed (see [`MAX_TYPES`]).
    budget: usize,
    /// The `$ref`s being expanded, innermost last: a `$ref` to one of them is recursive.
    expanding: Vec<&'a str>,
    /// Objects met on the way to a `$ref`'s target, indexed by key once (a walk over a large object is
    /// then no scan per `$ref`).
    indexes: HashMap<*const Json, HashMap<&'a str, &'a Json>>,
}

impl<'a> Reader<'a> {
    fn new(name: &'a str, root: &'a Json) -> Self {
        Reader {
            name,
            root,
            budget: MAX_TYPES,
            expanding: vec!["#"],
            indexes: HashMap::new(),
        }
    }

    fn error(&self, message: String) -> String {
        located(self.name, message)
    }

    fn model(mut self) -> Result<Model, String> {
        let root = self.object_root(self.root, 0)?;
        let (fields, dynamic) = match root {
            Some(node) if node.get("properties").is_some() => self.object(node, 0)?,
            Some(node) => {
                let dynamic = match node.get("additionalProperties") {
                    Some(Json::Bool(false)) => None,
                    None => Some(FieldType::Any),
                    Some(schema) => Some(self.ty(schema, 1)?),
                };
                (Vec::new(), dynamic)
            }
            None => {
                // Not an object: read anyway, so that a schema past the limits is refused whatever it is.
                self.ty(self.root, 0)?;
                (Vec::new(), None)
            }
        };
        Ok(Model {
            name: self.name.to_string(),
            fields,
            dynamic,
        })
    }

    fn root_type(mut self) -> Result<FieldType, String> {
        self.ty(self.root, 0)
    }

    /// The object schema the top of the document stands for, through `$ref`s and an `allOf` of one
    /// member (how zod writes an optional `$ref`); `None` when it is no object.
    fn object_root(&mut self, node: &'a Json, depth: usize) -> Result<Option<&'a Json>, String> {
        if depth > MAX_TYPE_DEPTH {
            return Err(self.error(format!("nests deeper than {MAX_TYPE_DEPTH} types")));
        }
        if let Some(reference) = node.get("$ref").and_then(Json::as_str) {
            if self.expanding.contains(&reference) {
                return Ok(None);
            }
            let Some(target) = self.resolve(reference) else {
                return Ok(None);
            };
            self.expanding.push(reference);
            let found = self.object_root(target, depth + 1);
            self.expanding.pop();
            return found;
        }
        if let Some([only]) = node.get("allOf").and_then(Json::as_array) {
            return self.object_root(only, depth + 1);
        }
        Ok(is_object(node).then_some(node))
    }

    /// Counts one more type against the budget, and checks the depth.
    fn spend(&mut self, depth: usize) -> Result<(), String> {
        if depth > MAX_TYPE_DEPTH {
            return Err(self.error(format!("nests deeper than {MAX_TYPE_DEPTH} types")));
        }
        self.budget = self
            .budget
            .checked_sub(1)
            .ok_or_else(|| located(self.name, format!("holds more than {MAX_TYPES} types")))?;
        Ok(())
    }

    fn ty(&mut self, node: &'a Json, depth: usize) -> Result<FieldType, String> {
        self.spend(depth)?;
        let entries = match node {
            Json::Object(entries) => entries,
            Json::Bool(true) => return Ok(FieldType::Any),
            Json::Bool(false) => return Ok(FieldType::Undefined),
            _ => return Ok(FieldType::Any),
        };
        if entries.is_empty() {
            return Ok(FieldType::Any);
        }
        // Draft 7: the other keywords beside a `$ref` are ignored.
        if let Some(reference) = node.get("$ref") {
            return self.reference(reference, depth);
        }
        if let Some(value) = node.get("const") {
            return Ok(value.literal());
        }
        if let Some(values) = node.get("enum").and_then(Json::as_array) {
            return Ok(match values {
                [] => FieldType::Undefined,
                [one] => one.literal(),
                values => {
                    for _ in values {
                        self.spend(depth + 1)?;
                    }
                    FieldType::Union {
                        members: values.iter().map(Json::literal).collect(),
                    }
                }
            });
        }
        if let Some(members) = node
            .get("anyOf")
            .or_else(|| node.get("oneOf"))
            .and_then(Json::as_array)
        {
            let members = members
                .iter()
                .map(|m| self.ty(m, depth + 1))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(union(members));
        }
        if let Some(members) = node.get("allOf").and_then(Json::as_array) {
            return self.all_of(members, depth);
        }
        if node
            .get("not")
            .is_some_and(|n| matches!(n, Json::Object(e) if e.is_empty()))
        {
            return Ok(FieldType::Undefined);
        }
        match node.get("type") {
            Some(Json::String(name)) => self.typed(node, name, depth),
            Some(Json::Array(names)) => {
                let mut members = Vec::new();
                for name in names {
                    self.spend(depth + 1)?;
                    members.push(match name {
                        Json::String(name) => self.typed(node, name, depth + 1)?,
                        _ => FieldType::Any,
                    });
                }
                Ok(union(members))
            }
            Some(_) => Ok(FieldType::Any),
            None if is_object(node) => self.typed(node, "object", depth),
            None if node.get("items").is_some() || node.get("prefixItems").is_some() => {
                self.typed(node, "array", depth)
            }
            None => Ok(FieldType::Any),
        }
    }

    /// The type of a schema whose `type` is `name`.
    fn typed(&mut self, node: &'a Json, name: &str, depth: usize) -> Result<FieldType, String> {
        Ok(match name {
            "string" => match node.get("format").and_then(Json::as_str) {
                Some("date-time" | "date") => FieldType::Date,
                _ => FieldType::String,
            },
            "number" | "integer" => FieldType::Number,
            "boolean" => FieldType::Boolean,
            "null" => FieldType::Null,
            // A nested object has no place for dynamic keys: those of one with fields are not kept, and
            // one with no fields but dynamic keys (`z.looseObject({})`) is any object.
            "object"
                if has_fields(node)
                    || node.get("properties").is_some() && !has_dynamic_keys(node) =>
            {
                FieldType::Nested {
                    fields: self.object(node, depth)?.0,
                }
            }
            "object" => FieldType::Object,
            "array" => FieldType::Array {
                items: Box::new(self.items(node, depth)?),
            },
            _ => FieldType::Any,
        })
    }

    /// The fields of an object schema with `properties`, and the type of its other keys.
    fn object(
        &mut self,
        node: &'a Json,
        depth: usize,
    ) -> Result<(Vec<Field>, Option<FieldType>), String> {
        let required: HashSet<&str> = node
            .get("required")
            .and_then(Json::as_array)
            .unwrap_or_default()
            .iter()
            .filter_map(Json::as_str)
            .collect();
        let mut fields = Vec::new();
        if let Some(Json::Object(properties)) = node.get("properties") {
            for (name, schema) in properties {
                fields.push(Field {
                    name: name.clone(),
                    optional: !required.contains(name.as_str()),
                    ty: self.ty(schema, depth + 1)?,
                });
            }
        }
        let dynamic = match node.get("additionalProperties") {
            Some(schema) if has_dynamic_keys(node) => Some(self.ty(schema, depth + 1)?),
            _ => None,
        };
        Ok((fields, dynamic))
    }

    /// The item type of an array schema.
    fn items(&mut self, node: &'a Json, depth: usize) -> Result<FieldType, String> {
        let tuple = match (node.get("prefixItems"), node.get("items")) {
            (Some(Json::Array(items)), _) | (None, Some(Json::Array(items))) => items,
            (_, Some(items)) => return self.ty(items, depth + 1),
            _ => return Ok(FieldType::Any),
        };
        let rest = match (node.get("prefixItems"), node.get("additionalItems")) {
            // In draft 2020-12 `items` beside `prefixItems` is the type of the other items.
            (Some(_), _) => node.get("items"),
            (None, rest) => rest,
        };
        // Distinct types, told apart by their JSON (a scan per item would be quadratic).
        let mut members: Vec<FieldType> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        for item in tuple
            .iter()
            .chain(rest.filter(|r| **r != Json::Bool(false)))
        {
            let ty = self.ty(item, depth + 1)?;
            if seen.insert(serde_json::to_string(&ty).unwrap_or_default()) {
                members.push(ty);
            }
        }
        Ok(union(members))
    }

    /// `allOf`: its one member, objects merged, members of one type that type, else `Any`.
    fn all_of(&mut self, members: &'a [Json], depth: usize) -> Result<FieldType, String> {
        let types = members
            .iter()
            .map(|m| self.ty(m, depth + 1))
            .collect::<Result<Vec<_>, _>>()?;
        let Some(first) = types.first() else {
            return Ok(FieldType::Any);
        };
        if types.iter().all(|t| t == first) {
            return Ok(first.clone());
        }
        let mut merged: Vec<Field> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for ty in types {
            let FieldType::Nested { fields } = ty else {
                return Ok(FieldType::Any);
            };
            for field in fields {
                match index.get(&field.name) {
                    // Both must hold: required when either requires it; two different types, Any.
                    Some(&at) => {
                        let earlier = &mut merged[at];
                        earlier.optional &= field.optional;
                        if earlier.ty != field.ty {
                            earlier.ty = FieldType::Any;
                        }
                    }
                    None => {
                        index.insert(field.name.clone(), merged.len());
                        merged.push(field);
                    }
                }
            }
        }
        Ok(FieldType::Nested { fields: merged })
    }

    /// The type a `$ref` points to; `"#"` (the model itself) is the model by name.
    fn reference(&mut self, reference: &'a Json, depth: usize) -> Result<FieldType, String> {
        let Some(reference) = reference.as_str() else {
            return Ok(FieldType::Any);
        };
        if reference == "#" {
            return Ok(FieldType::Model {
                name: self.name.to_string(),
            });
        }
        if self.expanding.contains(&reference) {
            return Ok(FieldType::Any);
        }
        let Some(target) = self.resolve(reference) else {
            return Ok(FieldType::Any);
        };
        self.expanding.push(reference);
        let ty = self.ty(target, depth + 1);
        self.expanding.pop();
        ty
    }

    /// The node a JSON pointer in the document (`#/definitions/User`) points to.
    fn resolve(&mut self, reference: &str) -> Option<&'a Json> {
        let pointer = reference.strip_prefix('#')?;
        if pointer.is_empty() {
            return Some(self.root);
        }
        let mut node = self.root;
        for token in pointer.strip_prefix('/')?.split('/') {
            let token = token.replace("~1", "/").replace("~0", "~");
            node = match node {
                Json::Object(entries) => {
                    let index = self
                        .indexes
                        .entry(node as *const Json)
                        .or_insert_with(|| entries.iter().map(|(k, v)| (k.as_str(), v)).collect());
                    index.get(token.as_str()).copied()?
                }
                Json::Array(items) => items.get(token.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(node)
    }
}

/// Whether an object schema has properties.
fn has_fields(node: &Json) -> bool {
    matches!(node.get("properties"), Some(Json::Object(properties)) if !properties.is_empty())
}

/// Whether an object schema allows keys besides its properties (`additionalProperties` not `false`).
fn has_dynamic_keys(node: &Json) -> bool {
    !matches!(
        node.get("additionalProperties"),
        None | Some(Json::Bool(false))
    )
}

/// Whether a schema describes an object.
fn is_object(node: &Json) -> bool {
    match node.get("type") {
        Some(Json::String(t)) => t == "object",
        Some(_) => false,
        None => node.get("properties").is_some() || node.get("additionalProperties").is_some(),
    }
}

/// The union of `members`, nested unions flattened as yaml's `a | b | c` is; one member is itself.
fn union(members: Vec<FieldType>) -> FieldType {
    let mut flat = Vec::new();
    for member in members {
        match member {
            FieldType::Union { members } => flat.extend(members),
            other => flat.push(other),
        }
    }
    match <[FieldType; 1]>::try_from(flat) {
        Ok([one]) => one,
        Err(flat) if flat.is_empty() => FieldType::Any,
        Err(flat) => FieldType::Union { members: flat },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Schemas written by the bundled zod, as a deploy converts a model (scripts/zod-json-schema-fixtures.mjs).
    const ZOD: &str = include_str!("../../tests/fixtures/zod-json-schema.json");

    /// The model zod's schema `case` stands for, read from the fixture's text (zod's key order).
    fn zod(case: &str) -> Model {
        let all = Json::parse(ZOD).unwrap();
        let schema = all.get(case).unwrap_or_else(|| panic!("no fixture {case}"));
        Reader::new(case, schema).model().unwrap()
    }

    fn field<'m>(model: &'m Model, name: &str) -> &'m Field {
        model
            .field(name)
            .unwrap_or_else(|| panic!("no field {name} in {model:?}"))
    }

    fn ty<'m>(model: &'m Model, name: &str) -> &'m FieldType {
        &field(model, name).ty
    }

    fn literal(value: serde_json::Value) -> FieldType {
        FieldType::Literal { value }
    }

    fn array(items: FieldType) -> FieldType {
        FieldType::Array {
            items: Box::new(items),
        }
    }

    fn union<const N: usize>(members: [FieldType; N]) -> FieldType {
        FieldType::Union {
            members: members.into(),
        }
    }

    fn names(fields: &[Field]) -> Vec<&str> {
        fields.iter().map(|f| f.name.as_str()).collect()
    }

    fn yaml_model(yaml: &str, name: &str) -> Model {
        let yaml: serde_yaml::Mapping = serde_yaml::from_str(yaml).unwrap();
        let mut models = super::super::models::parse_models(&yaml, &mut Vec::new()).unwrap();
        models.remove(name).unwrap()
    }

    #[test]
    fn a_zod_model_reads_as_the_equivalent_yaml_model_and_gets_the_same_view() {
        let mut from_zod = zod("issue");
        from_zod.name = "Issue".into();
        let from_yaml = yaml_model(
            "Issue:\n  id: string\n  number: integer\n  title: string\n  closed?: boolean\n  created_at: date\n  \
             labels: string[]\n  state: open | closed\n  repo:\n    owner: string\n    name: string\n  \
             assignee: string | null\n  meta: object\n  kind: issue\n",
            "Issue",
        );
        assert_eq!(from_zod, from_yaml);
        let view = |model: Model| {
            let models = [(model.name.clone(), model)].into();
            crate::records::views::plan_views(&models, &Default::default(), &Default::default())
                .unwrap()
                .0
        };
        assert_eq!(view(from_zod), view(from_yaml));
    }

    #[test]
    fn fields_keep_the_order_zod_gives_them() {
        let model = zod("field_order");
        assert_eq!(names(&model.fields), ["zeta", "alpha", "mid"]);
        // A serde_json::Value sorts its keys in this build: the text reader is what keeps the order.
        let value: serde_json::Value = serde_json::from_str(ZOD).unwrap();
        let sorted = model_from_json_schema("M", &value["field_order"]).unwrap();
        assert_eq!(names(&sorted.fields), ["alpha", "mid", "zeta"]);
        let text = serde_json::to_string(&value["field_order"]).unwrap();
        assert_eq!(
            model_from_json_schema_text("M", &text).unwrap().fields,
            sorted.fields
        );
    }

    #[test]
    fn optional_and_nullable() {
        let model = zod("optional_nullable");
        assert!(!field(&model, "id").optional);
        assert!(field(&model, "title").optional);
        assert_eq!(ty(&model, "title"), &FieldType::String);
        assert!(!field(&model, "closed").optional);
        assert_eq!(
            ty(&model, "closed"),
            &union([FieldType::Boolean, FieldType::Null])
        );
        // .nullish(): optional and nullable.
        assert!(field(&model, "note").optional);
        assert_eq!(
            ty(&model, "note"),
            &union([FieldType::String, FieldType::Null])
        );
        // anyOf [X, {type: null}]
        assert_eq!(
            ty(&model, "owner"),
            &union([
                FieldType::Nested {
                    fields: vec![Field {
                        name: "a".into(),
                        optional: false,
                        ty: FieldType::String
                    }]
                },
                FieldType::Null
            ])
        );
        assert_eq!(
            ty(&model, "due"),
            &union([FieldType::Date, FieldType::Null])
        );
        assert_eq!(
            ty(&model, "state"),
            &union([literal(json!("a")), literal(json!("b")), FieldType::Null])
        );
    }

    #[test]
    fn numbers_integers_with_bounds_and_unrepresentable_bigint() {
        let model = zod("numbers");
        for name in ["n", "bounded", "f", "i32"] {
            assert_eq!(ty(&model, name), &FieldType::Number, "{name}");
        }
        // z.bigint() cannot be written in JSON Schema: `unrepresentable: 'any'` writes {}.
        assert_eq!(ty(&model, "big"), &FieldType::Any);
    }

    #[test]
    fn enums_and_literals() {
        let model = zod("literals");
        assert_eq!(
            ty(&model, "state"),
            &union([literal(json!("open")), literal(json!("closed"))])
        );
        assert_eq!(ty(&model, "one"), &literal(json!("only")));
        assert_eq!(ty(&model, "text"), &literal(json!("x")));
        assert_eq!(ty(&model, "num"), &literal(json!(42)));
        assert_eq!(ty(&model, "yes"), &literal(json!(true)));
        assert_eq!(
            ty(&model, "several"),
            &union([literal(json!("a")), literal(json!("b"))])
        );
        assert_eq!(
            ty(&model, "numeric_enum"),
            &union([literal(json!(1)), literal(json!(2))])
        );
        assert_eq!(
            ty(&model, "mixed"),
            &union([literal(json!(1)), literal(json!("a"))])
        );
        assert_eq!(ty(&model, "nothing"), &FieldType::Null);
    }

    #[test]
    fn records_and_dynamic_keys() {
        // z.record(z.string(), z.number()) as the model: no fields, number values under any key.
        let model = zod("record_top");
        assert!(model.fields.is_empty());
        assert_eq!(model.dynamic, Some(FieldType::Number));
        // .catchall(X) and looseObject: yaml's `__string: X`.
        let model = zod("catchall");
        assert_eq!(names(&model.fields), ["id"]);
        assert_eq!(model.dynamic, Some(FieldType::Number));
        assert_eq!(zod("loose").dynamic, Some(FieldType::Any));
        // z.object() closes the object: no dynamic keys.
        assert_eq!(zod("issue").dynamic, None);
        // A record as a field is any object; z.object({}) an object with no fields.
        let model = zod("records");
        assert_eq!(ty(&model, "counts"), &FieldType::Object);
        assert_eq!(ty(&model, "anything"), &FieldType::Object);
        assert_eq!(
            ty(&model, "empty"),
            &FieldType::Nested { fields: Vec::new() }
        );
        assert_eq!(ty(&model, "open"), &FieldType::Object);
        assert!(
            matches!(ty(&model, "counted"), FieldType::Nested { fields } if names(fields) == ["id"])
        );
    }

    #[test]
    fn arrays() {
        let model = zod("array_objects");
        let FieldType::Array { items } = ty(&model, "items") else {
            panic!("{model:?}");
        };
        let FieldType::Nested { fields } = items.as_ref() else {
            panic!("{items:?}");
        };
        assert_eq!(names(fields), ["a", "b"]);
        assert!(!fields[0].optional && fields[1].optional);
        assert_eq!(fields[1].ty, FieldType::Number);
        assert_eq!(ty(&model, "matrix"), &array(array(FieldType::Number)));
        // Tuples: an array of the union of the item types, the rest type included.
        let model = zod("tuple");
        assert_eq!(
            ty(&model, "pair"),
            &array(union([FieldType::String, FieldType::Number]))
        );
        assert_eq!(ty(&model, "single"), &array(FieldType::String));
        assert_eq!(
            ty(&model, "rest"),
            &array(union([FieldType::String, FieldType::Boolean]))
        );
        // Draft 2020-12 tuples, repeated item types and arrays without items.
        let read = |schema: serde_json::Value| type_from_json_schema("M", &schema).unwrap();
        assert_eq!(
            read(
                json!({"type": "array", "prefixItems": [{"type": "string"}, {"type": "string"}], "items": {"type": "null"}})
            ),
            array(union([FieldType::String, FieldType::Null]))
        );
        assert_eq!(read(json!({"type": "array"})), array(FieldType::Any));
        assert_eq!(
            read(json!({"type": "array", "items": [], "additionalItems": false})),
            array(FieldType::Any)
        );
    }

    #[test]
    fn dates() {
        let model = zod("dates");
        assert_eq!(ty(&model, "created_at"), &FieldType::Date);
        assert_eq!(ty(&model, "iso"), &FieldType::Date);
        assert_eq!(ty(&model, "day"), &FieldType::Date);
        assert!(field(&model, "maybe").optional);
        assert_eq!(ty(&model, "maybe"), &FieldType::Date);
        assert_eq!(ty(&model, "email"), &FieldType::String);
    }

    #[test]
    fn unions() {
        let model = zod("unions");
        assert_eq!(
            ty(&model, "u"),
            &union([FieldType::String, FieldType::Number])
        );
        let FieldType::Union { members } = ty(&model, "objects") else {
            panic!("{model:?}");
        };
        assert_eq!(members.len(), 2);
        let FieldType::Nested { fields } = &members[1] else {
            panic!("{members:?}");
        };
        assert_eq!(fields[0].ty, literal(json!("b")));
        assert_eq!(
            ty(&model, "nullable_union"),
            &union([FieldType::String, FieldType::Number, FieldType::Null])
        );
        // A union inside a union is flattened, as yaml's `a | b | c`.
        assert_eq!(
            type_from_json_schema(
                "M",
                &json!({"anyOf": [{"type": ["string", "number"]}, {"type": "null"}]})
            )
            .unwrap(),
            union([FieldType::String, FieldType::Number, FieldType::Null])
        );
    }

    #[test]
    fn nested_objects() {
        let model = zod("nested");
        let FieldType::Nested { fields } = ty(&model, "repo") else {
            panic!("{model:?}");
        };
        assert_eq!(names(fields), ["owner", "info"]);
        let FieldType::Nested { fields } = &fields[1].ty else {
            panic!("{fields:?}");
        };
        assert_eq!(fields[0].ty, FieldType::Number);
    }

    #[test]
    fn recursive_and_reused_schemas() {
        // `$ref: "#"` is the model itself, as yaml writes a model that refers to itself.
        let model = zod("recursive");
        let category = FieldType::Model {
            name: "recursive".into(),
        };
        assert_eq!(ty(&model, "subcategories"), &array(category.clone()));
        // An optional $ref is written allOf [$ref].
        assert!(field(&model, "parent").optional);
        assert_eq!(ty(&model, "parent"), &category);
        // A recursive schema inside the model: expanded once, its recursion is Any.
        let model = zod("recursive_inner");
        let FieldType::Nested { fields } = ty(&model, "root") else {
            panic!("{model:?}");
        };
        assert_eq!(names(fields), ["id", "children"]);
        assert_eq!(fields[1].ty, array(FieldType::Any));
        assert_eq!(ty(&model, "other"), &FieldType::String);
        // Reused schemas (inline twice, or in definitions by id) are read where they are used.
        let model = zod("reused");
        assert_eq!(ty(&model, "a"), ty(&model, "b"));
        let model = zod("meta_id");
        assert!(matches!(ty(&model, "x"), FieldType::Nested { fields } if names(fields) == ["t"]));
        assert_eq!(ty(&model, "x"), ty(&model, "y"));
        assert!(field(&model, "y").optional);
        // References to $defs, escaped pointers, and references to nowhere.
        let model = model_from_json_schema(
            "M",
            &json!({"type": "object", "properties": {
                "a": {"$ref": "#/$defs/A"}, "b": {"$ref": "#/$defs/a~1b"}, "c": {"$ref": "#/$defs/missing"},
                "d": {"$ref": "https://example.com/schema"}, "e": {"$ref": "#/properties/a"}
            }, "$defs": {"A": {"type": "string"}, "a/b": {"type": "boolean"}}}),
        )
        .unwrap();
        assert_eq!(ty(&model, "a"), &FieldType::String);
        assert_eq!(ty(&model, "b"), &FieldType::Boolean);
        assert_eq!(ty(&model, "c"), &FieldType::Any);
        assert_eq!(ty(&model, "d"), &FieldType::Any);
        assert_eq!(ty(&model, "e"), &FieldType::String);
        // Mutually recursive definitions end in Any, not in a loop.
        let model = model_from_json_schema(
            "M",
            &json!({"type": "object", "properties": {"a": {"$ref": "#/definitions/A"}},
                "definitions": {"A": {"type": "object", "properties": {"b": {"$ref": "#/definitions/B"}}},
                                "B": {"type": "object", "properties": {"a": {"$ref": "#/definitions/A"}}}}}),
        )
        .unwrap();
        let FieldType::Nested { fields } = ty(&model, "a") else {
            panic!("{model:?}");
        };
        let FieldType::Nested { fields } = &fields[0].ty else {
            panic!("{fields:?}");
        };
        assert_eq!(fields[0].ty, FieldType::Any);
        // A model that is a $ref to its definition has that definition's fields.
        let model = model_from_json_schema(
            "M",
            &json!({"$ref": "#/definitions/U", "definitions": {"U": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}}}),
        )
        .unwrap();
        assert_eq!(names(&model.fields), ["id"]);
    }

    #[test]
    fn intersections() {
        let model = zod("intersections");
        // zod merges object intersections itself.
        assert!(
            matches!(ty(&model, "objects"), FieldType::Nested { fields } if names(fields) == ["a", "b"])
        );
        assert_eq!(ty(&model, "strings"), &FieldType::String);
        assert_eq!(ty(&model, "mixed"), &FieldType::Any);
        // allOf of objects is merged: a field is required if either requires it, Any if the types differ.
        let merged = type_from_json_schema(
            "M",
            &json!({"allOf": [
                {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}, "required": ["a"]},
                {"type": "object", "properties": {"b": {"type": "number"}, "c": {"type": "boolean"}}, "required": ["b"]}
            ]}),
        )
        .unwrap();
        let FieldType::Nested { fields } = merged else {
            panic!("{merged:?}");
        };
        assert_eq!(names(&fields), ["a", "b", "c"]);
        assert_eq!(
            fields.iter().map(|f| f.optional).collect::<Vec<_>>(),
            [false, false, true]
        );
        assert_eq!(fields[1].ty, FieldType::Any);
    }

    #[test]
    fn unrepresentable_and_unknown_schemas_are_any() {
        let model = zod("unrepresentable");
        for name in ["any", "unknown", "map", "set", "transformed"] {
            assert_eq!(ty(&model, name), &FieldType::Any, "{name}");
        }
        // z.never() is {not: {}}: yaml's `never`.
        assert_eq!(ty(&model, "never"), &FieldType::Undefined);
        let read = |schema: serde_json::Value| type_from_json_schema("M", &schema).unwrap();
        assert_eq!(read(json!(true)), FieldType::Any);
        assert_eq!(read(json!(false)), FieldType::Undefined);
        assert_eq!(read(json!({})), FieldType::Any);
        assert_eq!(read(json!({"type": "function"})), FieldType::Any);
        assert_eq!(read(json!({"type": 7})), FieldType::Any);
        assert_eq!(read(json!({"description": "x"})), FieldType::Any);
        assert_eq!(read(json!({"enum": []})), FieldType::Undefined);
        assert_eq!(read(json!({"const": {"a": 1}})), FieldType::Any);
        assert_eq!(read(json!("string")), FieldType::Any);
        assert_eq!(read(json!({"type": "object"})), FieldType::Object);
        // Without `type`: an object by its properties, an array by its items.
        assert!(matches!(
            read(json!({"properties": {"a": {}}})),
            FieldType::Nested { .. }
        ));
        assert_eq!(
            read(json!({"items": {"type": "string"}})),
            array(FieldType::String)
        );
    }

    #[test]
    fn models_that_are_no_object_have_no_fields() {
        for case in [
            "void_top",
            "string_top",
            "array_top",
            "union_top",
            "nullable_top",
            "intersection_top",
        ] {
            let model = zod(case);
            assert_eq!(model.name, case);
            assert!(model.fields.is_empty(), "{case}: {model:?}");
            assert_eq!(model.dynamic, None, "{case}");
        }
        // Their type is still read in full.
        let all: serde_json::Value = serde_json::from_str(ZOD).unwrap();
        assert_eq!(
            type_from_json_schema("M", &all["void_top"]).unwrap(),
            FieldType::Null
        );
        assert!(matches!(
            type_from_json_schema("M", &all["array_top"]).unwrap(),
            FieldType::Array { items } if matches!(*items, FieldType::Nested { .. })
        ));
        assert!(matches!(
            type_from_json_schema("M", &all["nullable_top"]).unwrap(),
            FieldType::Union { members } if members[1] == FieldType::Null
        ));
        // A model of any object: dynamic keys of any type.
        let model = model_from_json_schema("M", &json!({"type": "object"})).unwrap();
        assert_eq!(model.dynamic, Some(FieldType::Any));
    }

    /// Runs `f` on a thread with a small stack: reading must not recurse with the input's depth.
    fn on_small_stack<T: Send>(f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|scope| {
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn_scoped(scope, f)
                .unwrap()
                .join()
                .unwrap()
        })
    }

    #[test]
    fn a_hostile_deep_document_is_refused_cleanly() {
        // 10,000 nested objects, as text and as a Value.
        let depth = 10_000;
        let mut text = String::new();
        for _ in 0..depth {
            text.push_str(r#"{"type":"object","properties":{"a":"#);
        }
        text.push_str("{}");
        for _ in 0..depth {
            text.push_str("}}");
        }
        let error = on_small_stack(|| model_from_json_schema_text("Deep", &text)).unwrap_err();
        assert!(
            error.starts_with(
                "model Deep: its JSON Schema is not valid JSON: recursion limit exceeded"
            ),
            "{error}"
        );
        // Built by moving values in: `json!` would copy its argument recursively.
        let mut value = json!({});
        for _ in 0..depth {
            let properties = serde_json::Map::from_iter([("a".to_string(), value)]);
            value = serde_json::Value::Object(serde_json::Map::from_iter([
                ("type".to_string(), json!("object")),
                ("properties".to_string(), properties.into()),
            ]));
        }
        let error = on_small_stack(|| model_from_json_schema("Deep", &value)).unwrap_err();
        assert_eq!(
            error,
            "model Deep: its JSON Schema nests deeper than 128 levels"
        );
        // Freed without recursing 10,000 levels on this thread's stack.
        let mut stack = vec![value.take()];
        while let Some(mut node) = stack.pop() {
            if let Some(map) = node.as_object_mut() {
                stack.extend(std::mem::take(map).into_iter().map(|(_, v)| v));
            }
        }
        // Within JSON's depth but past the type depth: deep arrays, unions and $ref chains.
        let mut deep = json!({"type": "string"});
        for _ in 0..MAX_TYPE_DEPTH + 1 {
            deep = json!({"type": "array", "items": deep});
        }
        assert_eq!(
            type_from_json_schema("Deep", &deep).unwrap_err(),
            "model Deep: its JSON Schema nests deeper than 64 types"
        );
        let definitions: serde_json::Map<String, serde_json::Value> = (0..200)
            .map(|i| {
                (
                    format!("D{i}"),
                    json!({"$ref": format!("#/definitions/D{}", i + 1)}),
                )
            })
            .collect();
        let chain = json!({"type": "object", "properties": {"a": {"$ref": "#/definitions/D0"}}, "definitions": definitions});
        assert!(
            model_from_json_schema("Deep", &chain)
                .unwrap_err()
                .ends_with("nests deeper than 64 types")
        );
        // A type just within the limit is read.
        let mut deep = json!({"type": "string"});
        for _ in 0..MAX_TYPE_DEPTH {
            deep = json!({"type": "array", "items": deep});
        }
        assert!(type_from_json_schema("Deep", &deep).is_ok());
    }

    #[test]
    fn a_schema_that_expands_past_the_budget_is_refused() {
        // Each definition uses the next one four times: 4^16 types once expanded, from a few lines.
        let definitions: serde_json::Map<String, serde_json::Value> = (0..16)
            .map(|i| {
                let next = json!({"$ref": format!("#/definitions/D{}", i + 1)});
                let properties: serde_json::Map<String, serde_json::Value> = ["a", "b", "c", "d"]
                    .iter()
                    .map(|k| (k.to_string(), next.clone()))
                    .collect();
                (
                    format!("D{i}"),
                    json!({"type": "object", "properties": properties}),
                )
            })
            .collect();
        let schema = json!({"type": "object", "properties": {"x": {"$ref": "#/definitions/D0"}}, "definitions": definitions});
        assert_eq!(
            model_from_json_schema("Wide", &schema).unwrap_err(),
            "model Wide: its JSON Schema holds more than 100000 types"
        );
        // Many fields are counted too.
        let properties: serde_json::Map<String, serde_json::Value> = (0..MAX_TYPES + 1)
            .map(|i| (format!("f{i}"), json!({"type": "string"})))
            .collect();
        assert!(
            model_from_json_schema("Wide", &json!({"type": "object", "properties": properties}))
                .is_err()
        );
    }

    #[test]
    fn a_key_given_twice_keeps_its_first_place_and_last_value() {
        let model = model_from_json_schema_text(
            "M",
            r#"{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"string"},"a":{"type":"number"}},"required":["a"]}"#,
        )
        .unwrap();
        assert_eq!(names(&model.fields), ["a", "b"]);
        assert_eq!(model.fields[0].ty, FieldType::Number);
        assert!(model_from_json_schema_text("M", "{").is_err());
        assert!(model_from_json_schema_text("M", "{} x").is_err());
    }
}
