//! QuickJS' wording of the common `TypeError`s rewritten into Node's, so that a script fails with the
//! message it gives on Nango's runner (`Cannot read properties of undefined (reading 'x')`), which users
//! search for and tests compare.
//!
//! QuickJS names no expression in `not a function` and gives a Symbol key by its description only, so those
//! stay as they are; `x is not defined` already reads as Node's.

/// The message Node gives for this error, or the message unchanged when it is not one Node words
/// differently.
pub fn node_wording(name: Option<&str>, message: &str) -> String {
    if name != Some("TypeError") {
        return message.to_string();
    }
    for (quickjs, node, verb) in [
        (
            "cannot read property '",
            "Cannot read properties of",
            "reading",
        ),
        (
            "cannot set property '",
            "Cannot set properties of",
            "setting",
        ),
    ] {
        let Some(rest) = message.strip_prefix(quickjs) else {
            continue;
        };
        for target in ["undefined", "null"] {
            if let Some(key) = rest.strip_suffix(&format!("' of {target}")) {
                return format!("{node} {target} ({verb} '{key}')");
            }
        }
    }
    message.to_string()
}

#[cfg(test)]
mod tests {
    use super::node_wording;

    #[test]
    fn property_access_on_undefined_or_null_reads_as_node() {
        let type_error = Some("TypeError");
        assert_eq!(
            node_wording(type_error, "cannot read property 'x' of undefined"),
            "Cannot read properties of undefined (reading 'x')"
        );
        assert_eq!(
            node_wording(type_error, "cannot read property 'a b' of null"),
            "Cannot read properties of null (reading 'a b')"
        );
        assert_eq!(
            node_wording(type_error, "cannot set property '0' of undefined"),
            "Cannot set properties of undefined (setting '0')"
        );
        // A key holding the words of the pattern is kept whole.
        assert_eq!(
            node_wording(
                type_error,
                "cannot read property 'it' of null' of undefined"
            ),
            "Cannot read properties of undefined (reading 'it' of null')"
        );
    }

    #[test]
    fn other_errors_are_unchanged() {
        let message = "cannot read property 'x' of undefined";
        assert_eq!(node_wording(Some("Error"), message), message);
        assert_eq!(node_wording(None, message), message);
        assert_eq!(
            node_wording(Some("TypeError"), "not a function"),
            "not a function"
        );
        assert_eq!(
            node_wording(Some("ReferenceError"), "nope is not defined"),
            "nope is not defined"
        );
    }
}
