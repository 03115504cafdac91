// Writes crates/core/tests/fixtures/zod-json-schema.json: the JSON Schema the bundled zod gives for each
// schema below, converted as a zero-YAML deploy converts a model (draft-7, unrepresentable types as any,
// z.date() as a date-time string, z.void() as null, no $schema).
//   bash scripts/fetch-npm.sh zod && node scripts/zod-json-schema-fixtures.mjs > crates/core/tests/fixtures/zod-json-schema.json
import { readFileSync } from 'node:fs';

const root = new URL('..', import.meta.url);
const version = readFileSync(new URL('scripts/npm-packages.lock', root), 'utf8').match(/^zod (\S+)/m)[1];
const { z } = await import(new URL(`target/npm/zod@${version}/index.js`, root));

function modelSchema(schema) {
    if (schema instanceof z.ZodVoid) {
        return { type: 'null' };
    }
    const json = z.toJSONSchema(schema, {
        target: 'draft-7',
        unrepresentable: 'any',
        override: (ctx) => {
            if (ctx.zodSchema._zod.def.type === 'date') {
                ctx.jsonSchema.type = 'string';
                ctx.jsonSchema.format = 'date-time';
            }
        }
    });
    delete json.$schema;
    return json;
}

const User = z.object({ id: z.string(), name: z.string() });
const Category = z.object({
    name: z.string(),
    get subcategories() {
        return z.array(Category);
    },
    get parent() {
        return Category.optional();
    }
});
const TreeNode = z.object({
    id: z.string(),
    get children() {
        return z.array(TreeNode).optional();
    }
});
const Tagged = z.object({ t: z.string() }).meta({ id: 'Tagged' });
const A = z.object({ a: z.string() });
const B = z.object({ b: z.number() });

const schemas = {
    issue: z.object({
        id: z.string(),
        number: z.number().int(),
        title: z.string(),
        closed: z.boolean().optional(),
        created_at: z.date(),
        labels: z.array(z.string()),
        state: z.enum(['open', 'closed']),
        repo: z.object({ owner: z.string(), name: z.string() }),
        assignee: z.string().nullable(),
        meta: z.record(z.string(), z.any()),
        kind: z.literal('issue')
    }),
    field_order: z.object({ zeta: z.string(), alpha: z.string(), mid: z.number() }),
    optional_nullable: z.object({
        id: z.string(),
        title: z.string().optional(),
        closed: z.boolean().nullable(),
        note: z.string().nullish(),
        owner: z.object({ a: z.string() }).nullable(),
        due: z.date().nullable(),
        state: z.enum(['a', 'b']).nullable()
    }),
    numbers: z.object({
        n: z.number().int(),
        bounded: z.number().int().min(0).max(10),
        f: z.number(),
        i32: z.int32(),
        big: z.bigint()
    }),
    literals: z.object({
        state: z.enum(['open', 'closed']),
        one: z.enum(['only']),
        text: z.literal('x'),
        num: z.literal(42),
        yes: z.literal(true),
        several: z.literal(['a', 'b']),
        numeric_enum: z.enum({ A: 1, B: 2 }),
        mixed: z.literal([1, 'a']),
        nothing: z.literal(null)
    }),
    record_top: z.record(z.string(), z.number()),
    catchall: z.object({ id: z.string() }).catchall(z.number()),
    loose: z.looseObject({ id: z.string() }),
    records: z.object({
        counts: z.record(z.string(), z.number()),
        anything: z.record(z.string(), z.any()),
        empty: z.object({})
    }),
    array_objects: z.object({
        items: z.array(z.object({ a: z.string(), b: z.number().optional() })),
        matrix: z.array(z.array(z.number()))
    }),
    dates: z.object({
        created_at: z.date(),
        iso: z.iso.datetime(),
        day: z.iso.date(),
        maybe: z.date().optional(),
        email: z.email()
    }),
    unions: z.object({
        u: z.union([z.string(), z.number()]),
        objects: z.discriminatedUnion('k', [
            z.object({ k: z.literal('a'), a: z.string() }),
            z.object({ k: z.literal('b'), b: z.number() })
        ]),
        nullable_union: z.union([z.string(), z.number()]).nullable()
    }),
    nested: z.object({ repo: z.object({ owner: z.string(), info: z.object({ stars: z.number() }) }) }),
    recursive: Category,
    recursive_inner: z.object({ root: TreeNode, other: z.string() }),
    reused: z.object({ a: User, b: User }),
    meta_id: z.object({ x: Tagged, y: Tagged.optional() }),
    tuple: z.object({
        pair: z.tuple([z.string(), z.number()]),
        single: z.tuple([z.string()]),
        rest: z.tuple([z.string()], z.boolean())
    }),
    intersections: z.object({
        objects: z.intersection(A, B),
        strings: z.intersection(z.string(), z.string().min(1)),
        mixed: z.intersection(z.string(), z.number())
    }),
    unrepresentable: z.object({
        any: z.any(),
        unknown: z.unknown(),
        map: z.map(z.string(), z.number()),
        set: z.set(z.string()),
        transformed: z.string().transform((s) => s.length),
        never: z.never().optional()
    }),
    void_top: z.void(),
    string_top: z.string(),
    array_top: z.array(User),
    union_top: z.union([User, z.string()]),
    nullable_top: User.nullable(),
    intersection_top: z.intersection(z.union([A, B]), z.object({ c: z.string() }))
};

const out = {};
for (const [name, schema] of Object.entries(schemas)) {
    out[name] = modelSchema(schema);
}
console.log(JSON.stringify(out, null, 1));
