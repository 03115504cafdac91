//! Whether a record matches its model, as Nango's `dryrun --validation` checks a script's output: every
//! required field is present, and each value has its field's type. Fields the model does not name are
//! allowed (Nango stores them too). A `date` is a string in ISO 8601 form, as a `Date` is once the record
//! is JSON. Used by the `pg-nango` client on what `nango.dryrun` returns; nothing here touches a database.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::config::models::{Field, FieldType, Model};

/// How deep models may refer to models (and nested objects nest) before a value is not checked further: a
/// model that contains itself and a record that nests deeply must not exhaust the stack.
pub const MAX_DEPTH: usize = 64;

/// The most problems reported for one record; the rest are counted in the last one.
pub const MAX_PROBLEMS: usize = 20;

/// The most values checked for one record: a union of recursive models is checked member by member at
/// each level, which could otherwise take time exponential in the depth.
pub const MAX_CHECKS: usize = 100_000;

/// The problems of `record` against `model` (none when it conforms), each naming the field's path
/// (`labels[0].name`) and what is wrong.
pub fn problems(record: &Value, model: &Model, models: &BTreeMap<String, Model>) -> Vec<String> {
    let mut found = Vec::new();
    let mut budget = MAX_CHECKS;
    let mut checker = Checker {
        models,
        found: &mut found,
        budget: &mut budget,
    };
    checker.object(record, &model.fields, model.dynamic.as_ref(), "", 0);
    if found.len() > MAX_PROBLEMS {
        let more = found.len() - MAX_PROBLEMS + 1;
        found.truncate(MAX_PROBLEMS - 1);
        found.push(format!("and {more} more"));
    }
    found
}

struct Checker<'a> {
    models: &'a BTreeMap<String, Model>,
    found: &'a mut Vec<String>,
    /// Values still to be checked before checking stops ([`MAX_CHECKS`]).
    budget: &'a mut usize,
}

impl Checker<'_> {
    fn object(
        &mut self,
        value: &Value,
        fields: &[Field],
        dynamic: Option<&FieldType>,
        path: &str,
        depth: usize,
    ) {
        let Value::Object(object) = value else {
            self.found.push(format!(
                "{}: expected an object, got {}",
                at(path),
                kind(value)
            ));
            return;
        };
        for field in fields {
            let inner = join(path, &field.name);
            match object.get(&field.name) {
                None if field.optional || accepts_undefined(&field.ty) => {}
                None => self.found.push(format!("{inner}: missing")),
                Some(value) => self.value(value, &field.ty, &inner, depth + 1),
            }
        }
        if let Some(dynamic) = dynamic {
            for (key, value) in object {
                if !fields.iter().any(|f| &f.name == key) {
                    self.value(value, dynamic, &join(path, key), depth + 1);
                }
            }
        }
    }

    fn value(&mut self, value: &Value, ty: &FieldType, path: &str, depth: usize) {
        if depth > MAX_DEPTH || *self.budget == 0 {
            return;
        }
        *self.budget -= 1;
        if let Some(expected) = self.mismatch(value, ty, path, depth) {
            self.found
                .push(format!("{path}: expected {expected}, got {}", kind(value)));
        }
    }

    /// What `value` should have been, if it is not of `ty`; problems inside objects and arrays are
    /// reported by their own paths.
    fn mismatch(
        &mut self,
        value: &Value,
        ty: &FieldType,
        path: &str,
        depth: usize,
    ) -> Option<String> {
        let fits = match (ty, value) {
            (FieldType::Any, _) => true,
            (FieldType::String, Value::String(_)) => true,
            (FieldType::Number, Value::Number(_)) => true,
            (FieldType::Boolean, Value::Bool(_)) => true,
            (FieldType::Date, Value::String(text)) => is_date(text),
            (FieldType::Null, Value::Null) => true,
            (FieldType::Object, Value::Object(_)) => true,
            (FieldType::Literal { value: literal }, value) => literal == value,
            (FieldType::Nested { fields }, Value::Object(_)) => {
                self.object(value, fields, None, path, depth);
                true
            }
            (FieldType::Array { items }, Value::Array(values)) => {
                for (index, item) in values.iter().enumerate() {
                    self.value(item, items, &format!("{path}[{index}]"), depth + 1);
                }
                true
            }
            (FieldType::Model { name }, value) => match self.models.get(name) {
                Some(model) => {
                    self.object(value, &model.fields, model.dynamic.as_ref(), path, depth);
                    true
                }
                // A reference the deploy could not resolve was read as a type of its own: not checked.
                None => true,
            },
            (FieldType::Union { members }, value) => {
                // A member fits when checking it finds nothing; the problems of a member that does not
                // fit are not the value's (another member may fit).
                let fitting = members.iter().any(|member| {
                    let mut scratch = Vec::new();
                    let fits = Checker {
                        models: self.models,
                        found: &mut scratch,
                        budget: &mut *self.budget,
                    }
                    .mismatch(value, member, path, depth + 1)
                    .is_none();
                    fits && scratch.is_empty()
                });
                if fitting {
                    return None;
                }
                // When one member alone is an object or an array as the value is (`Label[] | null`), what is
                // wrong inside the value says more than the union's name.
                let mut containers = members.iter().filter(|m| same_container(m, value));
                return match (containers.next(), containers.next()) {
                    (Some(member), None) => {
                        self.value(value, member, path, depth);
                        None
                    }
                    _ => Some(describe(ty)),
                };
            }
            _ => false,
        };
        (!fits).then(|| describe(ty))
    }
}

/// Whether `ty` is an object or array type and `value` the same kind of container.
fn same_container(ty: &FieldType, value: &Value) -> bool {
    match ty {
        FieldType::Nested { .. } | FieldType::Model { .. } | FieldType::Object => value.is_object(),
        FieldType::Array { .. } => value.is_array(),
        _ => false,
    }
}

/// Whether a missing field is allowed by its type (`undefined`, or a union with it).
fn accepts_undefined(ty: &FieldType) -> bool {
    match ty {
        FieldType::Undefined | FieldType::Any => true,
        FieldType::Union { members } => members.iter().any(accepts_undefined),
        _ => false,
    }
}

/// An ISO 8601 date or date-time, as JSON writes a `Date` (`2024-01-31T10:00:00.000Z`) or a script may write
/// a day (`2024-01-31`).
fn is_date(text: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(text).is_ok()
        || chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok()
        || chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").is_ok()
}

/// A type as a message names it.
fn describe(ty: &FieldType) -> String {
    match ty {
        FieldType::String => "a string".into(),
        FieldType::Number => "a number".into(),
        FieldType::Boolean => "a boolean".into(),
        FieldType::Date => "a date (ISO 8601 string)".into(),
        FieldType::Any => "anything".into(),
        FieldType::Null => "null".into(),
        FieldType::Undefined => "undefined".into(),
        FieldType::Object | FieldType::Nested { .. } => "an object".into(),
        FieldType::Literal { value } => value.to_string(),
        FieldType::Array { .. } => "an array".into(),
        FieldType::Model { name } => format!("a {name}"),
        FieldType::Union { members } => members
            .iter()
            .map(describe)
            .collect::<Vec<_>>()
            .join(" or "),
    }
}

/// A JSON value's kind, as a message names it.
fn kind(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) if s.chars().count() <= 40 => format!("{s:?}"),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn at(path: &str) -> &str {
    if path.is_empty() { "the record" } else { path }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::models::parse_models;
    use serde_json::json;

    fn models(yaml: &str) -> BTreeMap<String, Model> {
        let mapping: serde_yaml::Mapping = serde_yaml::from_str(yaml).unwrap();
        parse_models(&mapping, &mut Vec::new()).unwrap()
    }

    const MODELS: &str = "
Issue:
  id: string
  title: string
  state: open | closed
  createdAt: date
  comments: number
  assignee?: string
  labels: Label[]
  closedAt: date | null
Label:
  name: string
  color?: string
Node:
  id: string
  child?: Node
";

    fn check(record: Value) -> Vec<String> {
        let models = models(MODELS);
        problems(&record, &models["Issue"], &models)
    }

    fn good() -> Value {
        json!({"id": "1", "title": "t", "state": "open", "createdAt": "2024-01-31T10:00:00.000Z",
               "comments": 3, "labels": [{"name": "bug"}], "closedAt": null, "extra": true})
    }

    #[test]
    fn a_conforming_record_has_no_problems() {
        assert_eq!(check(good()), Vec::<String>::new());
    }

    #[test]
    fn each_problem_names_its_field_and_what_was_expected() {
        let mut record = good();
        record["state"] = json!("merged");
        record["comments"] = json!("3");
        record["labels"] = json!([{"name": "bug"}, {"color": "red"}]);
        record["createdAt"] = json!("yesterday");
        record.as_object_mut().unwrap().remove("title");
        assert_eq!(
            check(record),
            [
                "title: missing",
                "state: expected \"open\" or \"closed\", got \"merged\"",
                "createdAt: expected a date (ISO 8601 string), got \"yesterday\"",
                "comments: expected a number, got \"3\"",
                "labels[1].name: missing",
            ]
        );
    }

    #[test]
    fn a_union_names_the_problem_inside_its_one_matching_member() {
        let models =
            models("Issue:\n  id: string\n  labels: Label[] | null\nLabel:\n  name: string\n");
        let record = json!({"id": "1", "labels": [{"name": "bug"}, {"name": 3}]});
        assert_eq!(
            problems(&record, &models["Issue"], &models),
            ["labels[1].name: expected a string, got 3"]
        );
        let record = json!({"id": "1", "labels": "bug"});
        assert_eq!(
            problems(&record, &models["Issue"], &models),
            ["labels: expected an array or null, got \"bug\""]
        );
    }

    #[test]
    fn a_union_of_recursive_models_is_checked_within_a_budget() {
        let models = models("A:\n  id: string\n  next?: A | B\nB:\n  id: string\n  next?: A | B\n");
        let mut record = json!({"id": 0});
        for _ in 0..60 {
            record = json!({"id": "x", "next": record});
        }
        // Without the budget this takes 2^60 checks; with it, it ends and still finds nothing false.
        let found = problems(&record, &models["A"], &models);
        assert!(found.len() <= 1, "{found:?}");
    }

    #[test]
    fn a_record_that_is_no_object_says_so() {
        assert_eq!(
            check(json!([1])),
            ["the record: expected an object, got an array"]
        );
    }

    #[test]
    fn self_reference_and_deep_nesting_stop_at_the_depth_limit() {
        let models = models(MODELS);
        let mut record = json!({"id": "leaf"});
        for i in 0..1_000 {
            record = json!({"id": i.to_string(), "child": record});
        }
        assert!(problems(&record, &models["Node"], &models).is_empty());
        let bad = json!({"id": "1", "child": {"id": 2}});
        assert_eq!(
            problems(&bad, &models["Node"], &models),
            ["child.id: expected a string, got 2"]
        );
    }

    #[test]
    fn problems_are_capped() {
        let models = models("Wide:\n  __string: number\n");
        let record: serde_json::Map<String, Value> =
            (0..100).map(|i| (format!("k{i}"), json!("x"))).collect();
        let found = problems(&Value::Object(record), &models["Wide"], &models);
        assert_eq!(found.len(), MAX_PROBLEMS);
        assert_eq!(found.last().unwrap(), "and 81 more");
    }
}
