// Writes crates/core/tests/fixtures/zod-json-schema.json: the JSON Schema the bundled zod gives for each
// schema of crates/core/tests/fixtures/zod-json-schema-cases.mjs, converted as a zero-YAML deploy converts
// a model.
//   bash scripts/fetch-npm.sh zod && node scripts/zod-json-schema-fixtures.mjs > crates/core/tests/fixtures/zod-json-schema.json
import { readFileSync } from 'node:fs';
import { cases, modelSchema } from '../crates/core/tests/fixtures/zod-json-schema-cases.mjs';

const root = new URL('..', import.meta.url);
const version = readFileSync(new URL('scripts/npm-packages.lock', root), 'utf8').match(/^zod (\S+)/m)[1];
const { z } = await import(new URL(`target/npm/zod@${version}/index.js`, root));

const out = {};
for (const [name, schema] of Object.entries(cases(z))) {
    out[name] = modelSchema(z, schema);
}
console.log(JSON.stringify(out, null, 1));
