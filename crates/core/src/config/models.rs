//! The model grammar of `nango.yaml` (`models:`), read as Nango's parser reads it: primitives and their
//! aliases, `field?` for optional fields, `Type[]` and YAML sequences for arrays, nested mappings, unions with
//! `|` (how enums are written), literals, references to other models, `__extends` and `__string` dynamic keys.

use serde::{Deserialize, Serialize};
use serde_yaml::Value;
use std::collections::BTreeMap;

/// The type of one field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FieldType {
    String,
    Number,
    Boolean,
    Date,
    Any,
    Null,
    Undefined,
    /// `object`: any JSON object.
    Object,
    /// A string, number or boolean literal (`open`, `42`, `true`).
    Literal {
        value: serde_json::Value,
    },
    /// A nested object written inline.
    Nested {
        fields: Vec<Field>,
    },
    Array {
        items: Box<FieldType>,
    },
    /// A reference to another model by name.
    Model {
        name: String,
    },
    Union {
        members: Vec<FieldType>,
    },
}

/// One field of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Field {
    pub name: String,
    pub optional: bool,
    #[serde(rename = "type")]
    pub ty: FieldType,
}

/// A model: its fields in declaration order, and the type of its dynamic keys when it has `__string`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub name: String,
    pub fields: Vec<Field>,
    pub dynamic: Option<FieldType>,
}

impl Model {
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// A model-grammar error, located by the model and field it concerns.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelError {
    pub model: String,
    pub field: Option<String>,
    pub message: String,
}

/// The deepest array type (`T[][]…`, counted in `[]`s) a field may have.
pub const MAX_ARRAY_SUFFIXES: usize = 32;

/// The longest `__extends` chain (a model extending one that extends another, and so on).
pub const MAX_EXTENDS_DEPTH: usize = 64;

/// The most fields the models may hold once each `__extends` has copied its parents' fields (each parent
/// is read again for each model that extends it, so a few lines can otherwise stand for millions).
pub const MAX_MODEL_FIELDS: usize = 1_000_000;

/// Parses every model of a `models:` mapping. Warnings (e.g. an unknown type read as a string literal) are
/// pushed to `warnings`.
pub fn parse_models(
    models: &serde_yaml::Mapping,
    warnings: &mut Vec<String>,
) -> Result<BTreeMap<String, Model>, ModelError> {
    let names: Vec<String> = models.keys().filter_map(yaml_key).collect();
    let mut raw: BTreeMap<String, &serde_yaml::Mapping> = BTreeMap::new();
    for (key, value) in models {
        let name = yaml_key(key).unwrap_or_default();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(ModelError {
                model: name,
                field: None,
                message: "invalid model name: use letters, digits and _ only".into(),
            });
        }
        match value {
            Value::Mapping(m) => {
                raw.insert(name, m);
            }
            Value::Null => {
                raw.insert(name, EMPTY.get_or_init(serde_yaml::Mapping::new));
            }
            _ => {
                return Err(ModelError {
                    model: name,
                    field: None,
                    message: "a model must be a mapping of field: type".into(),
                });
            }
        }
    }
    let mut parser = Parser {
        names: &names,
        warnings,
        budget: MAX_MODEL_FIELDS,
        model: String::new(),
    };
    let mut parsed = BTreeMap::new();
    for (name, mapping) in &raw {
        let model = parser.model(name, mapping, &raw, &mut Vec::new())?;
        parsed.insert(name.clone(), model);
    }
    for name in cyclic_models(&parsed) {
        parser.warnings.push(format!(
            "Model {name} refers to itself through its fields (a cyclic model); it is accepted"
        ));
    }
    Ok(parsed)
}

/// The models that can reach themselves through model references: those in a strongly connected component
/// of more than one model, or referring to themselves (Tarjan's algorithm, iterative, linear in the number of
/// references: a search from each model would be quadratic).
fn cyclic_models(models: &BTreeMap<String, Model>) -> Vec<String> {
    fn references<'a>(ty: &'a FieldType, out: &mut Vec<&'a str>) {
        match ty {
            FieldType::Model { name } => out.push(name),
            FieldType::Array { items } => references(items, out),
            FieldType::Union { members } => members.iter().for_each(|m| references(m, out)),
            FieldType::Nested { fields } => fields.iter().for_each(|f| references(&f.ty, out)),
            _ => {}
        }
    }
    let edges: BTreeMap<&str, Vec<&str>> = models
        .iter()
        .map(|(name, model)| {
            let mut out = Vec::new();
            model
                .fields
                .iter()
                .for_each(|f| references(&f.ty, &mut out));
            if let Some(dynamic) = &model.dynamic {
                references(dynamic, &mut out);
            }
            (name.as_str(), out)
        })
        .collect();
    let names: Vec<&str> = models.keys().map(String::as_str).collect();
    let index_of = |name: &str| names.binary_search(&name).ok();
    let successors: Vec<Vec<usize>> = names
        .iter()
        .map(|name| edges[name].iter().filter_map(|n| index_of(n)).collect())
        .collect();
    let mut cyclic = vec![false; names.len()];
    let mut order = vec![usize::MAX; names.len()];
    let mut low = vec![0; names.len()];
    let mut on_stack = vec![false; names.len()];
    let mut stack = Vec::new();
    let mut next_order = 0;
    for root in 0..names.len() {
        if order[root] != usize::MAX {
            continue;
        }
        // (node, index of its next successor to visit)
        let mut calls = vec![(root, 0usize)];
        order[root] = next_order;
        low[root] = next_order;
        next_order += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(frame) = calls.last_mut() {
            let node = frame.0;
            if let Some(&successor) = successors[node].get(frame.1) {
                frame.1 += 1;
                if successor == node {
                    cyclic[node] = true;
                }
                if order[successor] == usize::MAX {
                    order[successor] = next_order;
                    low[successor] = next_order;
                    next_order += 1;
                    stack.push(successor);
                    on_stack[successor] = true;
                    calls.push((successor, 0));
                } else if on_stack[successor] {
                    low[node] = low[node].min(order[successor]);
                }
                continue;
            }
            calls.pop();
            if let Some(&(parent, _)) = calls.last() {
                low[parent] = low[parent].min(low[node]);
            }
            if low[node] == order[node] {
                let mut component = Vec::new();
                while let Some(member) = stack.pop() {
                    on_stack[member] = false;
                    component.push(member);
                    if member == node {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.iter().for_each(|&m| cyclic[m] = true);
                }
            }
        }
    }
    names
        .iter()
        .zip(cyclic)
        .filter(|(_, cyclic)| *cyclic)
        .map(|(name, _)| name.to_string())
        .collect()
}

static EMPTY: std::sync::OnceLock<serde_yaml::Mapping> = std::sync::OnceLock::new();

/// Parses a type written where a model name is expected (an `output:` that names no model): an anonymous model.
pub fn parse_type_expression(
    text: &str,
    model_names: &[String],
    warnings: &mut Vec<String>,
) -> Result<FieldType, String> {
    let mut parser = Parser {
        names: model_names,
        warnings,
        budget: MAX_MODEL_FIELDS,
        model: "(an output type)".into(),
    };
    parser.string_type(text).map_err(|e| e.message)
}

fn yaml_key(key: &Value) -> Option<String> {
    match key {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

struct Parser<'a> {
    names: &'a [String],
    warnings: &'a mut Vec<String>,
    /// Fields and types still allowed (see [`MAX_MODEL_FIELDS`]).
    budget: usize,
    /// The model being read, named in warnings.
    model: String,
}

struct TypeError {
    message: String,
}

impl Parser<'_> {
    /// Counts one more field or type against the budget.
    fn spend(&mut self) -> Result<(), TypeError> {
        self.budget = self.budget.checked_sub(1).ok_or_else(|| TypeError {
            message: format!(
                "the models hold more than {MAX_MODEL_FIELDS} fields and types once __extends copies its parents' fields"
            ),
        })?;
        Ok(())
    }

    fn model(
        &mut self,
        name: &str,
        mapping: &serde_yaml::Mapping,
        all: &BTreeMap<String, &serde_yaml::Mapping>,
        extending: &mut Vec<String>,
    ) -> Result<Model, ModelError> {
        self.model = name.to_string();
        let mut fields = Vec::new();
        let mut dynamic = None;
        for (key, value) in mapping {
            let key = yaml_key(key).unwrap_or_default();
            if key == "__extends" {
                continue;
            }
            let located = |e: TypeError| ModelError {
                model: name.to_string(),
                field: Some(key.clone()),
                message: e.message,
            };
            if key == "__string" {
                dynamic = Some(self.value_type(value).map_err(located)?);
                continue;
            }
            let (field_name, optional) = match key.strip_suffix('?') {
                Some(stripped) => (stripped.to_string(), true),
                None => (key.clone(), false),
            };
            let ty = self.value_type(value).map_err(located)?;
            self.spend().map_err(located)?;
            self.push_field(
                &mut fields,
                Field {
                    name: field_name,
                    optional,
                    ty,
                },
            );
        }
        if let Some(parents) = mapping.get("__extends") {
            let parents = parents.as_str().unwrap_or_default();
            for parent in parents.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let Some(parent_mapping) = all.get(parent) else {
                    return Err(ModelError {
                        model: name.to_string(),
                        field: Some("__extends".into()),
                        message: format!("model {parent} (in __extends) is not defined"),
                    });
                };
                if extending.iter().any(|e| e == parent) || parent == name {
                    continue;
                }
                if extending.len() >= MAX_EXTENDS_DEPTH {
                    return Err(ModelError {
                        model: name.to_string(),
                        field: Some("__extends".into()),
                        message: format!(
                            "the __extends chain is longer than {MAX_EXTENDS_DEPTH} models"
                        ),
                    });
                }
                extending.push(name.to_string());
                let parent_model = self.model(parent, parent_mapping, all, extending)?;
                extending.pop();
                for field in parent_model.fields {
                    if !fields.iter().any(|f| f.name == field.name) {
                        self.spend().map_err(|e| ModelError {
                            model: name.to_string(),
                            field: Some("__extends".into()),
                            message: e.message,
                        })?;
                        fields.push(field);
                    }
                }
                if dynamic.is_none() {
                    dynamic = parent_model.dynamic;
                }
            }
        }
        Ok(Model {
            name: name.to_string(),
            fields,
            dynamic,
        })
    }

    /// Adds a field, or replaces an earlier one of the same name (`options` then `options?`: different YAML
    /// keys, one field) as Nango's parser does: the later declaration wins, in the earlier one's place, with a
    /// warning naming the model and the field.
    /// A parent model is read again for each model that extends it: its warning is given once.
    fn push_field(&mut self, fields: &mut Vec<Field>, field: Field) {
        match fields.iter_mut().find(|f| f.name == field.name) {
            Some(earlier) => {
                let warning = format!(
                    "Model {} declares field {} more than once; the last declaration is used",
                    self.model, field.name
                );
                if !self.warnings.contains(&warning) {
                    self.warnings.push(warning);
                }
                *earlier = field;
            }
            None => fields.push(field),
        }
    }

    fn value_type(&mut self, value: &Value) -> Result<FieldType, TypeError> {
        self.spend()?;
        match value {
            Value::Sequence(items) => {
                let first = items.first().ok_or_else(|| TypeError {
                    message: "an empty array type [] needs an item type".into(),
                })?;
                Ok(FieldType::Array {
                    items: Box::new(self.value_type(first)?),
                })
            }
            Value::Bool(b) => Ok(FieldType::Literal {
                value: serde_json::Value::Bool(*b),
            }),
            Value::Number(n) => Ok(FieldType::Literal {
                value: serde_json::to_value(n).unwrap_or(serde_json::Value::Null),
            }),
            Value::Null => Ok(FieldType::Null),
            Value::Mapping(m) => {
                let mut fields = Vec::new();
                for (key, value) in m {
                    let key = yaml_key(key).unwrap_or_default();
                    let (name, optional) = match key.strip_suffix('?') {
                        Some(stripped) => (stripped.to_string(), true),
                        None => (key.clone(), false),
                    };
                    let field = Field {
                        name,
                        optional,
                        ty: self.value_type(value)?,
                    };
                    self.push_field(&mut fields, field);
                }
                Ok(FieldType::Nested { fields })
            }
            Value::String(s) => self.string_type(s),
            Value::Tagged(t) => self.value_type(&t.value),
        }
    }

    fn string_type(&mut self, text: &str) -> Result<FieldType, TypeError> {
        let text = text.trim();
        if text.contains('|') {
            let members = text
                .split('|')
                .map(|m| self.string_type(m))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(FieldType::Union { members });
        }
        if text.ends_with("[]") {
            // Counted in a loop, not by recursion: the text is the user's, `[]` may repeat 100,000 times.
            let mut base = text;
            let mut suffixes = 0;
            while let Some(inner) = base.strip_suffix("[]") {
                base = inner.trim_end();
                suffixes += 1;
                if suffixes > MAX_ARRAY_SUFFIXES {
                    return Err(TypeError {
                        message: format!(
                            "an array type may have at most {MAX_ARRAY_SUFFIXES} levels of []"
                        ),
                    });
                }
            }
            if base.is_empty() {
                return Err(TypeError {
                    message: "an empty array type [] needs an item type".into(),
                });
            }
            let mut ty = self.string_type(base)?;
            for _ in 0..suffixes {
                ty = FieldType::Array {
                    items: Box::new(ty),
                };
            }
            return Ok(ty);
        }
        let simple = match text.to_ascii_lowercase().as_str() {
            "integer" | "int" | "float" | "number" | "bigint" => Some(FieldType::Number),
            "char" | "varchar" | "string" => Some(FieldType::String),
            "bool" | "boolean" => Some(FieldType::Boolean),
            "date" => Some(FieldType::Date),
            "object" => Some(FieldType::Object),
            "any" => Some(FieldType::Any),
            "array" => Some(FieldType::Array {
                items: Box::new(FieldType::Any),
            }),
            "undefined" | "void" | "never" => Some(FieldType::Undefined),
            "null" => Some(FieldType::Null),
            "true" => Some(FieldType::Literal { value: true.into() }),
            "false" => Some(FieldType::Literal {
                value: false.into(),
            }),
            _ => None,
        };
        if let Some(ty) = simple {
            return Ok(ty);
        }
        if let Some(generic) = GENERICS.iter().find(|g| text.starts_with(&format!("{g}<"))) {
            return Err(TypeError {
                message: format!("generic type {generic}<…> is not supported in nango.yaml models"),
            });
        }
        if let Ok(n) = text.parse::<f64>() {
            return Ok(FieldType::Literal {
                value: serde_json::json!(n),
            });
        }
        if self.names.iter().any(|n| n == text) {
            return Ok(FieldType::Model {
                name: text.to_string(),
            });
        }
        if text.chars().next().is_some_and(|c| c.is_ascii_uppercase())
            && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            self.warnings.push(format!(
                "Model {text} is not defined, using it as a string literal"
            ));
        }
        Ok(FieldType::Literal {
            value: serde_json::Value::String(text.to_string()),
        })
    }
}

const GENERICS: &[&str] = &[
    "Record", "Array", "Partial", "Map", "Set", "Promise", "Pick", "Omit", "Required", "Readonly",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> (BTreeMap<String, Model>, Vec<String>) {
        let value: serde_yaml::Mapping = serde_yaml::from_str(yaml).unwrap();
        let mut warnings = Vec::new();
        let models = parse_models(&value, &mut warnings).unwrap();
        (models, warnings)
    }

    #[test]
    fn primitives_optional_arrays_nested() {
        let (models, _) = parse(
            "Issue:\n  id: integer\n  title: string\n  closed?: boolean\n  created_at: date\n  labels: string[]\n  \
             assignees: [User]\n  repo:\n    owner: string\n    name: string\nUser:\n  id: string\n",
        );
        let issue = &models["Issue"];
        assert_eq!(issue.field("id").unwrap().ty, FieldType::Number);
        assert!(issue.field("closed").unwrap().optional);
        assert_eq!(issue.field("created_at").unwrap().ty, FieldType::Date);
        assert_eq!(
            issue.field("labels").unwrap().ty,
            FieldType::Array {
                items: Box::new(FieldType::String)
            }
        );
        assert_eq!(
            issue.field("assignees").unwrap().ty,
            FieldType::Array {
                items: Box::new(FieldType::Model {
                    name: "User".into()
                })
            }
        );
        assert!(matches!(
            issue.field("repo").unwrap().ty,
            FieldType::Nested { .. }
        ));
    }

    #[test]
    fn unions_literals_extends_dynamic() {
        let (models, warnings) = parse(
            "Base:\n  id: string\n  __string: any\nTicket:\n  __extends: Base\n  state: open | closed\n  \
             kind: Unknown\n  n: 3\n",
        );
        let ticket = &models["Ticket"];
        assert_eq!(ticket.field("id").unwrap().ty, FieldType::String);
        assert_eq!(ticket.dynamic, Some(FieldType::Any));
        assert!(
            matches!(&ticket.field("state").unwrap().ty, FieldType::Union { members } if members.len() == 2)
        );
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn a_field_declared_twice_takes_the_later_declaration() {
        let (models, warnings) = parse(
            "Form:\n  id: string\n  options: Option[]\n  title: string\n  options?: any[]\n  \
             nested:\n    a: string\n    a?: number\nOption:\n  id: string\nChild:\n  __extends: Form\n",
        );
        let form = &models["Form"];
        let names: Vec<&str> = form.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["id", "options", "title", "nested"]);
        let options = form.field("options").unwrap();
        assert!(options.optional);
        assert_eq!(
            options.ty,
            FieldType::Array {
                items: Box::new(FieldType::Any)
            }
        );
        assert!(
            warnings.contains(
                &"Model Form declares field options more than once; the last declaration is used"
                    .into()
            )
        );
        assert_eq!(warnings.len(), 2, "{warnings:?}");
    }

    #[test]
    fn errors() {
        let value: serde_yaml::Mapping =
            serde_yaml::from_str("A:\n  x: Record<string, any>\n").unwrap();
        let err = parse_models(&value, &mut Vec::new()).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("x"));
        let value: serde_yaml::Mapping =
            serde_yaml::from_str("A:\n  __extends: Missing\n").unwrap();
        assert!(
            parse_models(&value, &mut Vec::new())
                .unwrap_err()
                .message
                .contains("Missing")
        );
        let value: serde_yaml::Mapping = serde_yaml::from_str("bad-name:\n  id: string\n").unwrap();
        assert!(parse_models(&value, &mut Vec::new()).is_err());
    }
}
