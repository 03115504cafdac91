//! TypeScript → JavaScript at deploy time, with oxc.
//!
//! Types are stripped, imports used only as types (`import { NangoSync } from '../../models'`) vanish, enums
//! and namespaces are lowered. Nothing else is down-levelled: QuickJS speaks modern JavaScript. The source map
//! is kept so that a script's runtime error can name the line of the TypeScript file, not of the output.

use std::path::Path;
use std::time::Duration;

use oxc::allocator::Allocator;
use oxc::ast::ast::{Program, Statement};
use oxc::codegen::{Codegen, CodegenOptions};
use oxc::diagnostics::OxcDiagnostic;
use oxc::parser::Parser;
use oxc::semantic::SemanticBuilder;
use oxc::span::SourceType;
use oxc::transformer::{HelperLoaderMode, TransformOptions, Transformer};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::records::batch::spawn_without_signals;
use crate::script::sandbox::{self, Limits, SandboxError};

/// One compiled file: JavaScript, its source map (JSON), and the module specifiers it imports at run time.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CompiledModule {
    pub js: String,
    pub source_map: Option<String>,
    pub imports: Vec<String>,
}

/// A compile error located in the source file.
#[derive(Debug, Clone, PartialEq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error("{file}:{line}:{column}: {message}")]
pub struct CompileError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// The deepest nesting [`compile`] accepts, counted as [`too_deep`] counts it (an over-estimate of the depth
/// of the syntax tree). Hand-written code stays in the low hundreds; minified packages in the few hundreds.
pub const MAX_NESTING: usize = 2_000;

/// The stack of the thread a file is compiled on. oxc's parser, semantic analysis, transformer and code
/// generator all recurse once per level of the syntax tree, with no check of their own. Measured (release
/// build) on some fifty shapes of nesting at [`MAX_NESTING`], the costliest (parentheses) needs between
/// 2.7 and 4 MB, under 2 KB per unit; 64 MB is sixteen times that, and the `fuzz` test checks that an
/// eighth of it is enough for every shape at the limit. The stack is reserved, not touched: only what a
/// file uses is ever backed by memory.
pub const COMPILE_STACK: usize = 64 << 20;

/// What the process a file is compiled in may use. oxc reads a file in one pass per stage with no loop
/// of its own on the input, so a minute of CPU is far beyond any real file; the memory is some hundred
/// times that of the largest real files' syntax trees.
const SANDBOX: Limits = Limits {
    memory: 2 << 30,
    cpu_seconds: 60,
    wall: Duration::from_secs(120),
    max_output: 0,
};

/// Compiles one `.ts`/`.js` file. `path` is the file's path inside the integrations folder; it names the
/// file in errors and in the source map.
///
/// A file nested deeper than [`MAX_NESTING`] is refused before oxc sees it: oxc would overflow the stack,
/// which no code can catch. That check is an estimate made without parsing, and a file can mislead it
/// (JavaScript's `/` is a division or starts a regular expression depending on what precedes it), so oxc
/// runs in a forked child process ([`sandbox`]), on a thread with a stack of [`COMPILE_STACK`]: a file that
/// crashes the compiler, or exhausts its memory or CPU time, kills the child, never the caller (a Postgres
/// backend that crashes restarts the cluster), and comes back as an error naming the file.
pub fn compile(path: &str, source: &str) -> Result<CompiledModule, CompileError> {
    // The JavaScript, and a source map holding the source and its mappings, JSON-escaped (a control
    // character becomes six bytes).
    let max_output = source.len().saturating_mul(32).saturating_add(1 << 20);
    isolated(path, source, max_output, || compile_here(path, source))
}

/// Runs `work`, which runs oxc on `source`, the way [`compile`] does: refused when nested deeper than
/// [`MAX_NESTING`], otherwise in a forked child process on a thread with [`COMPILE_STACK`] of stack, so that
/// a file that crashes oxc comes back as an error naming the file. `max_output` bounds the serialized
/// result.
pub(crate) fn isolated<T: Serialize + DeserializeOwned + Send>(
    path: &str,
    source: &str,
    max_output: usize,
    work: impl FnOnce() -> Result<T, CompileError> + Send,
) -> Result<T, CompileError> {
    check_nesting(path, source)?;
    let limits = Limits {
        max_output,
        ..SANDBOX
    };
    sandbox::run_isolated(&limits, || on_thread(path, COMPILE_STACK, work))
        .map_err(|error| {
            whole_file_error(
                path,
                match error {
                    SandboxError::Start(e) => format!("could not start the compiler's process: {e}"),
                    SandboxError::Crashed(_) | SandboxError::NoResult(_) => "the compiler could not process this file (it crashed: nesting too deep or too large); simplify the file".into(),
                    SandboxError::OutOfTime => format!("the compiler could not process this file (it ran out of time, {} s); simplify the file", SANDBOX.cpu_seconds),
                    SandboxError::Interrupted(_) => "the compile was interrupted".into(),
                    SandboxError::OutputTooLarge(_) => "the compiled output is too large; simplify the file".into(),
                },
            )
        })?
}

/// [`compile`] in this process, on a thread with `stack_size` bytes of stack: nothing protects the
/// process from a file the nesting check misjudges. Tests use it to check that far less than
/// [`COMPILE_STACK`] is enough at [`MAX_NESTING`].
pub fn compile_on_stack(
    path: &str,
    source: &str,
    stack_size: usize,
) -> Result<CompiledModule, CompileError> {
    check_nesting(path, source)?;
    on_thread(path, stack_size, || compile_here(path, source))
}

/// Refuses a file that [`too_deep`] finds nested deeper than [`MAX_NESTING`].
pub(crate) fn check_nesting(path: &str, source: &str) -> Result<(), CompileError> {
    match too_deep(source, MAX_NESTING) {
        None => Ok(()),
        Some(offset) => {
            let (line, column) = line_and_column(source, offset);
            Err(CompileError {
                file: path.to_string(),
                line,
                column,
                message: format!(
                    "the code is nested too deeply here (more than {MAX_NESTING} levels of brackets, operators or statements in one expression); split it up"
                ),
            })
        }
    }
}

/// `work` on a new thread with `stack_size` bytes of stack, whatever stack the caller has left; a panic
/// becomes an error naming the file.
pub(crate) fn on_thread<T: Send>(
    path: &str,
    stack_size: usize,
    work: impl FnOnce() -> Result<T, CompileError> + Send,
) -> Result<T, CompileError> {
    let builder = std::thread::Builder::new()
        .name("pg_nango compile".into())
        .stack_size(stack_size);
    std::thread::scope(|scope| {
        let running = spawn_without_signals(scope, builder, || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
        })
        .map_err(|e| {
            whole_file_error(path, format!("could not start the compiler's thread: {e}"))
        })?;
        match running.join() {
            Ok(Ok(result)) => result,
            Ok(Err(_)) | Err(_) => Err(whole_file_error(
                path,
                "the TypeScript compiler failed on this file".into(),
            )),
        }
    })
}

/// An error about the file as a whole, placed at its start.
fn whole_file_error(path: &str, message: String) -> CompileError {
    CompileError {
        file: path.to_string(),
        line: 1,
        column: 1,
        message,
    }
}

/// Parses a `.ts`/`.mts` file as a TypeScript module and anything else as a JavaScript module; a syntax
/// error comes back located in the source.
pub(crate) fn parse<'a>(
    allocator: &'a Allocator,
    path: &str,
    source: &'a str,
) -> Result<Program<'a>, CompileError> {
    let source_type = if path.ends_with(".ts") || path.ends_with(".mts") {
        SourceType::ts().with_module(true)
    } else {
        SourceType::mjs()
    };
    let parsed = Parser::new(allocator, source, source_type).parse();
    if parsed.panicked || parsed.diagnostics.has_errors() {
        return Err(first_error(path, source, parsed.diagnostics.into_vec()));
    }
    Ok(parsed.program)
}

/// [`compile`] on the caller's stack, unguarded.
fn compile_here(path: &str, source: &str) -> Result<CompiledModule, CompileError> {
    let allocator = Allocator::default();
    let mut program = parse(&allocator, path, source)?;
    let semantic = SemanticBuilder::new()
        .with_excess_capacity(2.0)
        .with_enum_eval(true)
        .build(&program);
    if semantic.diagnostics.has_errors() {
        return Err(first_error(path, source, semantic.diagnostics.into_vec()));
    }
    let scoping = semantic.semantic.into_scoping();
    let mut options = TransformOptions::default();
    // The default helper mode would import "@oxc-project/runtime/..." modules that do not exist here.
    options.helper_loader.mode = HelperLoaderMode::External;
    let transformed = Transformer::new(&allocator, Path::new(path), &options)
        .build_with_scoping(scoping, &mut program);
    if transformed.diagnostics.has_errors() {
        return Err(first_error(
            path,
            source,
            transformed.diagnostics.into_vec(),
        ));
    }
    let imports = runtime_imports(&program.body);
    let output = Codegen::new()
        .with_options(CodegenOptions {
            source_map_path: Some(path.into()),
            ..CodegenOptions::default()
        })
        .build(&program);
    Ok(CompiledModule {
        js: output.code,
        source_map: output.map.map(|m| m.to_json_string()),
        imports,
    })
}

/// Where an over-estimate of the syntax tree's depth first passes `limit`, if it does.
///
/// A light lexer (comments, strings, template literals and regular expressions are recognised, the rest
/// read as words and single punctuation characters) counts, at each point, the tokens that may enclose it:
/// an opening bracket starts a level that its closing bracket ends; within a level every token counts one
/// more (so `!!!!x`, `a?b?c?…`, `x=>y=>…`, `a=b=c=…`, `1+1+…`, `a.b.c…`, `f()()…`, `new new …` and
/// `if (a) if (b) …` all grow the count as they grow the tree), and the count falls back to the level's
/// start at a `;`, a `,`, or a line break where a statement can end (a word after a value, other than an
/// operator word such as `instanceof`), unless an `else` follows, which continues the statement. Each node
/// of oxc's tree on the path to any point has a token of its own before that point, so the count is at
/// least the depth, in the units the stack measurements use.
///
/// A `/` after a value divides, and after anything else starts a regular expression; the `)` of an `if`,
/// `while`, `for` or `with` condition is not a value. Other closing brackets are read as values, which a
/// file can exploit (`{} /'/ …`, a block followed by a regular expression, looks like a division and a
/// string) to hide nesting from this count: [`compile`] does not rely on it alone.
fn too_deep(source: &str, limit: usize) -> Option<usize> {
    let bytes = source.as_bytes();
    // Depth at which each open level's content starts, whether a `}` closing it resumes a template, and
    // whether it is the condition of an `if`, `while`, `for` or `with` (after which a `/` starts a regular
    // expression: `if (x) /re/.test(y)`).
    let mut levels: Vec<(usize, bool, bool)> = Vec::new();
    // Whether the previous token is a keyword whose `(` opens such a condition.
    let mut condition_keyword = false;
    let mut depth = 0usize;
    // Whether the previous token ends a value (then `/` divides, and a line break may end the statement).
    let mut after_value = false;
    let mut line_break = false;
    // The count before the last statement end, for an `else` that continues the statement it ended.
    let mut before_end: Option<usize> = None;
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        match byte {
            b'\n' | b'\r' => {
                line_break = true;
                i += 1;
                continue;
            }
            b' ' | b'\t' | 0x0b | 0x0c => {
                i += 1;
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                i = bytes[i..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(bytes.len(), |n| i + n);
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let end = source[i + 2..]
                    .find("*/")
                    .map_or(bytes.len(), |n| i + 2 + n + 2);
                line_break |= bytes[i..end].contains(&b'\n');
                i = end;
                continue;
            }
            _ => {}
        }
        let start = i;
        let base = levels.last().map_or(0, |level| level.0);
        let word_end = bytes[i..]
            .iter()
            .position(|&b| !is_word_byte(b))
            .map_or(bytes.len(), |n| i + n);
        let word = &source[i..word_end];
        if line_break && after_value && !word.is_empty() && !OPERATOR_WORDS.contains(&word) {
            before_end = Some(depth);
            depth = base;
        }
        line_break = false;
        // `if (a) x(); else if (b) y(); else …` nests each `if` in the one before.
        if word == "else"
            && let Some(before) = before_end
        {
            depth = depth.max(before);
        }
        before_end = None;
        let after_condition_keyword = std::mem::take(&mut condition_keyword);
        match byte {
            b';' | b',' => {
                before_end = Some(depth);
                depth = base;
                after_value = false;
                i += 1;
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                levels.push((depth, false, byte == b'(' && after_condition_keyword));
                after_value = false;
                i += 1;
            }
            b')' | b']' | b'}' => {
                i += 1;
                after_value = true;
                match levels.pop() {
                    Some((level, true, _)) => {
                        depth = level;
                        let (next, substitution) = template_text(bytes, i);
                        i = next;
                        if substitution {
                            levels.push((depth, true, false));
                            after_value = false;
                        }
                    }
                    Some((level, false, condition)) => {
                        depth = level;
                        after_value = !condition;
                    }
                    None => depth += 1,
                }
            }
            b'`' => {
                depth += 1;
                let (next, substitution) = template_text(bytes, i + 1);
                i = next;
                after_value = !substitution;
                if substitution {
                    depth += 1;
                    levels.push((depth, true, false));
                }
            }
            b'\'' | b'"' => {
                depth += 1;
                i = literal_end(bytes, i, byte);
                after_value = true;
            }
            b'/' if !after_value => {
                depth += 1;
                i = literal_end(bytes, i, b'/');
                i += bytes[i..].iter().take_while(|&&b| is_word_byte(b)).count();
                after_value = true;
            }
            _ if !word.is_empty() => {
                depth += 1;
                i = word_end;
                after_value = !EXPRESSION_BEFORE_WORDS.contains(&word);
                condition_keyword = matches!(word, "if" | "while" | "for" | "with")
                    || (word == "await" && after_condition_keyword);
            }
            _ => {
                depth += 1;
                // A character of a multi-byte UTF-8 sequence is a word byte; this is ASCII punctuation.
                i += 1;
                after_value = false;
            }
        }
        if depth > limit {
            return Some(start);
        }
    }
    None
}

/// Words that continue an expression across a line break.
const OPERATOR_WORDS: &[&str] = &[
    "in",
    "of",
    "instanceof",
    "as",
    "satisfies",
    "extends",
    "implements",
    "is",
    "keyof",
];

/// Words after which a `/` starts a regular expression rather than dividing.
const EXPRESSION_BEFORE_WORDS: &[&str] = &[
    "return",
    "typeof",
    "instanceof",
    "in",
    "of",
    "new",
    "delete",
    "void",
    "throw",
    "case",
    "do",
    "else",
    "yield",
    "await",
];

fn is_word_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric()
        || matches!(byte, b'_' | b'$' | b'\\' | b'#' | b'@')
        || byte >= 0x80
}

/// The index after a string or regular expression literal opened by `quote` at `start`: after its closing
/// `quote`, or at the line break that ends it unclosed (neither kind spans lines, so a misread `/` skips
/// at most the rest of its line).
fn literal_end(bytes: &[u8], start: usize, quote: u8) -> usize {
    let mut i = start + 1;
    let mut class = false;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'\n' | b'\r' => return i,
            b'[' if quote == b'/' => class = true,
            b']' if quote == b'/' => class = false,
            b if b == quote && !class => return i + 1,
            _ => {}
        }
        i += 1;
    }
    bytes.len()
}

/// Scans template text from `i`: the index after its closing backtick (`false`), or after a `${` (`true`).
fn template_text(bytes: &[u8], mut i: usize) -> (usize, bool) {
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'`' => return (i + 1, false),
            b'$' if bytes.get(i + 1) == Some(&b'{') => return (i + 2, true),
            _ => i += 1,
        }
    }
    (bytes.len(), false)
}

/// The specifiers of `import`/`export … from` statements left after type-only imports were removed.
fn runtime_imports(body: &[Statement]) -> Vec<String> {
    let mut imports = Vec::new();
    for statement in body {
        let source = match statement {
            Statement::ImportDeclaration(decl) => Some(decl.source.value.as_str()),
            Statement::ExportFromDeclaration(decl) => Some(decl.source.value.as_str()),
            Statement::ExportAllDeclaration(decl) => Some(decl.source.value.as_str()),
            _ => None,
        };
        if let Some(source) = source {
            imports.push(source.to_string());
        }
    }
    imports
}

fn first_error(path: &str, source: &str, diagnostics: Vec<OxcDiagnostic>) -> CompileError {
    let diagnostic = diagnostics.into_iter().next();
    let message = diagnostic.as_ref().map_or_else(
        || "could not parse the file".to_string(),
        |d| d.message.to_string(),
    );
    let offset = diagnostic
        .and_then(|d| d.labels.first().map(|l| l.offset() as usize))
        .unwrap_or(0);
    let (line, column) = line_and_column(source, offset);
    CompileError {
        file: path.to_string(),
        line,
        column,
        message,
    }
}

/// 1-based line and column of a byte offset.
pub fn line_and_column(source: &str, offset: usize) -> (usize, usize) {
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, column)
}

/// Maps a 1-based line and column of compiled JavaScript back to the TypeScript source, using the source
/// map stored at deploy. Returns the 1-based source line and column.
pub fn original_position(source_map_json: &str, line: u32, column: u32) -> Option<(u32, u32)> {
    let map = oxc_sourcemap::SourceMap::from_json_string(source_map_json).ok()?;
    let table = map.generate_lookup_table();
    let token = map.lookup_token(&table, line.checked_sub(1)?, column.saturating_sub(1))?;
    Some((token.get_src_line() + 1, token.get_src_col() + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_types_and_type_only_imports() {
        let src = "import type { NangoSync } from '../../models.js';\nimport { GithubIssue } from '../../models';\n\
                   import { toIssue } from '../mappers/to-issue.js';\n\
                   export default async function fetchData(nango: NangoSync): Promise<void> {\n\
                   const x: GithubIssue[] = [];\n  await nango.batchSave(x.map(toIssue), 'GithubIssue');\n}\n";
        let out = compile("github/syncs/issues.ts", src).unwrap();
        assert!(!out.js.contains("models"), "{}", out.js);
        assert!(!out.js.contains(": NangoSync"));
        assert_eq!(out.imports, vec!["../mappers/to-issue.js"]);
        assert!(out.source_map.is_some());
    }

    #[test]
    fn lowers_enums() {
        let out = compile(
            "a.ts",
            "enum State { Open = 'open' }\nexport const s = State.Open;\n",
        )
        .unwrap();
        assert!(out.js.contains("State"));
        assert!(!out.js.contains("enum "));
    }

    #[test]
    fn syntax_error_names_file_and_line() {
        let err = compile("demo/syncs/broken.ts", "const a = 1;\nconst b = ;\n").unwrap_err();
        assert_eq!(err.file, "demo/syncs/broken.ts");
        assert_eq!(err.line, 2);
        assert!(
            err.to_string().starts_with("demo/syncs/broken.ts:2:"),
            "{err}"
        );
    }

    #[test]
    fn the_isolated_compile_gives_what_the_in_process_compile_gives() {
        let src = "import { a } from './a.js';\nenum E { X = 1 }\nexport default async function f(n: number): Promise<number> {\n  if (n) /`'/.test(String(n));\n  return E.X + a(n);\n}\n";
        let isolated = compile("f.ts", src).unwrap();
        assert_eq!(
            isolated,
            compile_on_stack("f.ts", src, COMPILE_STACK).unwrap()
        );
        assert_eq!(isolated.imports, vec!["./a.js"]);
        let error = compile("demo/broken.ts", "const a = 1;\nconst b = ;\n").unwrap_err();
        assert_eq!(
            error,
            compile_on_stack(
                "demo/broken.ts",
                "const a = 1;\nconst b = ;\n",
                COMPILE_STACK
            )
            .unwrap_err()
        );
    }

    #[test]
    fn a_slash_after_a_condition_starts_a_regular_expression() {
        let deep = format!("{}1{}", "(".repeat(3_000), ")".repeat(3_000));
        // Read as a division, the backtick would open a template that hides the nesting.
        let hidden = format!("if (x) /`/.test(y);\nf({deep});\n");
        let line_two = hidden.find('\n').unwrap();
        assert!(too_deep(&hidden, MAX_NESTING).is_some_and(|at| at > line_two));
        assert!(compile("r.ts", "if (x) /\"/.test(y); while (y) /'/g.exec(z);\n").is_ok());
    }

    #[test]
    fn maps_positions_back_to_typescript() {
        let src = "interface A {\n  x: number;\n}\n\nexport function f(a: A): number {\n  throw new Error('boom');\n}\n";
        let out = compile("f.ts", src).unwrap();
        let js_line = out.js.lines().position(|l| l.contains("throw")).unwrap() as u32 + 1;
        let col = out
            .js
            .lines()
            .nth(js_line as usize - 1)
            .unwrap()
            .find("throw")
            .unwrap() as u32
            + 1;
        let (line, _) =
            original_position(out.source_map.as_deref().unwrap(), js_line, col).unwrap();
        assert_eq!(line, 6);
    }
}
