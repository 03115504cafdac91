//! Planning zero-YAML projects: discovery from index.ts, definitions read by running each entry's top level
//! with the bundled zod, the fields mapped as Nango's compiler maps them, and its definition errors.

use std::collections::BTreeMap;
use std::time::Duration;

use pg_nango_core::deploy::zero_yaml::{DefinitionLimits, plan_zero_yaml};
use pg_nango_core::deploy::{DeployError, DeploymentPlan, ProjectFormat};
use serde_json::json;

const LIMITS: DefinitionLimits = DefinitionLimits {
    timeout: Duration::from_secs(30),
    memory_bytes: 256 << 20,
    cancelled: || false,
};

const SCHEMAS: &str = "import { z } from 'zod';
export const Ticket = z.object({
    id: z.string(),
    title: z.string(),
    priority: z.number().int().optional(),
    closedAt: z.date().nullable(),
    tags: z.array(z.string())
});
export const Settings = z.object({ team: z.string() });
";

const SYNC: &str = "import { createSync } from 'nango';
import { z } from 'zod';
import { Ticket, Settings } from '../schemas.js';

const sync = createSync({
    description: 'All tickets',
    version: '1.2.0',
    frequency: 'every hour',
    autoStart: true,
    endpoints: [{ method: 'GET', path: '/tickets', group: 'Tickets' }],
    checkpoint: z.object({ cursor: z.string() }),
    metadata: Settings,
    scopes: ['tickets:read'],
    webhookSubscriptions: ['ticket.updated'],
    models: { Ticket },
    exec: async (nango) => {
        await nango.batchSave([], 'Ticket');
    },
    onWebhook: async (nango, payload) => {}
});
export default sync;
";

const ACTION: &str = "import { createAction } from 'nango';
import * as z from 'zod';

export default createAction({
    description: 'Close a ticket',
    endpoint: { method: 'POST', path: '/tickets/close' },
    input: z.object({ id: z.string() }),
    output: z.void(),
    exec: async (nango, input) => {}
});
";

const ON_EVENT: &str = "import { createOnEvent } from 'nango';
export default createOnEvent({ description: 'Set up', event: 'post-connection-creation', exec: async (nango) => {} });
";

fn project(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut files: BTreeMap<String, String> = [
        (
            "index.ts",
            "import './desk/syncs/tickets.js';\nimport './desk/actions/close-ticket.js';\nimport './desk/on-events/setup.js';\n// import './desk/syncs/ignored.js';\n",
        ),
        ("desk/schemas.ts", SCHEMAS),
        ("desk/syncs/tickets.ts", SYNC),
        ("desk/actions/close-ticket.ts", ACTION),
        ("desk/on-events/setup.ts", ON_EVENT),
    ]
    .into_iter()
    .map(|(p, s)| (p.to_string(), s.to_string()))
    .collect();
    for (path, source) in extra {
        files.insert(path.to_string(), source.to_string());
    }
    files
}

fn plan(files: &BTreeMap<String, String>) -> Result<DeploymentPlan, DeployError> {
    plan_zero_yaml(files, Duration::from_secs(30), &|_| None, LIMITS)
}

fn error(files: &BTreeMap<String, String>) -> String {
    plan(files).unwrap_err().to_string()
}

#[test]
fn a_project_plans_as_the_compiler_reads_it() {
    let plan = plan(&project(&[])).unwrap();
    assert_eq!(plan.format, ProjectFormat::ZeroYaml);
    assert_eq!(plan.config.integrations.len(), 1);
    assert_eq!(plan.config.integrations[0].key, "desk");

    let sync = &plan.syncs[0];
    assert_eq!(sync.entry_file, "desk/syncs/tickets.ts");
    let c = &sync.config;
    assert_eq!(c.name, "tickets");
    assert_eq!(c.description, "All tickets");
    assert_eq!(c.version, "1.2.0");
    assert_eq!(c.runs, "every hour");
    assert_eq!(c.frequency_secs, 3600);
    assert!(c.auto_start);
    assert_eq!(c.output, vec!["Ticket"]);
    assert_eq!(c.input.as_deref(), Some("SyncMetadata_desk_tickets"));
    assert_eq!(c.scopes, vec!["tickets:read"]);
    assert_eq!(c.webhook_subscriptions, vec!["ticket.updated"]);
    assert_eq!(c.endpoints[0].group.as_deref(), Some("Tickets"));
    let definitions = &c.json_schema.as_ref().unwrap()["definitions"];
    assert_eq!(
        definitions["Ticket"]["properties"]["closedAt"],
        json!({"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]})
    );
    assert_eq!(definitions["Ticket"]["additionalProperties"], json!(false));
    assert_eq!(
        definitions["SyncMetadata_desk_tickets"]["properties"]["team"],
        json!({"type": "string"})
    );

    // The model keeps zod's field order (the typed view's columns) and the optional field.
    let model = &plan.config.models["Ticket"];
    let names: Vec<&str> = model.fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["id", "title", "priority", "closedAt", "tags"]);
    assert!(model.field("priority").unwrap().optional);
    assert_eq!(plan.config.models.len(), 1, "only sync models get views");

    let action = &plan.actions[0];
    assert_eq!(action.config.name, "close-ticket");
    assert_eq!(
        action.config.input.as_deref(),
        Some("ActionInput_desk_closeticket")
    );
    assert_eq!(action.config.output, vec!["ActionOutput_desk_closeticket"]);
    let definitions = &action.config.json_schema.as_ref().unwrap()["definitions"];
    assert_eq!(
        definitions["ActionOutput_desk_closeticket"],
        json!({"type": "null"})
    );
    assert_eq!(
        action.config.endpoint.as_ref().unwrap().path,
        "/tickets/close"
    );

    assert_eq!(plan.on_events[0].config.name, "setup");
    assert_eq!(plan.on_events[0].config.event, "post-connection-creation");
    // The nango module is built in; zod is the bundled one, stored with the scripts.
    assert!(plan.modules.contains_key("desk/schemas.ts"));
    assert!(
        plan.modules
            .keys()
            .any(|p| p.starts_with("node_modules/zod/"))
    );
}

#[test]
fn defaults_are_the_compilers() {
    let sync = "import { createSync } from 'nango';\nimport { z } from 'zod';\n\
                export default createSync({ description: 'd', frequency: 'every 5 minutes', models: { Item: z.object({ id: z.string() }) }, exec: async () => {} });\n";
    let files = project(&[("desk/syncs/tickets.ts", sync)]);
    let plan = plan(&files).unwrap();
    let c = &plan.syncs[0].config;
    assert!(!c.auto_start, "autoStart is false unless true");
    assert_eq!(c.sync_type.as_str(), "full");
    assert!(!c.track_deletes);
    assert!(c.endpoints.is_empty());
    assert_eq!(c.version, "");
    assert_eq!(c.frequency_secs, 300);
    assert_eq!(c.input, None);
}

#[test]
fn definition_errors_name_the_file_and_property() {
    let sync_with = |body: &str| {
        format!(
            "import {{ createSync }} from 'nango';\nimport {{ z }} from 'zod';\nconst M = z.object({{ id: z.string() }});\n\
             export default createSync({{ description: 'd', exec: async () => {{}}, {body} }});\n"
        )
    };
    let cases = [
        (
            "frequency: 'every blue moon', models: { M1: M }",
            "desk/syncs/tickets.ts: createSync > frequency: Interval is invalid, check syntax here https://github.com/vercel/ms",
        ),
        (
            "frequency: 'every hour', models: { M1: M }, endpoints: []",
            "desk/syncs/tickets.ts: createSync > endpoints: The number of endpoints doesn't match the number of models. You need as many endpoints as models",
        ),
        (
            "frequency: 'every hour', models: { M1: M }, syncType: 'incremental', trackDeletes: true",
            "desk/syncs/tickets.ts: createSync > trackDeletes: Track deletes is not supported for incremental syncs",
        ),
        (
            "frequency: 'every hour', models: { lower: M }",
            "desk/syncs/tickets.ts: createSync > models: Model \"lower\" contains invalid characters. It should start with an uppercase and only contains alphanumeric characters",
        ),
        (
            "frequency: 'every hour', models: { A: M, B: M }, endpoints: [{ method: 'GET', path: '/a' }, { method: 'GET', path: '/a' }]",
            "desk/syncs/tickets.ts: createSync > endpoints: Endpoint \"GET /a\" is used multiple times. Please make sure all endpoints are unique per integration.",
        ),
        (
            "frequency: 'every hour', models: { NoId: z.object({ name: z.string() }) }",
            "desk/syncs/tickets.ts: createSync > models > NoId: a sync's model must have an id field (z.object({ id: z.string(), … }))",
        ),
    ];
    for (body, expected) in cases {
        let files = project(&[("desk/syncs/tickets.ts", &sync_with(body))]);
        assert_eq!(error(&files), expected, "{body}");
    }

    // Across an integration: a model of two syncs, an endpoint of a sync and an action.
    let other = sync_with("frequency: 'every hour', models: { Ticket: M }");
    let files = project(&[
        ("desk/syncs/others.ts", other.as_str()),
        (
            "index.ts",
            "import './desk/syncs/tickets.js';\nimport './desk/syncs/others.js';\n",
        ),
    ]);
    assert_eq!(
        error(&files),
        "desk/syncs/others.ts: createSync > input: Model \"Ticket\" is defined multiple times. Please make sure all models are unique per integration."
    );
    let clash = ACTION
        .replace("/tickets/close", "/tickets")
        .replace("'POST'", "'GET'");
    let files = project(&[("desk/actions/close-ticket.ts", clash.as_str())]);
    assert_eq!(
        error(&files),
        "desk/actions/close-ticket.ts: createAction > endpoint: Endpoint \"GET /tickets\" is used multiple times. Please make sure all endpoints are unique per integration."
    );
}

#[test]
fn discovery_and_default_exports() {
    let files = project(&[("index.ts", "// nothing here\nexport {};\n")]);
    assert!(error(&files).starts_with("index.ts: No entry points found in index.ts"));
    let files = project(&[("index.ts", "import './desk/syncs/nope.js';\n")]);
    assert_eq!(
        error(&files),
        "index.ts:1: imports './desk/syncs/nope.js', but the folder has no desk/syncs/nope.ts"
    );
    let files = project(&[
        ("index.ts", "import './tickets.js';\n"),
        ("tickets.ts", SYNC),
    ]);
    assert!(
        error(&files)
            .contains("a script must be at <integration>/<syncs|actions|on-events>/<name>.ts")
    );

    let files = project(&[(
        "desk/syncs/tickets.ts",
        "export default async function fetchData(nango: any) {}\n",
    )]);
    assert_eq!(
        error(&files),
        "desk/syncs/tickets.ts: Script should be declared using utility function (createSync, createAction, createOnEvent)"
    );
    let files = project(&[("desk/syncs/tickets.ts", "export const x = 1;\n")]);
    assert_eq!(
        error(&files),
        "desk/syncs/tickets.ts: Script should have a default export"
    );
    let files = project(&[("desk/syncs/tickets.ts", ACTION)]);
    assert!(error(&files).contains("is defined with createAction but lies in desk/syncs/"));
    let files = project(&[(
        "desk/on-events/setup.ts",
        "import { createOnEvent } from 'nango';\nexport default createOnEvent({ description: 'x', event: 'on-sunday', exec: async () => {} });\n",
    )]);
    assert!(error(&files).starts_with(
        "desk/on-events/setup.ts: createOnEvent > event: must be one of 'post-connection-creation'"
    ));
}

#[test]
fn a_top_level_that_throws_or_spins_is_stopped_with_its_location() {
    let files = project(&[(
        "desk/schemas.ts",
        "import { z } from 'zod';\nexport const Ticket = z.object({ id: z.string() });\nexport const Settings = z.object({});\nthrow new Error('schemas are broken');\n",
    )]);
    assert_eq!(
        error(&files),
        "desk/syncs/tickets.ts: its top level threw: schemas are broken (at desk/schemas.ts:4:11)"
    );
    let files = project(&[(
        "desk/on-events/setup.ts",
        "import { createOnEvent } from 'nango';\nwhile (true) {}\nexport default createOnEvent({ event: 'validate-connection', exec: async () => {} });\n",
    )]);
    let limits = DefinitionLimits {
        timeout: Duration::from_millis(500),
        ..LIMITS
    };
    let err = plan_zero_yaml(&files, Duration::from_secs(30), &|_| None, limits)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "desk/on-events/setup.ts: its top level ran longer than the 0.5 seconds a deploy gives the definitions"
    );
}
