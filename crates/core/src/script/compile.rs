//! TypeScript → JavaScript at deploy time, with oxc.
//!
//! Types are stripped, imports used only as types (`import { NangoSync } from '../../models'`) vanish, enums
//! and namespaces are lowered. Nothing else is down-levelled: QuickJS speaks modern JavaScript. The source map
//! is kept so that a script's runtime error can name the line of the TypeScript file, not of the output.

use std::path::Path;

use oxc::allocator::Allocator;
use oxc::ast::ast::Statement;
use oxc::codegen::{Codegen, CodegenOptions};
use oxc::diagnostics::OxcDiagnostic;
use oxc::parser::Parser;
use oxc::semantic::SemanticBuilder;
use oxc::span::SourceType;
use oxc::transformer::{HelperLoaderMode, TransformOptions, Transformer};

/// One compiled file: JavaScript, its source map (JSON), and the module specifiers it imports at run time.
#[derive(Debug, Clone)]
pub struct CompiledModule {
    pub js: String,
    pub source_map: Option<String>,
    pub imports: Vec<String>,
}

/// A compile error located in the source file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct CompileError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Compiles one `.ts`/`.js` file. `path` is the file's path inside the integrations folder; it names the
/// file in errors and in the source map.
pub fn compile(path: &str, source: &str) -> Result<CompiledModule, CompileError> {
    let allocator = Allocator::default();
    let source_type = if path.ends_with(".ts") || path.ends_with(".mts") {
        SourceType::ts().with_module(true)
    } else {
        SourceType::mjs()
    };
    let parsed = Parser::new(&allocator, source, source_type).parse();
    if parsed.panicked || parsed.diagnostics.has_errors() {
        return Err(first_error(path, source, parsed.diagnostics.into_vec()));
    }
    let mut program = parsed.program;
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
