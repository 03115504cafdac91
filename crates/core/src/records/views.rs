//! The typed views `nango_records.<model_in_snake_case>`: one column per top-level model field, named exactly
//! as the field, typed by the model grammar, plus the `_nango_*` metadata columns.

use crate::config::{FieldType, Model};

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

/// Double-quotes an SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Single-quotes an SQL literal.
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The SQL column type and read expression of a field.
fn column(field_type: &FieldType, key: &str) -> String {
    let json = format!("r.data -> {}", quote_literal(key));
    let text = format!("r.data ->> {}", quote_literal(key));
    match scalar_kind(field_type) {
        Some(Scalar::Text) => text,
        Some(Scalar::Number) => format!("nango._as_number({json})"),
        Some(Scalar::Boolean) => format!("nango._as_boolean({json})"),
        Some(Scalar::Date) => format!("nango._as_timestamptz({text})"),
        None => json,
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

/// The qualified name of a model's typed view: `nango_records."github_issue"`.
pub fn view_name(model: &str) -> String {
    format!("nango_records.{}", quote_ident(&snake_case(model)))
}

/// `DROP VIEW IF EXISTS` + `CREATE VIEW` for a model.
pub fn view_sql(model: &Model) -> String {
    let view = view_name(&model.name);
    let mut columns: Vec<String> = model
        .fields
        .iter()
        .map(|f| format!("{} AS {}", column(&f.ty, &f.name), quote_ident(&f.name)))
        .collect();
    columns.extend([
        "c.connection_id AS _nango_connection_id".to_string(),
        "c.provider_config_key AS _nango_provider_config_key".into(),
        "r.first_seen_at AS _nango_first_seen_at".into(),
        "r.last_modified_at AS _nango_last_modified_at".into(),
        "r.last_action AS _nango_last_action".into(),
        "r.deleted_at AS _nango_deleted_at".into(),
        "r.cursor::text AS _nango_cursor".into(),
    ]);
    format!(
        "DROP VIEW IF EXISTS {view}; CREATE VIEW {view} AS SELECT {} FROM nango.stored_records r JOIN nango.connections c ON c.id = r.connection WHERE r.model = {}",
        columns.join(", "),
        quote_literal(&model.name)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(snake_case("GithubIssue"), "github_issue");
        assert_eq!(snake_case("HTTPRequest"), "http_request");
        assert_eq!(snake_case("Ticket2Comment"), "ticket2_comment");
        assert_eq!(snake_case("ticket"), "ticket");
    }

    #[test]
    fn view_columns() {
        let yaml: serde_yaml::Mapping = serde_yaml::from_str("Ticket:\n  id: integer\n  subject: string\n  state: open | closed\n  done?: boolean\n  due: date\n  tags: string[]\n").unwrap();
        let models = crate::config::models::parse_models(&yaml, &mut Vec::new()).unwrap();
        let sql = view_sql(&models["Ticket"]);
        assert!(
            sql.contains("nango._as_number(r.data -> 'id') AS \"id\""),
            "{sql}"
        );
        assert!(sql.contains("r.data ->> 'state' AS \"state\""));
        assert!(sql.contains("nango._as_timestamptz(r.data ->> 'due') AS \"due\""));
        assert!(sql.contains("r.data -> 'tags' AS \"tags\""));
        assert!(sql.starts_with("DROP VIEW IF EXISTS nango_records.\"ticket\";"));
    }
}
