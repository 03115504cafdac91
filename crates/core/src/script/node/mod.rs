//! What Nango's runner gives a script besides `nango`, so that scripts written for Nango run unchanged: the
//! globals `Buffer`, `URL`, `URLSearchParams`, `TextEncoder`, `TextDecoder`, `setTimeout` and its kin,
//! `structuredClone`, `console` (into the run's log) and a `crypto` with `randomUUID`/`getRandomValues`;
//! and the built-in modules `crypto`, `url` and `buffer` (also as `node:crypto`, …).
//!
//! The JavaScript side (`node.js`) gives the Node.js shapes and argument checks; the work on bytes (encodings,
//! digests, signatures, randomness) and URL parsing is done natively here. `node.js` is evaluated as an
//! internal module before the entry module is imported; its `install(native)` receives the native functions
//! and sets the globals. A built-in module is a small internal module re-exporting one of its objects.

mod buffer;
mod crypto;
mod timers;
mod url;

use std::rc::Rc;
use std::sync::OnceLock;

use rquickjs::module::Declared;
use rquickjs::{Ctx, Function, Module, Object, Result, TypedArray};

pub use buffer::{decode, encode};
pub use crypto::{Algorithm, random_uuid, rsa_sign, rsa_verify};

const NODE_JS: &str = include_str!("node.js");
/// The internal module of `node.js`.
const NODE_MODULE: &str = "pg_nango:node";

/// A bare import that names a Node.js built-in module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// One this runtime provides, under this internal module name.
    Provided(&'static str),
    /// One it does not (`http`, `fs`, …).
    Missing,
}

/// The modules provided: specifier without `node:`, internal name, exported names.
const PROVIDED: [(&str, &str, &[&str]); 3] = [
    (
        "crypto",
        "pg_nango:crypto",
        &[
            "createHash",
            "createHmac",
            "createSign",
            "createVerify",
            "createPrivateKey",
            "createPublicKey",
            "sign",
            "verify",
            "randomBytes",
            "randomFillSync",
            "randomInt",
            "randomUUID",
            "getRandomValues",
            "timingSafeEqual",
            "getHashes",
            "webcrypto",
        ],
    ),
    (
        "url",
        "pg_nango:url",
        &[
            "URL",
            "URLSearchParams",
            "parse",
            "format",
            "resolve",
            "fileURLToPath",
            "pathToFileURL",
        ],
    ),
    (
        "buffer",
        "pg_nango:buffer",
        &["Buffer", "atob", "btoa", "kMaxLength", "constants"],
    ),
];

/// Node.js' other built-in modules, which scripts here cannot use.
const MISSING: &[&str] = &[
    "assert",
    "assert/strict",
    "async_hooks",
    "child_process",
    "cluster",
    "console",
    "constants",
    "dgram",
    "diagnostics_channel",
    "dns",
    "dns/promises",
    "domain",
    "events",
    "fs",
    "fs/promises",
    "http",
    "http2",
    "https",
    "inspector",
    "module",
    "net",
    "os",
    "path",
    "path/posix",
    "path/win32",
    "perf_hooks",
    "process",
    "punycode",
    "querystring",
    "readline",
    "repl",
    "stream",
    "stream/promises",
    "stream/web",
    "string_decoder",
    "sys",
    "test",
    "timers",
    "timers/promises",
    "tls",
    "trace_events",
    "tty",
    "util",
    "util/types",
    "v8",
    "vm",
    "wasi",
    "worker_threads",
    "zlib",
];

/// Whether `specifier` names a Node.js built-in module, and whether it is provided.
pub fn builtin(specifier: &str) -> Option<Builtin> {
    let prefixed = specifier.strip_prefix("node:");
    let name = prefixed.unwrap_or(specifier);
    if let Some((_, internal, _)) = PROVIDED.iter().find(|(n, _, _)| *n == name) {
        return Some(Builtin::Provided(internal));
    }
    (prefixed.is_some() || MISSING.contains(&name)).then_some(Builtin::Missing)
}

/// The names of the built-in modules provided, for messages.
pub fn provided_names() -> Vec<&'static str> {
    PROVIDED.iter().map(|(name, _, _)| *name).collect()
}

/// The source of an internal module (`pg_nango:crypto`, …; `pg_nango:node` is declared by [`install`]).
pub(crate) fn module_source(name: &str) -> Option<String> {
    let (key, _, exports) = PROVIDED.iter().find(|(_, internal, _)| *internal == name)?;
    Some(format!(
        "import {{ modules }} from '{NODE_MODULE}';\nconst m = modules.{key};\nexport default m;\nexport const {{ {} }} = m;\n",
        exports.join(", ")
    ))
}

/// Whether the resolver should pass `name` through as an internal module.
pub(crate) fn is_internal(name: &str) -> bool {
    name == NODE_MODULE || PROVIDED.iter().any(|(_, internal, _)| *internal == name)
}

/// Where `console.*` output goes: (level, message).
pub(crate) type ConsoleLog = Rc<dyn Fn(&str, &str)>;

/// Evaluates `node.js` and installs the globals. `memory_limit` bounds the sizes of buffers a script may
/// ask for (`Buffer.alloc`, `randomBytes`); `console` writes through `log` (level, message).
pub(crate) async fn install<'js>(
    ctx: &Ctx<'js>,
    memory_limit: usize,
    log: ConsoleLog,
) -> Result<()> {
    let (module, evaluated) = declare_node_module(ctx)?.eval()?;
    evaluated.into_future::<()>().await?;
    let install: Function = module.get("install")?;
    let native = Object::new(ctx.clone())?;
    buffer::register(ctx, &native)?;
    crypto::register(ctx, &native, memory_limit)?;
    url::register(ctx, &native)?;
    timers::register(ctx, &native)?;
    native.set("maxLength", memory_limit)?;
    native.set(
        "log",
        Function::new(ctx.clone(), move |level: String, message: String| {
            log(&level, &message);
        })?,
    )?;
    install.call::<_, ()>((native,))
}

/// The compiled form of `node.js`, made by the first run of the process: parsing 57 KB of JavaScript took
/// most of the time `install` adds to a run, loading the compiled form a fraction of it.
static NODE_BYTECODE: OnceLock<Vec<u8>> = OnceLock::new();

fn declare_node_module<'js>(ctx: &Ctx<'js>) -> Result<Module<'js, Declared>> {
    super::modules::declare_compiled_once(ctx, NODE_MODULE, NODE_JS, &NODE_BYTECODE)
}

/// The bytes of a `Uint8Array` (empty when its buffer is detached).
///
/// # Safety
/// The slice aliases the engine's memory: no JavaScript may run while it is alive.
unsafe fn bytes_of<'a>(array: &'a TypedArray<'_, u8>) -> &'a [u8] {
    // SAFETY: the caller keeps JavaScript from running while the slice lives.
    unsafe { array.as_bytes() }.unwrap_or_default()
}

/// A new `Uint8Array` holding `bytes`, allocated in the engine's heap so that it counts against the run's
/// memory limit.
fn new_bytes<'js>(ctx: &Ctx<'js>, bytes: Vec<u8>) -> Result<TypedArray<'js, u8>> {
    TypedArray::new_copy(ctx.clone(), bytes)
}
