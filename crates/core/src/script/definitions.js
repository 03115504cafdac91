// Reads the definition a zero-YAML entry module exports, as Nango's CLI does when it imports its build of the
// module: only the module's top level runs, `exec` is never called. Zod schemas become JSON Schema with the
// compiler's options (draft 7, unrepresentable types as `{}`, dates as date-time strings, `z.void()` as
// `{type: 'null'}`). The result is plain JSON for the deploy to check; functions are reported by presence.

const JSON_SCHEMA_OPTIONS = {
    target: 'draft-7',
    unrepresentable: 'any',
    override(ctx) {
        const def = ctx.zodSchema && ctx.zodSchema._zod && ctx.zodSchema._zod.def;
        if (def && def.type === 'date') {
            ctx.jsonSchema.type = 'string';
            ctx.jsonSchema.format = 'date-time';
        }
    }
};

const KINDS = ['sync', 'action', 'onEvent', 'function', 'webhook'];

let zod;

async function toJsonSchema(schema, where) {
    if (schema === null || (typeof schema !== 'object' && typeof schema !== 'function')) {
        throw new TypeError(`${where} must be a zod schema`);
    }
    if (!schema._zod) {
        if (schema._def) {
            throw new TypeError(`${where} is a zod 3 schema; Nango projects use zod 4 (import { z } from 'zod' with zod 4 installed, or 'zod/v4')`);
        }
        throw new TypeError(`${where} must be a zod schema`);
    }
    if (schema._zod.def && schema._zod.def.type === 'void') {
        return { type: 'null' };
    }
    let result;
    if (typeof schema.toJSONSchema === 'function') {
        result = schema.toJSONSchema(JSON_SCHEMA_OPTIONS);
    } else {
        zod = zod || (await import('zod'));
        const convert = zod.toJSONSchema || (zod.z && zod.z.toJSONSchema);
        if (typeof convert !== 'function') {
            throw new TypeError(`${where}: the folder's zod has no toJSONSchema; Nango projects use zod 4`);
        }
        result = convert(schema, JSON_SCHEMA_OPTIONS);
    }
    delete result.$schema;
    return result;
}

function copy(from, to, names) {
    for (const name of names) {
        if (from[name] !== undefined) to[name] = from[name];
    }
}

export async function define(entry) {
    const namespace = await import(entry);
    const def = namespace.default;
    if (def === undefined || def === null) {
        return JSON.stringify({ error: 'Script should have a default export' });
    }
    if (typeof def !== 'object' || !KINDS.includes(def.type)) {
        return JSON.stringify({ error: 'Script should be declared using utility function (createSync, createAction, createOnEvent)' });
    }
    const out = { type: def.type };
    copy(def, out, ['description', 'version', 'frequency', 'autoStart', 'syncType', 'trackDeletes', 'endpoints', 'endpoint', 'scopes', 'webhookSubscriptions', 'event']);
    out.exec = typeof def.exec === 'function';
    out.onWebhook = def.onWebhook === undefined ? null : typeof def.onWebhook === 'function';
    out.checkpoint = def.checkpoint !== undefined;
    const kind = def.type === 'sync' ? 'createSync' : def.type === 'action' ? 'createAction' : 'createOnEvent';
    if (def.models !== undefined) {
        if (def.models === null || typeof def.models !== 'object') {
            throw new TypeError(`${kind} > models must be an object of model name: zod schema`);
        }
        out.models = [];
        for (const [name, schema] of Object.entries(def.models)) {
            // As text, so that the order of the properties (the typed view's columns) survives.
            out.models.push([name, JSON.stringify(await toJsonSchema(schema, `${kind} > models > ${name}`))]);
        }
    }
    if (def.metadata !== undefined) out.metadata = await toJsonSchema(def.metadata, `${kind} > metadata`);
    if (def.type === 'action') {
        if (def.input !== undefined) out.input = await toJsonSchema(def.input, 'createAction > input');
        if (def.output !== undefined) out.output = await toJsonSchema(def.output, 'createAction > output');
    }
    return JSON.stringify(out);
}
