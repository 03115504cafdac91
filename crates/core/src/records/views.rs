//! The typed views `nango_records.<model_in_snake_case>`: one column per top-level model field, named exactly
//! as the field, typed by the model grammar, plus the `_nango_*` metadata columns.
//!
//! Names come from `nango.yaml`, which is untrusted: every identifier and literal is quoted as Postgres's own
//! `quote_ident`/`quote_literal` quote them (correct under any `standard_conforming_strings`), a name Postgres
//! cannot store (a NUL character) is refused, and names that would land on one view or column name (`Name` and
//! `name`, `HTTPRequest` and `HttpRequest`, names past Postgres's 63-byte limit, a field named like a metadata
//! column) are told apart with a suffix instead of replacing each other. A model keeps its view name across
//! deploys, and a view is replaced in place when its columns allow, so grants and views built on it survive.

use std::collections::{BTreeMap, BTreeSet};

use md5::{Digest, Md5};

use crate::config::{Field, FieldType, Model};

/// The schema of the typed views.
pub const SCHEMA: &str = "nango_records";

/// The longest identifier Postgres keeps (NAMEDATALEN - 1); it truncates longer ones silently.
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// The name given to a model or field whose name is empty (`""` is no valid SQL identifier).
const UNNAMED: &str = "unnamed";

/// `GithubIssue` → `github_issue`.
pub fn snake_case(name: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = name.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let after_lower =
                i > 0 && (chars[i - 1].is_ascii_lowercase() || chars[i - 1].is_ascii_digit());
            let before_lower = i > 0
                && chars[i - 1].is_ascii_uppercase()
                && chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if after_lower || before_lower {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Double-quotes an SQL identifier, doubling its `"` (Postgres's `quote_ident`, which always quotes here).
/// Double-quoted identifiers know no backslash escapes, so this holds under any `standard_conforming_strings`.
/// The name must hold no NUL and fit in [`MAX_IDENTIFIER_BYTES`]; [`plan_views`] sees to both.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes an SQL literal as Postgres's `quote_literal` does: `'` doubled, and when the text holds a
/// backslash, an `E'…'` literal with every backslash doubled. `E''` reads backslashes as escapes whatever
/// `standard_conforming_strings` says, so the text comes back exactly under either setting.
pub fn quote_literal(text: &str) -> String {
    let body = text.replace('\'', "''");
    if text.contains('\\') {
        format!("E'{}'", body.replace('\\', "\\\\"))
    } else {
        format!("'{body}'")
    }
}

/// `nango_records."<view>"`.
pub fn qualified(view: &str) -> String {
    format!("{SCHEMA}.{}", quote_ident(view))
}

/// A column of a typed view: its name, the type Postgres reports for it (`format_type`), and its expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub sql_type: &'static str,
    expression: String,
}

/// One model's typed view as this deploy wants it.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewPlan {
    pub model: String,
    /// The view's name in [`SCHEMA`], unquoted.
    pub view: String,
    /// The columns in their natural order: the fields as declared, then the metadata columns.
    pub columns: Vec<Column>,
}

/// The `_nango_*` metadata columns, after the fields: (name, type, expression).
const METADATA: [(&str, &str, &str); 7] = [
    ("_nango_connection_id", "text", "c.connection_id"),
    (
        "_nango_provider_config_key",
        "text",
        "c.provider_config_key",
    ),
    (
        "_nango_first_seen_at",
        "timestamp with time zone",
        "r.first_seen_at",
    ),
    (
        "_nango_last_modified_at",
        "timestamp with time zone",
        "r.last_modified_at",
    ),
    ("_nango_last_action", "text", "r.last_action"),
    (
        "_nango_deleted_at",
        "timestamp with time zone",
        "r.deleted_at",
    ),
    ("_nango_cursor", "text", "r.cursor::text"),
];

/// Plans the typed views of `models`.
///
/// `previous` maps the models deployed before to their view names (`None` for a row written before view
/// names were kept, whose view is then at the natural name); `occupied` holds the names of the relations in
/// [`SCHEMA`] that are no view of a model. A model keeps its previous view name; the others take their
/// natural name (snake case, shortened past 63 bytes) unless it is taken, else the first free `_2`, `_3`, ….
/// Returns the plans and one warning for each view or column that is not named as its model or field.
pub fn plan_views(
    models: &BTreeMap<String, Model>,
    previous: &BTreeMap<String, Option<String>>,
    occupied: &BTreeSet<String>,
) -> Result<(Vec<ViewPlan>, Vec<String>), String> {
    for model in models.values() {
        refuse_nul(model)?;
    }
    let mut taken: BTreeSet<String> = occupied.clone();
    let mut names: BTreeMap<&str, String> = BTreeMap::new();
    for name in models.keys() {
        if let Some(Some(view)) = previous.get(name) {
            taken.insert(view.clone());
            names.insert(name, view.clone());
        }
    }
    let mut warnings = Vec::new();
    for name in models.keys() {
        if names.contains_key(name.as_str()) {
            continue;
        }
        let view = free_name(&natural_view_name(name), &taken);
        taken.insert(view.clone());
        names.insert(name, view);
    }
    let mut plans = Vec::new();
    for (name, model) in models {
        let view = names.remove(name.as_str()).unwrap_or_default();
        let natural = natural_view_name(name);
        if view != natural {
            warnings.push(format!(
                "model \"{}\": its view is {} (nango_records.{} is {})",
                name.escape_debug(),
                qualified(&view),
                quote_ident(&natural),
                if natural.len() > MAX_IDENTIFIER_BYTES || name.is_empty() {
                    "no valid name".to_string()
                } else {
                    "taken by another model or relation".to_string()
                }
            ));
        }
        let columns = plan_columns(model, &view, &mut warnings);
        plans.push(ViewPlan {
            model: name.clone(),
            view,
            columns,
        });
    }
    Ok((plans, warnings))
}

/// Refuses a model whose name, field names (also nested ones) or literal values hold a NUL: Postgres text
/// and jsonb cannot store it, so neither its view nor its records could exist.
fn refuse_nul(model: &Model) -> Result<(), String> {
    if model.name.contains('\0') {
        return Err(format!(
            "model \"{}\": its name holds a NUL character, which Postgres cannot store",
            model.name.escape_debug()
        ));
    }
    fn fields(model: &str, path: &str, fields: &[Field]) -> Result<(), String> {
        for field in fields {
            let path = if path.is_empty() {
                field.name.clone()
            } else {
                format!("{path}.{}", field.name)
            };
            if field.name.contains('\0') {
                return Err(format!(
                    "model \"{}\", field \"{}\": the field name holds a NUL character, which Postgres cannot store",
                    model.escape_debug(),
                    path.escape_debug()
                ));
            }
            field_type(model, &path, &field.ty)?;
        }
        Ok(())
    }
    fn field_type(model: &str, path: &str, ty: &FieldType) -> Result<(), String> {
        match ty {
            FieldType::Nested { fields: nested } => fields(model, path, nested),
            FieldType::Array { items } => field_type(model, path, items),
            FieldType::Union { members } => members
                .iter()
                .try_for_each(|member| field_type(model, path, member)),
            FieldType::Literal {
                value: serde_json::Value::String(text),
            } if text.contains('\0') => Err(format!(
                "model \"{}\", field \"{}\": a literal type holds a NUL character, which Postgres cannot store",
                model.escape_debug(),
                path.escape_debug()
            )),
            _ => Ok(()),
        }
    }
    fields(&model.name, "", &model.fields)?;
    if let Some(dynamic) = &model.dynamic {
        field_type(&model.name, "__string", dynamic)?;
    }
    Ok(())
}

/// The view name a model gets when nothing else has it: its snake case, shortened past 63 bytes.
fn natural_view_name(model: &str) -> String {
    shorten(&snake_case(model))
}

/// `name` when it is a valid identifier Postgres keeps whole; a longer one is cut at a character boundary and
/// ends with `_` and 8 hex digits of the md5 of the whole name, so two long names that share their start
/// still differ, and the same name is shortened the same way at every deploy.
fn shorten(name: &str) -> String {
    if name.is_empty() {
        return UNNAMED.into();
    }
    if name.len() <= MAX_IDENTIFIER_BYTES {
        return name.into();
    }
    let digest = Md5::digest(name.as_bytes());
    let hash: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("{}_{hash}", cut(name, MAX_IDENTIFIER_BYTES - 9))
}

/// The longest start of `name` of at most `bytes` bytes that ends at a character boundary.
fn cut(name: &str, bytes: usize) -> &str {
    let mut end = bytes.min(name.len());
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// `base` if it is free, else the first of `base_2`, `base_3`, … (cut to fit 63 bytes) that is.
fn free_name(base: &str, taken: &BTreeSet<String>) -> String {
    if !taken.contains(base) {
        return base.into();
    }
    (2..)
        .map(|n| {
            let suffix = format!("_{n}");
            format!("{}{suffix}", cut(base, MAX_IDENTIFIER_BYTES - suffix.len()))
        })
        .find(|candidate| !taken.contains(candidate))
        .unwrap_or_default()
}

/// A model's columns in their natural order. Fields whose exact name is a valid, free column name get it
/// first, so a field is never renamed because another field was added; the others (too long, empty, or
/// named like a metadata column) are shortened or suffixed, with a warning each.
fn plan_columns(model: &Model, view: &str, warnings: &mut Vec<String>) -> Vec<Column> {
    let mut taken: BTreeSet<String> = METADATA.iter().map(|(n, _, _)| n.to_string()).collect();
    let exact: Vec<bool> = model
        .fields
        .iter()
        .map(|f| {
            !f.name.is_empty() && f.name.len() <= MAX_IDENTIFIER_BYTES && !taken.contains(&f.name)
        })
        .collect();
    for (field, exact) in model.fields.iter().zip(&exact) {
        if *exact {
            taken.insert(field.name.clone());
        }
    }
    let mut columns = Vec::new();
    for (field, exact) in model.fields.iter().zip(&exact) {
        let name = if *exact {
            field.name.clone()
        } else {
            let name = free_name(&shorten(&field.name), &taken);
            taken.insert(name.clone());
            warnings.push(format!(
                "model \"{}\", field \"{}\": its column in {} is {} ({})",
                model.name.escape_debug(),
                field.name.escape_debug(),
                qualified(view),
                quote_ident(&name),
                if field.name.len() > MAX_IDENTIFIER_BYTES {
                    "Postgres keeps 63 bytes of a name"
                } else if field.name.is_empty() {
                    "an empty name is no column name"
                } else {
                    "the name is a metadata column's"
                }
            ));
            name
        };
        let (sql_type, expression) = field_column(&field.ty, &field.name);
        columns.push(Column {
            name,
            sql_type,
            expression,
        });
    }
    columns.extend(METADATA.iter().map(|(name, sql_type, expression)| Column {
        name: name.to_string(),
        sql_type,
        expression: expression.to_string(),
    }));
    columns
}

/// The SQL type and read expression of a field.
fn field_column(field_type: &FieldType, key: &str) -> (&'static str, String) {
    let json = format!("r.data -> {}", quote_literal(key));
    let text = format!("r.data ->> {}", quote_literal(key));
    match scalar_kind(field_type) {
        Some(Scalar::Text) => ("text", text),
        Some(Scalar::Number) => ("double precision", format!("nango._as_number({json})")),
        Some(Scalar::Boolean) => ("boolean", format!("nango._as_boolean({json})")),
        Some(Scalar::Date) => (
            "timestamp with time zone",
            format!("nango._as_timestamptz({text})"),
        ),
        None => ("jsonb", json),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Scalar {
    Text,
    Number,
    Boolean,
    Date,
}

fn scalar_kind(field_type: &FieldType) -> Option<Scalar> {
    match field_type {
        FieldType::String => Some(Scalar::Text),
        FieldType::Number => Some(Scalar::Number),
        FieldType::Boolean => Some(Scalar::Boolean),
        FieldType::Date => Some(Scalar::Date),
        FieldType::Literal { value } => match value {
            serde_json::Value::String(_) => Some(Scalar::Text),
            serde_json::Value::Number(_) => Some(Scalar::Number),
            serde_json::Value::Bool(_) => Some(Scalar::Boolean),
            _ => None,
        },
        FieldType::Union { members } => {
            let kinds: Vec<Option<Scalar>> = members
                .iter()
                .filter(|m| !matches!(m, FieldType::Null | FieldType::Undefined))
                .map(scalar_kind)
                .collect();
            let first = *kinds.first()?;
            kinds.iter().all(|k| *k == first).then_some(first).flatten()
        }
        _ => None,
    }
}

/// How a deploy brings a view to its plan, given the columns the view has now.
#[derive(Debug, Clone, PartialEq)]
pub enum ViewChange {
    /// `CREATE OR REPLACE VIEW`: the view is new, or its columns stay as they are, in front of any new ones
    /// (what Postgres allows), so grants and the views built on it are kept.
    Replace(String),
    /// `CREATE VIEW` after dropping the old one (a column was removed or changed type); the deploy carries
    /// the grants over.
    Recreate(String),
}

impl ViewPlan {
    /// The DDL that brings the view to this plan. `existing` holds the (name, `format_type`) of the columns
    /// the view has now, in order (empty when there is no view).
    pub fn change(&self, existing: &[(String, String)]) -> ViewChange {
        // The columns the view keeps, where they are, then the new ones.
        let mut ordered: Vec<&Column> = existing
            .iter()
            .filter_map(|(name, _)| self.columns.iter().find(|c| &c.name == name))
            .collect();
        ordered.extend(
            self.columns
                .iter()
                .filter(|c| !existing.iter().any(|(name, _)| name == &c.name)),
        );
        let keeps_prefix = existing.len() <= ordered.len()
            && existing
                .iter()
                .zip(&ordered)
                .all(|((name, ty), c)| name == &c.name && ty == c.sql_type);
        if keeps_prefix {
            ViewChange::Replace(self.sql("CREATE OR REPLACE VIEW", &ordered))
        } else {
            let natural: Vec<&Column> = self.columns.iter().collect();
            ViewChange::Recreate(self.sql("CREATE VIEW", &natural))
        }
    }

    fn sql(&self, create: &str, columns: &[&Column]) -> String {
        let list: Vec<String> = columns
            .iter()
            .map(|c| format!("{} AS {}", c.expression, quote_ident(&c.name)))
            .collect();
        format!(
            "{create} {} AS SELECT {} FROM nango.stored_records r JOIN nango.connections c ON c.id = r.connection WHERE r.model = {}",
            qualified(&self.view),
            list.join(", "),
            quote_literal(&self.model)
        )
    }
}

/// The GRANT that gives back one privilege read from a view's ACL (`aclexplode`): `grantee` is the role's
/// name, `None` for PUBLIC. Only table privileges are accepted, as they are spliced in as keywords.
pub fn grant_sql(
    view: &str,
    privilege: &str,
    grantee: Option<&str>,
    grantable: bool,
) -> Result<String, String> {
    const PRIVILEGES: [&str; 7] = [
        "SELECT",
        "INSERT",
        "UPDATE",
        "DELETE",
        "TRUNCATE",
        "REFERENCES",
        "TRIGGER",
    ];
    if !PRIVILEGES.contains(&privilege) {
        return Err(format!(
            "unexpected privilege \"{}\" on {}",
            privilege.escape_debug(),
            qualified(view)
        ));
    }
    Ok(format!(
        "GRANT {privilege} ON {} TO {}{}",
        qualified(view),
        grantee.map_or_else(|| "PUBLIC".to_string(), quote_ident),
        if grantable { " WITH GRANT OPTION" } else { "" }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn models(yaml: &str) -> BTreeMap<String, Model> {
        let yaml: serde_yaml::Mapping = serde_yaml::from_str(yaml).unwrap();
        crate::config::models::parse_models(&yaml, &mut Vec::new()).unwrap()
    }

    fn plan(yaml: &str) -> (Vec<ViewPlan>, Vec<String>) {
        plan_views(&models(yaml), &BTreeMap::new(), &BTreeSet::new()).unwrap()
    }

    fn sql(plan: &ViewPlan) -> String {
        match plan.change(&[]) {
            ViewChange::Replace(sql) => sql,
            other => panic!("{other:?}"),
        }
    }

    fn column_names(plan: &ViewPlan) -> Vec<&str> {
        plan.columns.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn names() {
        assert_eq!(snake_case("GithubIssue"), "github_issue");
        assert_eq!(snake_case("HTTPRequest"), "http_request");
        assert_eq!(snake_case("Ticket2Comment"), "ticket2_comment");
        assert_eq!(snake_case("ticket"), "ticket");
    }

    #[test]
    fn literals_are_quoted_as_postgres_does() {
        assert_eq!(quote_literal("plain"), "'plain'");
        assert_eq!(quote_literal("it's"), "'it''s'");
        // A backslash makes an E'' literal, whose escapes mean the same under either
        // standard_conforming_strings: the attack `\'` stays one backslash and one quote inside the string.
        assert_eq!(
            quote_literal("\\' AS x; ALTER ROLE me SUPERUSER; --"),
            "E'\\\\'' AS x; ALTER ROLE me SUPERUSER; --'"
        );
        assert_eq!(quote_literal("E'x"), "'E''x'");
        assert_eq!(quote_literal("\\\\"), "E'\\\\\\\\'");
        assert_eq!(quote_literal("ünï'cødé ✓"), "'ünï''cødé ✓'");
        assert_eq!(quote_literal(""), "''");
    }

    /// Reads an SQL string literal back as a lexer does under the given standard_conforming_strings; returns
    /// the text and what follows the literal.
    fn lex_literal(sql: &str, standard: bool) -> (String, &str) {
        let (escapes, rest) = match sql.strip_prefix("E'") {
            Some(rest) => (true, rest),
            None => (!standard, sql.strip_prefix('\'').unwrap()),
        };
        let mut text = String::new();
        let mut chars = rest.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' if escapes => text.push(chars.next().unwrap().1),
                '\'' if rest[i + 1..].starts_with('\'') => {
                    chars.next();
                    text.push('\'');
                }
                '\'' => return (text, &rest[i + 1..]),
                c => text.push(c),
            }
        }
        panic!("unterminated literal in {sql}");
    }

    #[test]
    fn a_quoted_literal_reads_back_whole_under_either_setting() {
        for text in [
            "\\' AS x FROM nango.stored_records r; ALTER ROLE me SUPERUSER; --",
            "a'b",
            "\\",
            "\\\\'",
            "E'\\x27'",
            "''\\''",
            "ünï\\cødé",
        ] {
            for standard in [true, false] {
                let quoted = quote_literal(text);
                let (read, rest) = lex_literal(&quoted, standard);
                assert_eq!(read, text, "{quoted} with standard={standard}");
                assert_eq!(rest, "", "{quoted} with standard={standard}");
            }
        }
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("name"), "\"name\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_ident("\\\"; DROP"), "\"\\\"\"; DROP\"");
        assert_eq!(quote_ident("E'x"), "\"E'x\"");
        assert_eq!(quote_ident("ünï"), "\"ünï\"");
        assert_eq!(
            qualified("http_request_2"),
            "nango_records.\"http_request_2\""
        );
    }

    #[test]
    fn view_columns() {
        let (plans, warnings) = plan(
            "Ticket:\n  id: integer\n  subject: string\n  state: open | closed\n  done?: boolean\n  due: date\n  tags: string[]\n",
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        let sql = sql(&plans[0]);
        assert!(
            sql.starts_with("CREATE OR REPLACE VIEW nango_records.\"ticket\" AS SELECT "),
            "{sql}"
        );
        assert!(
            sql.contains("nango._as_number(r.data -> 'id') AS \"id\""),
            "{sql}"
        );
        assert!(sql.contains("r.data ->> 'state' AS \"state\""));
        assert!(sql.contains("nango._as_boolean(r.data -> 'done') AS \"done\""));
        assert!(sql.contains("nango._as_timestamptz(r.data ->> 'due') AS \"due\""));
        assert!(sql.contains("r.data -> 'tags' AS \"tags\""));
        assert!(sql.ends_with("WHERE r.model = 'Ticket'"));
    }

    #[test]
    fn a_field_named_to_inject_stays_a_quoted_key_and_column() {
        let (plans, _) = plan(
            "Evil:\n  '\\'' FROM nango.stored_records r; ALTER ROLE me SUPERUSER; --': string\n",
        );
        let sql = sql(&plans[0]);
        assert!(
            sql.contains(
                "r.data ->> E'\\\\'' FROM nango.stored_records r; ALTER ROLE me SUPERUSER; --' AS \"\\' FROM nango.stored_records r; ALTER ROLE me SUPERUSER; --\""
            ),
            "{sql}"
        );
    }

    #[test]
    fn nul_in_a_name_is_refused_naming_model_and_field() {
        let error = plan_views(
            &models("Ticket:\n  \"a\\0b\": string\n"),
            &BTreeMap::new(),
            &BTreeSet::new(),
        )
        .unwrap_err();
        assert_eq!(
            error,
            "model \"Ticket\", field \"a\\0b\": the field name holds a NUL character, which Postgres cannot store"
        );
        let error = plan_views(
            &models("Ticket:\n  meta:\n    \"x\\0\": string\n"),
            &BTreeMap::new(),
            &BTreeSet::new(),
        )
        .unwrap_err();
        assert!(error.contains("field \"meta.x\\0\""), "{error}");
        // The model grammar allows letters, digits and _ in a model name; this holds without it.
        let model = Model {
            name: "Tick\0et".into(),
            fields: Vec::new(),
            dynamic: None,
        };
        let error = plan_views(
            &BTreeMap::from([(model.name.clone(), model)]),
            &BTreeMap::new(),
            &BTreeSet::new(),
        )
        .unwrap_err();
        assert!(error.starts_with("model \"Tick\\0et\": its name holds a NUL"));
    }

    #[test]
    fn models_that_map_to_one_view_are_told_apart() {
        let (plans, warnings) = plan(
            "name:\n  id: string\nName:\n  id: string\nHTTPRequest:\n  id: string\nHttpRequest:\n  id: string\n",
        );
        let views: BTreeMap<&str, &str> = plans
            .iter()
            .map(|p| (p.model.as_str(), p.view.as_str()))
            .collect();
        assert_eq!(
            views,
            BTreeMap::from([
                ("HTTPRequest", "http_request"),
                ("HttpRequest", "http_request_2"),
                ("Name", "name"),
                ("name", "name_2"),
            ])
        );
        assert_eq!(
            warnings,
            [
                "model \"HttpRequest\": its view is nango_records.\"http_request_2\" (nango_records.\"http_request\" is taken by another model or relation)",
                "model \"name\": its view is nango_records.\"name_2\" (nango_records.\"name\" is taken by another model or relation)",
            ]
        );
        // Each view reads its own model's records.
        assert!(sql(&plans[3]).ends_with("WHERE r.model = 'name'"));
    }

    #[test]
    fn a_model_keeps_its_view_name_across_deploys() {
        // `name` was deployed first; `Name` comes later and must not take its view.
        let previous = BTreeMap::from([("name".to_string(), Some("name".to_string()))]);
        let (plans, warnings) = plan_views(
            &models("name:\n  id: string\nName:\n  id: string\n"),
            &previous,
            &BTreeSet::new(),
        )
        .unwrap();
        assert_eq!(plans[0].model, "Name");
        assert_eq!(plans[0].view, "name_2");
        assert_eq!(plans[1].view, "name");
        assert_eq!(warnings.len(), 1);
        // Names kept are kept as they are, also one that is no longer natural.
        let previous = BTreeMap::from([("Ticket".to_string(), Some("ticket_2".to_string()))]);
        let (plans, _) = plan_views(
            &models("Ticket:\n  id: string\n"),
            &previous,
            &BTreeSet::new(),
        )
        .unwrap();
        assert_eq!(plans[0].view, "ticket_2");
        // A relation that is no model's view is never taken.
        let (plans, _) = plan_views(
            &models("Ticket:\n  id: string\n"),
            &BTreeMap::new(),
            &BTreeSet::from(["ticket".to_string(), "ticket_2".to_string()]),
        )
        .unwrap();
        assert_eq!(plans[0].view, "ticket_3");
    }

    #[test]
    fn long_names_are_shortened_uniquely_and_stably() {
        let long_a = format!("{}_a", "x".repeat(68));
        let long_b = format!("{}_b", "x".repeat(68));
        let (plans, warnings) = plan(&format!(
            "Ticket:\n  {long_a}: string\n  {long_b}: string\n  {}: string\n",
            "é".repeat(40)
        ));
        let names = column_names(&plans[0]);
        assert!(names[..3].iter().all(|n| n.len() <= MAX_IDENTIFIER_BYTES));
        assert_ne!(names[0], names[1]);
        assert!(names[0].starts_with(&"x".repeat(54)), "{}", names[0]);
        assert_eq!(names[0].len(), 63);
        // Cut at a character boundary.
        assert!(names[2].starts_with(&"é".repeat(27)), "{}", names[2]);
        assert_eq!(warnings.len(), 3);
        assert!(warnings[0].contains("Postgres keeps 63 bytes of a name"));
        // The same name is shortened the same way every time.
        assert_eq!(
            plan(&format!("Ticket:\n  {long_a}: string\n")).0[0].columns[0].name,
            names[0]
        );
        // A long model name too, and its view reads its records by the whole name.
        let model = format!("Very{}", "Long".repeat(20));
        let (plans, _) = plan(&format!("{model}:\n  id: string\n"));
        assert!(plans[0].view.len() <= MAX_IDENTIFIER_BYTES);
        assert!(sql(&plans[0]).ends_with(&format!("WHERE r.model = '{model}'")));
    }

    #[test]
    fn a_field_named_like_a_metadata_column_gets_another_column() {
        let (plans, warnings) = plan(
            "Ticket:\n  _nango_cursor: string\n  _nango_cursor_2: string\n  \"\": string\n  Id: string\n  id: string\n",
        );
        assert_eq!(
            &column_names(&plans[0])[..5],
            ["_nango_cursor_3", "_nango_cursor_2", "unnamed", "Id", "id"]
        );
        assert!(column_names(&plans[0]).contains(&"_nango_cursor"));
        let sql = sql(&plans[0]);
        assert!(sql.contains("r.data ->> '_nango_cursor' AS \"_nango_cursor_3\""));
        assert!(sql.contains("r.cursor::text AS \"_nango_cursor\""));
        assert!(sql.contains("r.data ->> '' AS \"unnamed\""));
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("the name is a metadata column's"));
    }

    #[test]
    fn a_view_is_replaced_in_place_when_its_columns_allow() {
        let (before, _) = plan("Ticket:\n  id: string\n  n: number\n");
        let existing: Vec<(String, String)> = before[0]
            .columns
            .iter()
            .map(|c| (c.name.clone(), c.sql_type.to_string()))
            .collect();
        // Same columns: replaced.
        assert!(matches!(
            before[0].change(&existing),
            ViewChange::Replace(_)
        ));
        // A field added in front: kept columns stay where they are, the new one comes last.
        let (after, _) = plan("Ticket:\n  added: string\n  id: string\n  n: number\n");
        let ViewChange::Replace(sql) = after[0].change(&existing) else {
            panic!("not replaced");
        };
        assert!(
            sql.contains(
                "r.cursor::text AS \"_nango_cursor\", r.data ->> 'added' AS \"added\" FROM"
            ),
            "{sql}"
        );
        // A type changed or a field removed: recreated, in natural order.
        let (changed, _) = plan("Ticket:\n  id: string\n  n: string\n");
        assert!(
            matches!(changed[0].change(&existing), ViewChange::Recreate(sql) if sql.starts_with("CREATE VIEW"))
        );
        let (removed, _) = plan("Ticket:\n  id: string\n");
        assert!(matches!(
            removed[0].change(&existing),
            ViewChange::Recreate(_)
        ));
    }

    #[test]
    fn grants_are_rebuilt_quoted() {
        assert_eq!(
            grant_sql("ticket", "SELECT", Some("analyst\"; --"), false).unwrap(),
            "GRANT SELECT ON nango_records.\"ticket\" TO \"analyst\"\"; --\""
        );
        assert_eq!(
            grant_sql("ticket", "INSERT", None, true).unwrap(),
            "GRANT INSERT ON nango_records.\"ticket\" TO PUBLIC WITH GRANT OPTION"
        );
        assert!(grant_sql("ticket", "ALL; DROP", None, false).is_err());
    }
}
