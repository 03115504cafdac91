//! YAML read with its alias expansion bounded.
//!
//! An alias (`*a`) stands for a copy of what its anchor (`&a`) names, so a few hundred bytes of anchors that
//! each repeat the one before ("billion laughs") stand for billions of values. serde_yaml stops after 100
//! alias jumps per event of the document, but a jump can copy a large anchor: 50,000 aliases of an anchor
//! of 50,000 values pass that check and would build 2.5 billion values (hundreds of gigabytes). So the
//! document's values are first counted without being built, through the same deserializer (nesting is
//! limited to 128 by serde_yaml), stopping at [`MAX_YAML_VALUES`]; only a document within the bound is
//! built.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The most values (scalars, sequences and mappings, aliases counted as what they copy) a YAML document
/// may hold. Nango's complete providers.yaml holds about 60,000; a `nango.yaml` a few thousand.
pub const MAX_YAML_VALUES: usize = 1_000_000;

/// Why a document was refused.
#[derive(Debug)]
pub enum YamlError {
    /// Not YAML, or refused by serde_yaml (nesting deeper than 128, its own repetition limit).
    Syntax(serde_yaml::Error),
    /// More than [`MAX_YAML_VALUES`] values once aliases are expanded.
    TooLarge,
}

impl fmt::Display for YamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            YamlError::Syntax(e) if e.to_string().contains("repetition limit exceeded") => {
                f.write_str(&too_large_message())
            }
            YamlError::Syntax(e) => e.fmt(f),
            YamlError::TooLarge => f.write_str(&too_large_message()),
        }
    }
}

fn too_large_message() -> String {
    format!(
        "the document expands to more than {MAX_YAML_VALUES} values once its aliases (*name) are replaced by what they refer to"
    )
}

impl YamlError {
    /// The 1-based line of a syntax error, when serde_yaml knows it.
    pub fn line(&self) -> Option<usize> {
        match self {
            YamlError::Syntax(e) => e.location().map(|l| l.line()),
            YamlError::TooLarge => None,
        }
    }
}

/// Parses `text` into a [`serde_yaml::Value`], refusing documents that expand beyond [`MAX_YAML_VALUES`].
pub fn parse_bounded(text: &str) -> Result<serde_yaml::Value, YamlError> {
    let mut remaining = MAX_YAML_VALUES;
    let counted = Count(&mut remaining).deserialize(serde_yaml::Deserializer::from_str(text));
    match counted {
        Ok(()) => serde_yaml::from_str(text).map_err(YamlError::Syntax),
        Err(_) if remaining == 0 => Err(YamlError::TooLarge),
        Err(e) => Err(YamlError::Syntax(e)),
    }
}

/// Counts one value and those inside it down from the budget; an error once the budget is spent.
struct Count<'a>(&'a mut usize);

impl Count<'_> {
    fn take<E: serde::de::Error>(&mut self) -> Result<(), E> {
        if *self.0 == 0 {
            return Err(E::custom("too many values"));
        }
        *self.0 -= 1;
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Count<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

macro_rules! count_scalars {
    ($($name:ident: $type:ty),*) => {
        $(fn $name<E: serde::de::Error>(mut self, _: $type) -> Result<(), E> {
            self.take()
        })*
    };
}

impl<'de> Visitor<'de> for Count<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("YAML")
    }

    count_scalars!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_f64: f64, visit_str: &str);

    fn visit_unit<E: serde::de::Error>(mut self) -> Result<(), E> {
        self.take()
    }

    fn visit_none<E: serde::de::Error>(mut self) -> Result<(), E> {
        self.take()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        self.take()?;
        while seq.next_element_seed(Count(self.0))?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        self.take()?;
        while map.next_key_seed(Count(self.0))?.is_some() {
            map.next_value_seed(Count(self.0))?;
        }
        Ok(())
    }

    fn visit_enum<A: serde::de::EnumAccess<'de>>(mut self, data: A) -> Result<(), A::Error> {
        // A tagged value (`!tag value`): counted as one, its content skipped by serde.
        self.take()?;
        let (IgnoredAny, variant) = data.variant::<IgnoredAny>()?;
        serde::de::VariantAccess::newtype_variant_seed(variant, Count(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ten levels of ten aliases each: 10^10 values from 500 bytes.
    fn billion_laughs() -> String {
        let mut text = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for level in 1..10 {
            let previous = format!("*a{}", level - 1);
            let items = [previous.as_str(); 10].join(", ");
            text.push_str(&format!("a{level}: &a{level} [{items}]\n"));
        }
        text
    }

    #[test]
    fn alias_bombs_are_refused_quickly() {
        let started = std::time::Instant::now();
        let error = parse_bounded(&billion_laughs()).unwrap_err();
        assert!(
            error.to_string().contains("expands to more than"),
            "{error}"
        );
        // One large anchor copied many times passes serde_yaml's own check.
        let mut text = String::from("big: &big [");
        text.push_str(&vec!["1"; 20_000].join(","));
        text.push_str("]\ncopies: [");
        text.push_str(&vec!["*big"; 20_000].join(","));
        text.push_str("]\n");
        let error = parse_bounded(&text).unwrap_err();
        assert!(matches!(error, YamlError::TooLarge), "{error}");
        assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
    }

    #[test]
    fn ordinary_documents_and_their_aliases_are_read() {
        let value = parse_bounded("base: &b {x: 1}\nother: *b\nlist: [1, 2]\n").unwrap();
        assert_eq!(value["other"]["x"], serde_yaml::Value::from(1));
        assert!(parse_bounded("a: [\n").unwrap_err().line().is_some());
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(parse_bounded(&deep).is_err());
    }
}
