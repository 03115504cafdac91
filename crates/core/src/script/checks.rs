//! The refusals and warnings of Nango's `nango compile` for a zero-YAML project, as a pass over oxc's tree.
//!
//! Nango's CLI bundles each entry file that `index.ts` lists and, on every `.ts` file the bundle loads (the
//! entry and the files it imports relatively), runs a Babel visitor that refuses:
//! - an import of a package outside [`ALLOWED_PACKAGES`] (relative paths and `import type` excepted);
//! - a call `nango.<m>(…)` of a method in [`NEEDS_AWAIT`] with no `await`, no `.then`/`.catch` member and
//!   no `return` anywhere among its ancestors (Babel's `findParent`, which crosses function boundaries:
//!   `await Promise.all(xs.map((x) => nango.get(x)))` passes; `void nango.log()`, an arrow function's
//!   expression body and an optional call `nango?.log()` are not looked at or do not count);
//! - a `nango.<m>({…})` call whose first argument, an object literal, has a `retryOn` property and no
//!   `retries` property;
//! - in an entry file, a named export other than [`ALLOWED_EXPORTS`] (declarations of functions and
//!   variables, and `export { … }` lists including `export type { … }`; re-exports `export … from` and type,
//!   interface, class and enum declarations pass), and a default export that is not `createX({…})` or a
//!   variable initialised with it.
//!
//! After a bundle is built, the calls made inside an `exec` property of the entry file are checked for
//! order by line: `setMergingStrategy` before the record and proxy calls, `deleteRecordsFromPreviousExecutions`
//! once and after the record calls, and per model named by a string literal one `trackDeletesStart` before
//! the record calls and one `trackDeletesEnd` after them.
//!
//! Messages are Nango's, word for word. Nango's CLI prints the line of the order errors one too far down;
//! here every error names the line and column where the call starts.

use oxc::allocator::Allocator;
use oxc::ast::AstKind;
use oxc::ast::ast::{
    Argument, CallExpression, ChainElement, Declaration, ExportDeclaration,
    ExportDefaultDeclaration, ExportFromDeclaration, ExportNamedDeclaration, Expression,
    FunctionType, ImportDeclaration, ImportOrExportKind, ModuleExportName, ObjectExpression,
    ObjectPropertyKind, PropertyKey, PropertyKind, RegExpLiteral, StaticMemberExpression,
    StringLiteral, TSInterfaceDeclaration, TSType, TSTypeAliasDeclaration, TemplateElement,
};
use oxc::ast_visit::{Visit, walk};
use oxc::semantic::{Semantic, SemanticBuilder};

use super::compile::{self, CompileError, line_and_column};
use order::{At, Lines, Order};

mod order;

/// A refusal, located in the file it is about.
#[derive(Debug, Clone, PartialEq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error("{file}:{line}:{column}: {message}")]
pub struct CheckError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl From<CompileError> for CheckError {
    fn from(error: CompileError) -> Self {
        CheckError {
            file: error.file,
            line: error.line,
            column: error.column,
            message: error.message,
        }
    }
}

/// The bare module specifiers a script may import (Nango's `allowedPackages`, in its order: the refusal
/// lists them).
pub const ALLOWED_PACKAGES: [&str; 10] = [
    "nango/experimental",
    "url",
    "node:url",
    "crypto",
    "node:crypto",
    "nango",
    "zod",
    "unzipper",
    "soap",
    "botbuilder",
];

/// The `nango` methods whose promise must be awaited, returned or chained.
pub const NEEDS_AWAIT: [&str; 21] = [
    "batchDelete",
    "batchSave",
    "batchSend",
    "delete",
    "deleteRecordsFromPreviousExecutions",
    "get",
    "getConnection",
    "getEnvironmentVariables",
    "getFieldMapping",
    "getMetadata",
    "log",
    "patch",
    "post",
    "proxy",
    "put",
    "setFieldMapping",
    "setMergingStrategy",
    "setMetadata",
    "trackDeletesEnd",
    "trackDeletesStart",
    "triggerAction",
];

/// The names an entry file may export besides its default export.
pub const ALLOWED_EXPORTS: [&str; 4] = [
    "createAction",
    "createSync",
    "createOnEvent",
    "createFunction",
];

const BAD_DEFAULT_EXPORT: &str =
    "Invalid default export: should be createAction(), createSync() or createOnEvent()";
const NOT_AN_OBJECT: &str = "Invalid function parameter, should be an object";

/// Checks one TypeScript/JavaScript file of a zero-YAML project; `entry` is true for files `index.ts` lists.
///
/// `path` is the file's path inside the project (`crm/syncs/contacts.ts`): it names the file in errors,
/// and as in Nango only a `.ts` file gets the refusals (Nango's Babel pass loads `\.ts$` files only), while
/// the `console` warning concerns any file. Returns the warnings, each `file:line: message`: a file that
/// uses `console.*` (Nango looks at the bundled entry, after tree-shaking; this looks at each file's code,
/// strings included, types and comments excluded) and an entry that declares the deprecated
/// `trackDeletes: true`.
///
/// oxc runs as in [`compile::compile`]: in a child process on a large stack, after the same nesting limit,
/// so that a hostile file gives an error, never a crash.
pub fn check_file(path: &str, source: &str, entry: bool) -> Result<Vec<String>, CheckError> {
    // A refusal quotes at most one string of the source; warnings are two fixed sentences.
    let max_output = source
        .len()
        .saturating_mul(6)
        .saturating_add(path.len().saturating_mul(24))
        .saturating_add(1 << 16);
    compile::isolated(path, source, max_output, || {
        Ok(check_here(path, source, entry))
    })?
}

/// [`check_file`] in this process, on a thread with `stack_size` bytes of stack: nothing protects the process
/// from a file the nesting check misjudges. Tests use it to check that far less than
/// [`compile::COMPILE_STACK`] is enough at [`compile::MAX_NESTING`].
pub fn check_file_on_stack(
    path: &str,
    source: &str,
    entry: bool,
    stack_size: usize,
) -> Result<Vec<String>, CheckError> {
    compile::check_nesting(path, source)?;
    compile::on_thread(path, stack_size, || Ok(check_here(path, source, entry)))?
}

/// [`check_file`] on the caller's stack, unguarded.
fn check_here(path: &str, source: &str, entry: bool) -> Result<Vec<String>, CheckError> {
    let allocator = Allocator::default();
    let program = compile::parse(&allocator, path, source)?;
    let babel = path.ends_with(".ts");
    // Only an entry's default export needs bindings resolved.
    let semantic = (babel && entry).then(|| {
        SemanticBuilder::new()
            .with_build_nodes(true)
            .build(&program)
            .semantic
    });
    let mut walker = Walker {
        path,
        source,
        lines: Lines::new(source),
        entry: babel && entry,
        babel,
        semantic: semantic.as_ref(),
        settling: 0,
        in_exec: 0,
        error: None,
        order: Order::default(),
        console: None,
        definition: None,
    };
    walker.visit_program(&program);
    if let Some((offset, message)) = walker.error.take().or_else(|| walker.order.error()) {
        return Err(walker.located(offset, message));
    }
    Ok(walker.warnings())
}

struct Walker<'a, 's> {
    path: &'s str,
    source: &'s str,
    lines: Lines,
    /// Whether this is an entry file that Nango's Babel pass sees.
    entry: bool,
    /// Whether Nango's Babel pass sees this file (a `.ts` file).
    babel: bool,
    semantic: Option<&'s Semantic<'a>>,
    /// How many of the enclosing nodes await, return or chain `.then`/`.catch` ([`settles`]).
    settling: usize,
    /// How many of the enclosing nodes are properties named `exec` ([`names_exec`]).
    in_exec: usize,
    /// The first refusal met, as Babel meets them (in source order, a node before its children).
    error: Option<(u32, String)>,
    order: Order,
    /// Where `console.` first appears.
    console: Option<u32>,
    /// The default export's `createX` name and options object.
    definition: Option<(&'a str, &'a ObjectExpression<'a>)>,
}

impl<'a> Walker<'a, '_> {
    fn located(&self, offset: u32, message: String) -> CheckError {
        let (line, column) = line_and_column(self.source, offset as usize);
        CheckError {
            file: self.path.to_string(),
            line,
            column,
            message,
        }
    }

    fn refuse(&mut self, offset: u32, message: String) {
        if self.error.is_none() {
            self.error = Some((offset, message));
        }
    }

    fn checking(&self) -> bool {
        self.babel && self.error.is_none()
    }

    fn check_import(&mut self, it: &ImportDeclaration<'a>) {
        let source = it.source.value.as_str();
        if source.starts_with("./") || source.starts_with("../") {
            return;
        }
        if !ALLOWED_PACKAGES.contains(&source) && it.import_kind != ImportOrExportKind::Type {
            self.refuse(
                it.span.start,
                format!(
                    "Import of package '{source}' is not allowed. Allowed packages are: {}",
                    ALLOWED_PACKAGES.join(", ")
                ),
            );
        }
    }

    fn check_call(&mut self, call: &CallExpression<'a>) {
        // Babel makes a call in an optional chain an `OptionalCallExpression`, which the visitor skips.
        if call.optional || in_optional_chain(&call.callee) {
            return;
        }
        let Some((object, Some(method))) = member_parts(&call.callee) else {
            return;
        };
        if !matches!(bare(object), Expression::Identifier(id) if id.name == "nango") {
            return;
        }
        let offset = call.span.start;
        if NEEDS_AWAIT.contains(&method) && self.settling == 0 {
            self.refuse(
                offset,
                format!(
                    "nango.{method}() calls must be awaited in. Not awaiting can lead to unexpected results."
                ),
            );
            return;
        }
        if let Some(Expression::ObjectExpression(options)) =
            call.arguments.first().and_then(argument)
        {
            let has = |name: &str| {
                options.properties.iter().any(|p| {
                    matches!(p, ObjectPropertyKind::ObjectProperty(p)
                        if p.kind == PropertyKind::Init && !p.method && identifier_key(&p.key) == Some(name))
                })
            };
            if has("retryOn") && !has("retries") {
                self.refuse(
                    offset,
                    "Proxy call: 'retryOn' should not be used if 'retries' is not set.".into(),
                );
                return;
            }
        }
        if self.entry && self.in_exec > 0 {
            let model = match call.arguments.first().and_then(argument) {
                Some(Expression::StringLiteral(model)) => Some(model.value.as_str()),
                _ => None,
            };
            let at = At {
                offset,
                line: self.lines.line(offset),
            };
            self.order.record(method, model, at);
        }
    }

    fn check_named_export(&mut self, offset: u32, names: &[&str]) {
        for name in names {
            if !ALLOWED_EXPORTS.contains(name) {
                self.refuse(
                    offset,
                    format!(
                        "Named export '{name}' is not allowed. Only export default and {} are permitted.",
                        ALLOWED_EXPORTS.join(", ")
                    ),
                );
                return;
            }
        }
    }

    /// Nango accepts `export default createX({…})` and `export default v` where `v` is a variable
    /// initialised with `createX({…})`, and remembers the options object.
    fn check_default_export(&mut self, it: &'a ExportDefaultDeclaration<'a>) {
        let offset = it.span.start;
        let Some(declaration) = it.declaration.as_expression() else {
            return self.refuse(offset, BAD_DEFAULT_EXPORT.into());
        };
        let call = match bare(declaration) {
            Expression::CallExpression(call) if creator(call).is_some() => call,
            Expression::Identifier(id) => {
                let init = self.semantic.and_then(|semantic| {
                    let symbol = semantic.scoping().get_root_binding(id.name)?;
                    match semantic.symbol_declaration(symbol).kind() {
                        AstKind::VariableDeclarator(declarator) => declarator.init.as_ref(),
                        _ => None,
                    }
                });
                match init.map(bare) {
                    Some(Expression::CallExpression(call)) if creator(call).is_some() => call,
                    _ => return self.refuse(offset, BAD_DEFAULT_EXPORT.into()),
                }
            }
            _ => return self.refuse(offset, BAD_DEFAULT_EXPORT.into()),
        };
        match call.arguments.first().and_then(argument) {
            Some(Expression::ObjectExpression(options)) => {
                self.definition = creator(call).map(|name| (name, &**options));
            }
            _ => self.refuse(offset, NOT_AN_OBJECT.into()),
        }
    }

    fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let path = self.path;
        if let Some(offset) = self.console {
            warnings.push(format!(
                "{path}:{}: Function '{path}' contains console statements (console.log, console.warn, etc.). These logs will not appear in the Nango dashboard. Use await nango.log() instead to see logs in the dashboard.",
                self.lines.line(offset)
            ));
        }
        if let Some(("createSync", options)) = self.definition {
            // At run time the last property of that name wins; a value other than a literal is not known here.
            let track_deletes = options.properties.iter().rev().find_map(|p| match p {
                ObjectPropertyKind::ObjectProperty(p)
                    if p.kind == PropertyKind::Init
                        && !p.method
                        && p.key.static_name().as_deref() == Some("trackDeletes") =>
                {
                    Some(p)
                }
                _ => None,
            });
            let integration = path
                .trim_start_matches("./")
                .split_once('/')
                .map(|(first, _)| first);
            if let (Some(property), Some(integration)) = (track_deletes, integration)
                && matches!(bare(&property.value), Expression::BooleanLiteral(b) if b.value)
            {
                let file = path.rsplit('/').next().unwrap_or(path);
                let name = file.strip_suffix(".ts").unwrap_or(file);
                warnings.push(format!(
                    "{path}:{}: Sync '{name}' for integration '{integration}' has 'track_deletes' enabled. This feature is deprecated and will be removed in future versions. Please call 'nango.trackDeletesStart()' and 'nango.trackDeletesEnd()' in your sync function to automatically detect deletions.",
                    self.lines.line(property.span.start)
                ));
            }
        }
        warnings
    }

    fn saw_console(&mut self, offset: u32) {
        self.console.get_or_insert(offset);
    }
}

impl<'a> Visit<'a> for Walker<'a, '_> {
    // Babel's checks look at every ancestor of a call (`findParent`); counting the ancestors of each kind
    // as the walk enters and leaves them answers in constant time.
    fn enter_node(&mut self, kind: AstKind<'a>) {
        self.settling += usize::from(settles(&kind));
        self.in_exec += usize::from(names_exec(&kind));
    }

    fn leave_node(&mut self, kind: AstKind<'a>) {
        self.settling -= usize::from(settles(&kind));
        self.in_exec -= usize::from(names_exec(&kind));
    }

    fn visit_import_declaration(&mut self, it: &ImportDeclaration<'a>) {
        // Nothing inside an import is checked or reaches the bundle.
        if self.checking() {
            self.check_import(it);
        }
    }

    fn visit_export_from_declaration(&mut self, _it: &ExportFromDeclaration<'a>) {
        // Re-exports are allowed, and hold nothing else to check.
    }

    fn visit_export_named_declaration(&mut self, it: &ExportNamedDeclaration<'a>) {
        if self.entry && self.checking() {
            let names = it.specifiers.iter().filter_map(|s| match &s.exported {
                ModuleExportName::IdentifierName(id) => Some(id.name.as_str()),
                ModuleExportName::IdentifierReference(id) => Some(id.name.as_str()),
                ModuleExportName::StringLiteral(_) => None,
            });
            let names: Vec<&str> = names.collect();
            self.check_named_export(it.span.start, &names);
        }
        walk::walk_export_named_declaration(self, it);
    }

    fn visit_export_declaration(&mut self, it: &ExportDeclaration<'a>) {
        if self.entry && self.checking() {
            let mut names = Vec::new();
            match &it.declaration {
                Declaration::VariableDeclaration(variables) => {
                    for declarator in &variables.declarations {
                        if let Some(id) = declarator.id.get_binding_identifier() {
                            names.push(id.name.as_str());
                        }
                    }
                }
                Declaration::FunctionDeclaration(function)
                    if function.r#type == FunctionType::FunctionDeclaration =>
                {
                    if let Some(id) = &function.id {
                        names.push(id.name.as_str());
                    }
                }
                _ => {}
            }
            self.check_named_export(it.span.start, &names);
        }
        walk::walk_export_declaration(self, it);
    }

    fn visit_export_default_declaration(&mut self, it: &ExportDefaultDeclaration<'a>) {
        if self.entry && self.checking() {
            let it = self.alloc(it);
            self.check_default_export(it);
        }
        walk::walk_export_default_declaration(self, it);
    }

    fn visit_call_expression(&mut self, it: &CallExpression<'a>) {
        if self.checking() {
            self.check_call(it);
        }
        walk::walk_call_expression(self, it);
    }

    fn visit_static_member_expression(&mut self, it: &StaticMemberExpression<'a>) {
        // Nango searches the bundle for /\bconsole\.\w+/: `console.log`, `globalThis.console.warn`.
        let named_console = match strip_types(&it.object) {
            Expression::Identifier(id) => ends_with_console(&id.name),
            Expression::StaticMemberExpression(m) => ends_with_console(&m.property.name),
            _ => false,
        };
        if named_console
            && !it.optional
            && it
                .property
                .name
                .as_bytes()
                .first()
                .is_some_and(|&b| is_word_byte(b))
        {
            self.saw_console(it.span.start);
        }
        walk::walk_static_member_expression(self, it);
    }

    fn visit_string_literal(&mut self, it: &StringLiteral<'a>) {
        if mentions_console(&it.value) {
            self.saw_console(it.span.start);
        }
    }

    fn visit_template_element(&mut self, it: &TemplateElement<'a>) {
        if mentions_console(&it.value.raw) {
            self.saw_console(it.span.start);
        }
    }

    fn visit_reg_exp_literal(&mut self, it: &RegExpLiteral<'a>) {
        if mentions_console(&it.regex.pattern.text) {
            self.saw_console(it.span.start);
        }
    }

    // Types never reach the bundle and hold no call.
    fn visit_ts_type(&mut self, _it: &TSType<'a>) {}

    fn visit_ts_type_alias_declaration(&mut self, _it: &TSTypeAliasDeclaration<'a>) {}

    fn visit_ts_interface_declaration(&mut self, _it: &TSInterfaceDeclaration<'a>) {}
}

/// Whether a node counts, for a `nango` call inside it, as awaiting its promise: an `await`, a `return`,
/// or a member `.then`/`.catch` (not an optional one, which Babel gives another node type). Nango looks
/// no closer than that.
fn settles(kind: &AstKind<'_>) -> bool {
    let then_or_catch = |name: &str| matches!(name, "then" | "catch");
    match kind {
        AstKind::AwaitExpression(_) | AstKind::ReturnStatement(_) => true,
        AstKind::StaticMemberExpression(m) => {
            then_or_catch(&m.property.name) && !m.optional && !in_optional_chain(&m.object)
        }
        AstKind::ComputedMemberExpression(m) => {
            identifier_name(&m.expression).is_some_and(then_or_catch)
                && !m.optional
                && !in_optional_chain(&m.object)
        }
        _ => false,
    }
}

/// Whether a node is a property named `exec`: Babel's `ObjectProperty`, which is not a method and also
/// stands for the properties of destructuring patterns.
fn names_exec(kind: &AstKind<'_>) -> bool {
    match kind {
        AstKind::ObjectProperty(p) => {
            p.kind == PropertyKind::Init && !p.method && identifier_key(&p.key) == Some("exec")
        }
        AstKind::BindingProperty(p) => identifier_key(&p.key) == Some("exec"),
        AstKind::AssignmentTargetPropertyProperty(p) => identifier_key(&p.name) == Some("exec"),
        AstKind::AssignmentTargetPropertyIdentifier(p) => p.binding.name == "exec",
        _ => false,
    }
}

/// The expression inside any parentheses (Babel keeps no node for them).
fn bare<'b, 'a>(mut expr: &'b Expression<'a>) -> &'b Expression<'a> {
    while let Expression::ParenthesizedExpression(inner) = expr {
        expr = &inner.expression;
    }
    expr
}

/// The expression inside parentheses and TypeScript-only wrappers, as the bundle prints it.
fn strip_types<'b, 'a>(mut expr: &'b Expression<'a>) -> &'b Expression<'a> {
    loop {
        expr = match expr {
            Expression::ParenthesizedExpression(e) => &e.expression,
            Expression::TSAsExpression(e) => &e.expression,
            Expression::TSSatisfiesExpression(e) => &e.expression,
            Expression::TSNonNullExpression(e) => &e.expression,
            Expression::TSTypeAssertion(e) => &e.expression,
            Expression::TSInstantiationExpression(e) => &e.expression,
            _ => return expr,
        }
    }
}

/// An argument that is an expression, without parentheses.
fn argument<'b, 'a>(arg: &'b Argument<'a>) -> Option<&'b Expression<'a>> {
    arg.as_expression().map(bare)
}

/// Whether `expr` continues an optional chain (`a?.b` then `.c`, `(…)`): Babel makes the members and calls
/// that follow a `?.` optional ones, until a parenthesis ends the chain.
fn in_optional_chain(mut expr: &Expression<'_>) -> bool {
    loop {
        expr = match expr {
            Expression::StaticMemberExpression(m) if !m.optional => &m.object,
            Expression::ComputedMemberExpression(m) if !m.optional => &m.object,
            Expression::PrivateFieldExpression(m) if !m.optional => &m.object,
            Expression::CallExpression(c) if !c.optional => &c.callee,
            Expression::TSNonNullExpression(e) => &e.expression,
            Expression::StaticMemberExpression(_)
            | Expression::ComputedMemberExpression(_)
            | Expression::PrivateFieldExpression(_)
            | Expression::CallExpression(_) => return true,
            _ => return false,
        }
    }
}

/// A callee's object and, when Babel would see an identifier there, its property name (`x.name`, and
/// `x[name]` too: Babel's check reads the identifier's name whether computed or not).
fn member_parts<'b, 'a>(
    callee: &'b Expression<'a>,
) -> Option<(&'b Expression<'a>, Option<&'b str>)> {
    match bare(callee) {
        Expression::StaticMemberExpression(m) => Some((&m.object, Some(m.property.name.as_str()))),
        Expression::ComputedMemberExpression(m) => {
            Some((&m.object, identifier_name(&m.expression)))
        }
        Expression::PrivateFieldExpression(m) => Some((&m.object, None)),
        // `(nango?.get)()`: a parenthesised chain is a plain call of an optional member.
        Expression::ChainExpression(chain) => match &chain.expression {
            ChainElement::StaticMemberExpression(m) => {
                Some((&m.object, Some(m.property.name.as_str())))
            }
            ChainElement::ComputedMemberExpression(m) => {
                Some((&m.object, identifier_name(&m.expression)))
            }
            ChainElement::PrivateFieldExpression(m) => Some((&m.object, None)),
            _ => None,
        },
        _ => None,
    }
}

fn identifier_name<'b>(expr: &'b Expression<'_>) -> Option<&'b str> {
    match bare(expr) {
        Expression::Identifier(id) => Some(id.name.as_str()),
        _ => None,
    }
}

/// A property key that Babel represents as an identifier: `name` or `[name]`, not `'name'`.
fn identifier_key<'b>(key: &'b PropertyKey<'_>) -> Option<&'b str> {
    match key {
        PropertyKey::StaticIdentifier(id) => Some(id.name.as_str()),
        PropertyKey::Identifier(id) => Some(id.name.as_str()),
        _ => None,
    }
}

/// The `createX` name a call is made with, if it is one of [`ALLOWED_EXPORTS`] called by name.
fn creator(call: &CallExpression<'_>) -> Option<&'static str> {
    match bare(&call.callee) {
        Expression::Identifier(id) => ALLOWED_EXPORTS
            .iter()
            .copied()
            .find(|&n| n == id.name.as_str()),
        _ => None,
    }
}

fn is_word_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// Whether a name printed before `.x` makes `\bconsole\.` match: `console`, `$console`.
fn ends_with_console(name: &str) -> bool {
    name.strip_suffix("console")
        .is_some_and(|before| !before.as_bytes().last().is_some_and(|&b| is_word_byte(b)))
}

/// Whether text holds a match of `\bconsole\.\w`.
fn mentions_console(text: &str) -> bool {
    text.match_indices("console.").any(|(i, m)| {
        ends_with_console(&text[..i + m.len() - 1])
            && text
                .as_bytes()
                .get(i + m.len())
                .is_some_and(|&b| is_word_byte(b))
    })
}
