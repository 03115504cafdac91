// The `nango` object a script receives, built over a few native functions (`host`): request (the provider
// proxy, async), save (records), log, and call (metadata, connection, checkpoints, deletion windows, stored
// records; arguments and result as JSON). Everything Nango's SDK does in TypeScript that
// needs no Postgres or network lives here, in plain JavaScript.

export class ActionError extends Error {
    constructor(payload) {
        const message =
            payload && typeof payload === 'object' && typeof payload.message === 'string'
                ? payload.message
                : typeof payload === 'string'
                  ? payload
                  : 'Action failed';
        super(message);
        this.name = 'ActionError';
        this.type = 'action_script_runtime_error';
        this.payload = payload && typeof payload === 'object' ? payload : { message };
    }
}

const LEVELS = ['debug', 'info', 'warn', 'error'];
const LEVEL_ALIASES = { verbose: 'debug', silly: 'debug', http: 'info' };

// The parts of a property path as lodash reads one: `a.b`, `a[0]`, `a["b.c"]`.
function pathParts(path) {
    const parts = [];
    const re = /([^.[\]]+)|\[(?:"([^"]*)"|'([^']*)'|([^\]]*))\]/g;
    for (let m = re.exec(path); m; m = re.exec(path)) parts.push(m[1] ?? m[2] ?? m[3] ?? m[4]);
    return parts;
}

// lodash's `get`: a key holding dots that the object has as is wins over the path it spells.
function get(obj, path) {
    if (obj === null || obj === undefined) return undefined;
    if (typeof path === 'string' && path in Object(obj)) return obj[path];
    let node = obj;
    for (const part of pathParts(String(path))) {
        if (node === null || node === undefined) return undefined;
        node = node[part];
    }
    return node;
}

// lodash's `set` on a plain object: missing levels become objects, or arrays before an index.
function set(obj, path, value) {
    if (path in obj) {
        obj[path] = value;
        return;
    }
    const parts = pathParts(String(path));
    let node = obj;
    parts.forEach((part, i) => {
        if (i === parts.length - 1) {
            node[part] = value;
            return;
        }
        if (node[part] === null || typeof node[part] !== 'object') node[part] = /^(0|[1-9]\d*)$/.test(parts[i + 1]) ? [] : {};
        node = node[part];
    });
}

function httpError(response) {
    const error = new Error(`Request failed with status code ${response.status}`);
    error.name = 'AxiosError';
    error.status = response.status;
    error.response = response;
    return error;
}

// The URL of the link with this `rel` in a Link header, as the parse-link-header package reads it (one
// link may carry several space-separated rels).
function parseLinkHeader(header, rel) {
    if (!header) return undefined;
    let found;
    for (const part of String(header).split(/,\s*</)) {
        const match = part.match(/<?([^>]*)>(.*)/);
        if (!match) continue;
        for (const param of match[2].split(';')) {
            const pair = param.match(/\s*(.+)\s*=\s*"?([^"]+)"?/);
            if (pair && pair[1].trim() === 'rel' && pair[2].split(/\s+/).includes(rel)) found = match[1];
        }
    }
    return found;
}

// An absolute http(s) link split as `new URL` does: origin (host lower-cased, default port dropped) and
// path with query; the fragment is left out. Anything else is a path for the provider's base URL.
function absoluteLink(link) {
    const match = String(link).match(/^(https?):\/\/([^/?#]*)([^?#]*)(\?[^#]*)?/i);
    if (!match) return undefined;
    const scheme = match[1].toLowerCase();
    const host = match[2].replace(/^[^@]*@/, '').toLowerCase().replace(scheme === 'https' ? /:443$/ : /:80$/, '');
    return { origin: `${scheme}://${host}`, path: (match[3] || '/') + (match[4] && match[4] !== '?' ? match[4] : '') };
}

// A copy of the caller's params or data object, so that the paginator's keys never reach it: Nango
// mutates the caller's object instead [quirk], which lends a cursor to a later paginate given the same
// object (say users of each workspace). Anything other than a plain object is used as is.
function ownParams(value) {
    if (value === undefined || value === null) return {};
    return Object.getPrototypeOf(value) === Object.prototype ? { ...value } : value;
}

// The body of an in-body pagination: every key, dotted ones expanded (`page.size` → `{ page: { size } }`).
function expandedBody(params) {
    if (params === null || typeof params !== 'object' || Array.isArray(params)) return params;
    const body = {};
    for (const key of Object.keys(params)) set(body, key, params[key]);
    return body;
}

function checkPagination(options) {
    if (!options.type) throw new Error('Pagination type is required');
    if (options.type === 'cursor') {
        if (!options.cursor_name_in_request) throw new Error('Param cursor_name_in_request is required for cursor pagination');
        if (!options.cursor_path_in_response) throw new Error('Param cursor_path_in_response is required for cursor pagination');
        if (options.limit && !options.limit_name_in_request) {
            throw new Error('Param limit_name_in_request is required for cursor pagination when limit is set');
        }
    } else if (options.type === 'link') {
        if (!options.link_rel_in_response_header && !options.link_path_in_response_body) {
            throw new Error('Either param link_rel_in_response_header or link_path_in_response_body is required for link pagination');
        }
    } else if (options.type === 'offset') {
        if (!options.offset_name_in_request) throw new Error('Param offset_name_in_request is required for offset pagination');
    } else {
        throw new Error(`Pagination type ${options.type} is not supported. Only cursor, link and offset pagination types are supported.`);
    }
}

export function createNango(host, context) {
    const scriptType = context.scriptType;
    const models = context.models || [];

    function ensureSync(method) {
        if (scriptType !== 'sync') throw new Error(`nango.${method} can only be used in a sync`);
    }

    // Whether a proxy call was made: a merging strategy must be set before any.
    let proxyStarted = false;
    async function proxy(config) {
        proxyStarted = true;
        if (!config || typeof config !== 'object') throw new Error('nango.proxy expects a configuration object');
        const call = {
            method: (config.method || 'GET').toUpperCase(),
            endpoint: config.endpoint || '',
            params: config.params,
            headers: config.headers || {},
            retries: config.retries || 0,
            retryOn: config.retryOn || [],
            baseUrlOverride: config.baseUrlOverride,
            responseType: config.responseType,
            decompress: config.decompress === undefined ? undefined : config.decompress === true || config.decompress === 'true',
        };
        if (call.decompress && !Object.keys(call.headers).some((name) => name.toLowerCase() === 'accept-encoding')) {
            call.headers = { ...call.headers, 'accept-encoding': 'gzip, deflate, br' };
        }
        if (config.data !== undefined && config.data !== null) {
            call.body = typeof config.data === 'string' ? config.data : JSON.stringify(config.data);
        }
        const response = await host.request(JSON.stringify(call));
        if (response.status >= 400) throw httpError(response);
        if (call.responseType === 'stream') response.data = byteStream(response.data);
        return response;
    }

    async function write(op, method, records, model) {
        ensureSync(method);
        if (!Array.isArray(records)) throw new Error(`nango.${method}: records must be an array`);
        checkModel(model, method);
        // Each record is checked by the host (an object with an id of at most 255 characters, a repeated
        // id keeps its last occurrence) before anything of the batch is written.
        host.save(op, model, records);
        return true;
    }

    // Makes the requests Nango's paginator makes, in the same order with the same parameters.
    async function* paginate(config) {
        const defaults = context.paginate;
        if (!defaults && !(config.paginate && config.paginate.type)) {
            throw new Error('There was no pagination configuration for this integration or configuration passed in.');
        }
        // The provider's defaults under the call's settings, whatever their types: defaults written for a
        // cursor lend their limit_name_in_request and response_path to a call paging by link [quirk].
        const options = { ...(defaults || {}), ...(config.paginate || {}) };
        checkPagination(options);
        const method = config.method || 'GET';
        // Only the call's in_body counts, not the provider's [quirk].
        const inBody = config.paginate?.in_body ?? ['post', 'put', 'patch'].includes(String(method).toLowerCase());
        const params = ownParams(inBody ? config.data : config.params);
        // A limit without limit_name_in_request is sent as `undefined=<limit>` [quirk].
        if (options.limit) params[options.limit_name_in_request] = options.limit;
        const request = { ...config, method };
        const apply = () => {
            if (inBody) request.data = expandedBody(params);
            else request.params = params;
        };
        // Where a link pagination finds its pages changes none of its requests: a response_path lent by
        // defaults of another type is not used there (Nango uses it, and yields undefined pages [quirk]).
        const lent = options.type === 'link' && defaults && defaults.type !== 'link' && !(config.paginate && 'response_path' in config.paginate);
        const responsePath = lent ? undefined : options.response_path;
        const pageOf = (response) => (responsePath ? get(response.data, responsePath) : response.data);

        if (options.type === 'cursor') {
            let next;
            do {
                if (next !== undefined) params[options.cursor_name_in_request] = next;
                apply();
                const response = await proxy(request);
                const page = pageOf(response);
                if (!page || !page.length) return;
                yield page;
                next = get(response.data, options.cursor_path_in_response);
                if (typeof next === 'string') next = next.trim() || undefined;
                else if (typeof next !== 'number') next = undefined;
                if (options.on_page) await options.on_page({ nextPageParam: next, response });
            } while (next !== undefined);
        } else if (options.type === 'link') {
            apply();
            let previous;
            for (;;) {
                const response = await proxy(request);
                // Every page is yielded, an empty one too; a missing one as [] (Nango yields undefined [quirk]).
                yield pageOf(response) ?? [];
                const next = options.link_rel_in_response_header
                    ? parseLinkHeader(response.headers['link'], options.link_rel_in_response_header)
                    : get(response.data, options.link_path_in_response_body);
                if (options.on_page) await options.on_page({ nextPageParam: next, response });
                if (!next || next === previous) return;
                previous = next;
                const absolute = absoluteLink(next);
                if (absolute) {
                    request.baseUrlOverride = absolute.origin;
                    request.endpoint = absolute.path;
                } else {
                    request.endpoint = next;
                }
                delete request.params;
            }
        } else {
            const perPage = options.offset_calculation_method === 'per-page';
            let offset = options.offset_start_value || 0;
            for (;;) {
                params[options.offset_name_in_request] = inBody ? offset : String(offset);
                apply();
                const response = await proxy(request);
                const page = pageOf(response);
                if (!page || !page.length) return;
                yield page;
                if (options.limit && page.length < Number(options.limit)) return;
                if (options.on_page) await options.on_page({ nextPageParam: offset, response });
                if (perPage) offset++;
                else offset += page.length;
            }
        }
    }

    function log(...args) {
        let level = 'info';
        const last = args[args.length - 1];
        if (args.length > 1 && last && typeof last === 'object' && !Array.isArray(last) && Object.keys(last).join() === 'level') {
            level = LEVEL_ALIASES[last.level] || last.level;
            args.pop();
        }
        if (!LEVELS.includes(level)) level = 'info';
        const [message, payload] = args;
        const text = typeof message === 'string' ? message : JSON.stringify(message);
        host.log(level, text === undefined ? String(message) : text, payload === undefined ? null : JSON.stringify(payload));
    }

    const call = (op, ...args) => JSON.parse(host.call(op, JSON.stringify(args)));

    function checkModel(model, method) {
        if (typeof model !== 'string' || model === '') throw new Error(`nango.${method}: the model name is required`);
        if (models.length > 0 && !models.includes(model)) {
            throw new Error(`nango.${method}: the model '${model}' is not included in the declared sync models (${models.join(', ')})`);
        }
    }

    function checkCheckpoint(checkpoint) {
        if (checkpoint === null || typeof checkpoint !== 'object' || Array.isArray(checkpoint)) {
            throw new Error('nango.saveCheckpoint: the checkpoint must be an object');
        }
        for (const [key, value] of Object.entries(checkpoint)) {
            if (!['string', 'number', 'boolean'].includes(typeof value)) {
                throw new Error(`nango.saveCheckpoint: checkpoint field '${key}' must be a string, number or boolean`);
            }
        }
    }

    async function getRecordsByIds(ids, model) {
        ensureSync('getRecordsByIds');
        checkModel(model, 'getRecordsByIds');
        if (!Array.isArray(ids)) throw new Error('nango.getRecordsByIds: ids must be an array');
        const found = call('getRecordsByIds', model, ids.map(String));
        const records = new Map();
        for (const id of ids) {
            const record = found[String(id)];
            if (record !== undefined) records.set(id, record);
        }
        return records;
    }

    async function zodValidateInput({ zodSchema, input }) {
        const parsed = zodSchema.safeParse(input);
        if (!parsed.success) {
            for (const issue of parsed.error.issues || []) {
                log(`Invalid input provided: ${issue.message} at path ${(issue.path || []).join('.')}`, { level: 'error' });
            }
            throw new ActionError({ message: 'Invalid input provided' });
        }
        return parsed;
    }

    const nango = {
        connectionId: context.connectionId,
        providerConfigKey: context.providerConfigKey,
        provider: context.provider,
        scriptType,
        lastSyncDate: context.lastSyncDate ? new Date(context.lastSyncDate) : undefined,
        ActionError,
        proxy,
        get: (config) => proxy({ ...config, method: 'GET' }),
        post: (config) => proxy({ ...config, method: 'POST' }),
        put: (config) => proxy({ ...config, method: 'PUT' }),
        patch: (config) => proxy({ ...config, method: 'PATCH' }),
        delete: (config) => proxy({ ...config, method: 'DELETE' }),
        paginate,
        batchSave: (records, model) => write('save', 'batchSave', records, model),
        batchUpdate: (records, model) => write('update', 'batchUpdate', records, model),
        batchDelete: (records, model) => write('delete', 'batchDelete', records, model),
        log,
        getMetadata: async () => call('getMetadata'),
        setMetadata: async (metadata) => {
            call('setMetadata', metadata ?? {});
        },
        updateMetadata: async (metadata) => {
            call('updateMetadata', metadata ?? {});
        },
        getConnection: async () => call('getConnection'),
        getCheckpoint: async () => {
            ensureSync('getCheckpoint');
            return call('getCheckpoint');
        },
        saveCheckpoint: async (checkpoint) => {
            ensureSync('saveCheckpoint');
            checkCheckpoint(checkpoint);
            call('saveCheckpoint', checkpoint);
        },
        clearCheckpoint: async () => {
            ensureSync('clearCheckpoint');
            call('clearCheckpoint');
        },
        trackDeletesStart: async (model) => {
            ensureSync('trackDeletesStart');
            checkModel(model, 'trackDeletesStart');
            call('trackDeletesStart', model);
        },
        trackDeletesEnd: async (model) => {
            ensureSync('trackDeletesEnd');
            checkModel(model, 'trackDeletesEnd');
            return { deletedKeys: call('trackDeletesEnd', model) };
        },
        getRecordsByIds,
        zodValidateInput,
        ...moreMethods({ host, call, ensureSync, checkModel, context, proxyStarted: () => proxyStarted }),
    };
    return nango;
}

// The SDK calls beyond proxy, records, metadata and checkpoints (native side: `sdk_calls.rs`).

const CHUNK = 65536;

// A response body as an async iterable of Uint8Array chunks (what `responseType: 'stream'` gives).
function byteStream(bytes) {
    return {
        async *[Symbol.asyncIterator]() {
            for (let i = 0; i < bytes.length; i += CHUNK) yield bytes.subarray(i, Math.min(i + CHUNK, bytes.length));
        },
    };
}

// The headers of a fetch Response: case-insensitive, repeated names joined with ', '.
class FetchHeaders {
    constructor(pairs) {
        this.map = new Map();
        for (const [name, value] of pairs) {
            const key = name.toLowerCase();
            this.map.set(key, this.map.has(key) ? `${this.map.get(key)}, ${value}` : value);
        }
    }
    get(name) {
        const value = this.map.get(String(name).toLowerCase());
        return value === undefined ? null : value;
    }
    has(name) {
        return this.map.has(String(name).toLowerCase());
    }
    forEach(fn, thisArg) {
        for (const [name, value] of this.map) fn.call(thisArg, value, name, this);
    }
    entries() {
        return this.map.entries();
    }
    keys() {
        return this.map.keys();
    }
    values() {
        return this.map.values();
    }
    [Symbol.iterator]() {
        return this.map.entries();
    }
}

const STATUS_TEXT = { 200: 'OK', 201: 'Created', 204: 'No Content', 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 500: 'Internal Server Error' };

// A fetch Response over what the host's `fetch` returned; its body can be read once.
function fetchResponse(host, raw) {
    let used = false;
    const take = () => {
        if (used) throw new TypeError('Body is unusable: Body has already been read');
        used = true;
        return raw.body;
    };
    return {
        status: raw.status,
        statusText: STATUS_TEXT[raw.status] || '',
        ok: raw.status >= 200 && raw.status < 300,
        redirected: false,
        type: 'basic',
        url: raw.url,
        headers: new FetchHeaders(raw.headers),
        get bodyUsed() {
            return used;
        },
        get body() {
            return used ? null : byteStream(raw.body);
        },
        async arrayBuffer() {
            const bytes = take();
            return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
        },
        async bytes() {
            return take();
        },
        async text() {
            return host.utf8(take());
        },
        async json() {
            return JSON.parse(host.utf8(take()));
        },
    };
}

// How deep actions may trigger actions.
const MAX_TRIGGER_DEPTH = 5;

function moreMethods({ host, call, ensureSync, checkModel, context, proxyStarted }) {
    const merging = new Set();
    return {
        getToken: async () => JSON.parse(await host.token()),
        getIntegration: async (queries) => call('getIntegration', queries ?? {}),
        getWebhookURL: async () => call('getIntegration', { include: ['webhook'] }).webhook_url,
        getEnvironmentVariables: async () => call('getEnvironmentVariables'),
        getFieldMapping: async () => {
            const metadata = call('getMetadata');
            return (metadata && metadata.fieldMapping) || {};
        },
        setFieldMapping: async (fieldMapping) => {
            call('setMetadata', fieldMapping ?? {});
        },
        tryAcquireLock: async (options) => call('tryAcquireLock', options ?? {}),
        releaseLock: async (options) => call('releaseLock', options ?? {}),
        uncontrolledFetch: async (options) => {
            if (!options || options.url === undefined) throw new Error('nango.uncontrolledFetch expects { url }');
            const request = { url: String(options.url), method: options.method, headers: options.headers, body: options.body ?? undefined };
            let raw;
            try {
                raw = await host.fetch(JSON.stringify(request));
            } catch (error) {
                const message = error && error.message ? error.message : String(error);
                if (/ refused: /.test(message)) throw new ActionError({ code: 'url_not_allowed', message });
                throw new TypeError(`fetch failed: ${message}`);
            }
            return fetchResponse(host, raw);
        },
        // Runs an action of this integration for this connection in this run, with its own `nango`, and
        // returns its output as JSON (what Nango's API would return).
        triggerAction: async (providerConfigKey, connectionId, actionName, input) => {
            if (providerConfigKey !== context.providerConfigKey || connectionId !== context.connectionId) {
                throw new Error(
                    `nango.triggerAction: only actions of this integration and connection (${context.providerConfigKey}, ${context.connectionId}) can be triggered`,
                );
            }
            const depth = (context.triggerDepth || 0) + 1;
            if (depth > MAX_TRIGGER_DEPTH) throw new Error(`nango.triggerAction: actions trigger actions more than ${MAX_TRIGGER_DEPTH} levels deep`);
            const entry = call('actionEntry', String(actionName));
            const namespace = await import(entry);
            const exported = namespace.default;
            const run = typeof exported === 'function' ? exported : exported && typeof exported.exec === 'function' ? exported.exec.bind(exported) : null;
            if (!run) throw new Error(`nango.triggerAction: ${entry} has no default export function`);
            const nango = createNango(host, { ...context, scriptType: 'action', models: [], triggerDepth: depth });
            const output = await run(nango, input === undefined ? undefined : JSON.parse(JSON.stringify(input)));
            return output === undefined ? null : JSON.parse(JSON.stringify(output));
        },
        setMergingStrategy: async (options, model) => {
            ensureSync('setMergingStrategy');
            checkModel(model, 'setMergingStrategy');
            const strategy = options && options.strategy;
            if (strategy !== 'ignore_if_modified_after' && strategy !== 'override') {
                throw new Error(`Unsupported merging strategy: ${strategy}`);
            }
            if (proxyStarted()) throw new Error('nango.setMergingStrategy must be called before any proxy call');
            if (merging.has(model)) {
                host.log('warn', `Merging strategy for model ${model} is already set. Skipping`, null);
                return;
            }
            merging.add(model);
            call('setMergingStrategy', model, strategy);
            host.log('info', `Merging strategy set to '${strategy}' for model ${model}.`, null);
        },
        listRecords: async function* (model, options) {
            ensureSync('listRecords');
            checkModel(model, 'listRecords');
            let cursor = options && options.cursor ? String(options.cursor) : null;
            do {
                const page = call('listRecords', model, cursor);
                for (const record of page.records) yield record;
                cursor = page.next_cursor;
            } while (cursor);
        },
    };
}
