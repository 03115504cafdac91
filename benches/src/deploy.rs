//! Planning a deploy of a zero-YAML project of many entries against a `nango.yaml` project of the same
//! scripts: discovery, Nango's compile checks, compiling every module and, for zero-YAML, running each
//! entry's top level to read its definition (with the bundled zod). Runs in-process (no cluster): `cargo run
//! --release -p pg_nango_bench -- deploy [ENTRIES]` (200 by default).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use pg_nango_core::deploy::plan;
use pg_nango_core::deploy::zero_yaml::{DefinitionLimits, plan_zero_yaml};

/// Scripts per integration: one sync and four actions, as Nango's templates mostly have.
const PER_INTEGRATION: usize = 5;

/// A project of `entries` scripts in both formats: (zero-YAML files, yaml config, yaml files).
fn projects(entries: usize) -> (BTreeMap<String, String>, String, BTreeMap<String, String>) {
    let mut zero = BTreeMap::new();
    let mut yaml_files = BTreeMap::new();
    let mut index = String::new();
    let mut yaml = String::from("integrations:\n");
    let mut models = String::from("models:\n");
    for n in 0..entries.div_ceil(PER_INTEGRATION) {
        let integration = format!("crm{n}");
        yaml.push_str(&format!("  {integration}:\n    syncs:\n"));
        zero.insert(
            format!("{integration}/models.ts"),
            format!(
                "import {{ z }} from 'zod';\nexport const Contact{n} = z.object({{ id: z.string(), email: z.string(), name: z.string().nullable(), tags: z.array(z.string()) }});\n\
                 export const Input{n} = z.object({{ email: z.string().email(), name: z.string().optional() }});\n"
            ),
        );
        yaml_files.insert(
            format!("{integration}/mappers/to-contact.ts"),
            "export function toContact(raw: any) { return { id: String(raw.id), email: raw.email, name: raw.name ?? null, tags: raw.tags ?? [] }; }\n".to_string(),
        );
        for k in 0..PER_INTEGRATION.min(entries - n * PER_INTEGRATION) {
            if k == 0 {
                index.push_str(&format!("import './{integration}/syncs/contacts.js';\n"));
                zero.insert(
                    format!("{integration}/syncs/contacts.ts"),
                    format!(
                        "import {{ createSync }} from 'nango';\nimport {{ z }} from 'zod';\nimport {{ Contact{n} }} from '../models.js';\n\n\
                         export default createSync({{\n    description: 'Contacts', version: '1.0.0', frequency: 'every hour', autoStart: true,\n    \
                         checkpoint: z.object({{ cursor: z.string() }}),\n    models: {{ Contact{n} }},\n    exec: async (nango) => {{\n        \
                         await nango.trackDeletesStart('Contact{n}');\n        for await (const page of nango.paginate({{ endpoint: '/contacts', retries: 3 }})) {{\n            \
                         await nango.batchSave(page.map((c: any) => Contact{n}.parse(c)), 'Contact{n}');\n        }}\n        \
                         await nango.trackDeletesEnd('Contact{n}');\n    }}\n}});\n"
                    ),
                );
                yaml.push_str(&format!(
                    "      contacts:\n        runs: every hour\n        output: Contact{n}\n        endpoint: GET /{integration}/contacts\n    actions:\n"
                ));
                models.push_str(&format!(
                    "  Contact{n}:\n    id: string\n    email: string\n    name: string | null\n    tags: string[]\n  Input{n}:\n    email: string\n    name?: string\n"
                ));
                yaml_files.insert(
                    format!("{integration}/syncs/contacts.ts"),
                    "import { toContact } from '../mappers/to-contact.js';\nexport default async function fetchData(nango: any) {\n    \
                     for await (const page of nango.paginate({ endpoint: '/contacts', retries: 3 })) { await nango.batchSave(page.map(toContact), 'Contact'); }\n}\n"
                        .to_string(),
                );
            } else {
                index.push_str(&format!(
                    "import './{integration}/actions/update-{k}.js';\n"
                ));
                zero.insert(
                    format!("{integration}/actions/update-{k}.ts"),
                    format!(
                        "import {{ createAction }} from 'nango';\nimport {{ Contact{n}, Input{n} }} from '../models.js';\n\n\
                         export default createAction({{\n    description: 'Update {k}', endpoint: {{ method: 'POST', path: '/{integration}/update-{k}' }},\n    \
                         input: Input{n}, output: Contact{n},\n    exec: async (nango, input) => {{\n        const parsed = Input{n}.parse(input);\n        \
                         const response = await nango.post({{ endpoint: '/contacts', data: parsed, retries: 1 }});\n        return Contact{n}.parse(response.data);\n    }}\n}});\n"
                    ),
                );
                yaml.push_str(&format!(
                    "      update-{k}:\n        input: Input{n}\n        output: Contact{n}\n        endpoint: POST /{integration}/update-{k}\n"
                ));
                yaml_files.insert(
                    format!("{integration}/actions/update-{k}.ts"),
                    "import { toContact } from '../mappers/to-contact.js';\nexport default async function runAction(nango: any, input: any) {\n    \
                     const response = await nango.post({ endpoint: '/contacts', data: input, retries: 1 });\n    return toContact(response.data);\n}\n"
                        .to_string(),
                );
            }
        }
    }
    zero.insert("index.ts".into(), index);
    yaml.push_str(&models);
    (zero, yaml, yaml_files)
}

/// Times the two plans of a project of `entries` scripts and prints them.
pub fn zero_yaml_against_yaml(entries: usize) {
    let (zero, yaml, yaml_files) = projects(entries);
    let limits = DefinitionLimits {
        timeout: Duration::from_secs(600),
        memory_bytes: 1 << 30,
        cancelled: || false,
    };
    // A first plan of each warms the process (the bundled zod is compiled once per process, as in a backend).
    let started = Instant::now();
    let planned = plan_zero_yaml(&zero, Duration::from_secs(30), &|_| None, limits)
        .unwrap_or_else(|e| panic!("zero-YAML plan: {e}"));
    let zero_cold = started.elapsed();
    assert_eq!(planned.syncs.len() + planned.actions.len(), entries);
    let started = Instant::now();
    plan_zero_yaml(&zero, Duration::from_secs(30), &|_| None, limits).expect("zero-YAML plan");
    let zero_warm = started.elapsed();
    let started = Instant::now();
    plan(&yaml, &yaml_files, Duration::from_secs(30)).unwrap_or_else(|e| panic!("yaml plan: {e}"));
    let yaml_cold = started.elapsed();
    let started = Instant::now();
    plan(&yaml, &yaml_files, Duration::from_secs(30)).expect("yaml plan");
    let yaml_warm = started.elapsed();
    println!("deploy planning, {entries} entries ({} files):", zero.len());
    println!(
        "  zero-YAML (checks, compile, definitions read with zod): first {:.2} s, again {:.2} s",
        zero_cold.as_secs_f64(),
        zero_warm.as_secs_f64()
    );
    println!(
        "  nango.yaml of the same scripts:                        first {:.2} s, again {:.2} s",
        yaml_cold.as_secs_f64(),
        yaml_warm.as_secs_f64()
    );
    println!(
        "  zero-YAML / yaml, warm: {:.1}x",
        zero_warm.as_secs_f64() / yaml_warm.as_secs_f64()
    );
}
