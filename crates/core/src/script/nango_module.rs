//! The `nango` module a script of Nango's zero-YAML format imports its definition helpers from:
//! `export default createSync({ … })`. As in Nango's runtime SDK, each helper returns its parameters with the
//! kind of script under `type`; the deploy reads that object (by running the module's top level) and a run
//! calls its `exec`. `nango/experimental`'s `createFunction` and the newer `createWebhook` resolve too, so a
//! deploy can refuse their definitions by name instead of failing on an import.

/// The internal module both specifiers resolve to.
pub const INTERNAL: &str = "pg_nango:nango";

/// The specifiers that name the module.
pub fn is_nango_import(specifier: &str) -> bool {
    matches!(specifier, "nango" | "nango/experimental")
}

/// The module's source.
pub const SOURCE: &str = "\
export function createSync(params) { return { type: 'sync', ...params }; }
export function createAction(params) { return { type: 'action', ...params }; }
export function createOnEvent(params) { return { type: 'onEvent', ...params }; }
export function createFunction(params) { return { type: 'function', ...params }; }
export function createWebhook(params) { return { type: 'webhook', ...params }; }
";
