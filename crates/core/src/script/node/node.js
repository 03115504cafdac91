// The Node.js surface a script finds in Nango's runner: globals (Buffer, URL, URLSearchParams, TextEncoder,
// TextDecoder, timers, structuredClone, console, crypto) and the objects of the built-in modules crypto, url
// and buffer. This file gives the shapes and checks the arguments with Node's errors; `native` (Rust) does the
// work on bytes and URLs. `install(native)` runs once per run, before the script's modules are imported.

export const modules = {};

let native;

// ---------------------------------------------------------------------------------------------- errors

function describe(value) {
    if (value === null || value === undefined) return String(value);
    if (typeof value === 'function') return `function ${value.name || '(anonymous)'}`;
    if (typeof value === 'object') {
        const name = value.constructor && value.constructor.name;
        return name ? `an instance of ${name}` : inspect(value, { depth: -1 });
    }
    let shown = inspect(value);
    if (shown.length > 28) shown = `${shown.slice(0, 25)}...`;
    return `type ${typeof value} (${shown})`;
}

function nodeError(Base, code, message) {
    const error = new Base(message);
    Object.defineProperty(error, 'code', { value: code, enumerable: true, writable: true, configurable: true });
    return error;
}

function invalidArgType(name, expected, value) {
    const what = name.includes('.') || name.includes('[') ? `"${name}" property` : `"${name}" argument`;
    return nodeError(TypeError, 'ERR_INVALID_ARG_TYPE', `The ${what} must be ${expected}. Received ${describe(value)}`);
}

function outOfRange(name, range, value) {
    return nodeError(RangeError, 'ERR_OUT_OF_RANGE', `The value of "${name}" is out of range. It must be ${range}. Received ${String(value)}`);
}

function checkInteger(value, name, min, max) {
    if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value);
    if (!Number.isInteger(value)) throw outOfRange(name, 'an integer', value);
    if (value < min || value > max) throw outOfRange(name, `>= ${min} && <= ${max}`, value);
}

const isView = ArrayBuffer.isView;
const isArrayBuffer = (value) => value instanceof ArrayBuffer || (typeof SharedArrayBuffer !== 'undefined' && value instanceof SharedArrayBuffer);

/// A Uint8Array over the bytes of any ArrayBufferView or ArrayBuffer (no copy).
function bytesOf(value) {
    if (value instanceof Uint8Array) return value;
    if (isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
    return new Uint8Array(value);
}

// Lone surrogates cannot cross into Rust as UTF-8; Node writes them as U+FFFD too.
const wellFormed = (text) => (text.isWellFormed() ? text : text.toWellFormed());

// ---------------------------------------------------------------------------------------------- Buffer

const ENCODINGS = {
    utf8: 'utf8', 'utf-8': 'utf8',
    hex: 'hex',
    base64: 'base64', base64url: 'base64url',
    latin1: 'latin1', binary: 'latin1',
    ascii: 'ascii',
    ucs2: 'utf16le', 'ucs-2': 'utf16le', utf16le: 'utf16le', 'utf-16le': 'utf16le',
};

function normalizeEncoding(encoding) {
    if (encoding === undefined || encoding === null || encoding === '') return 'utf8';
    const found = ENCODINGS[String(encoding).toLowerCase()];
    if (!found) throw nodeError(TypeError, 'ERR_UNKNOWN_ENCODING', `Unknown encoding: ${encoding}`);
    return found;
}

class FastBuffer extends Uint8Array {}

function wrap(u8) {
    return new FastBuffer(u8.buffer, u8.byteOffset, u8.byteLength);
}

function encodeString(text, encoding) {
    return wrap(native.encode(wellFormed(String(text)), normalizeEncoding(encoding)));
}

function checkSize(size) {
    if (typeof size !== 'number') throw invalidArgType('size', 'of type number', size);
    if (!(size >= 0 && size <= native.maxLength)) throw outOfRange('size', `>= 0 && <= ${native.maxLength}`, size);
}

function Buffer(arg, encodingOrOffset, length) {
    if (typeof arg === 'number') {
        if (typeof encodingOrOffset === 'string') {
            throw invalidArgType('string', 'of type string', arg);
        }
        return Buffer.alloc(arg);
    }
    return Buffer.from(arg, encodingOrOffset, length);
}
Buffer.prototype = FastBuffer.prototype;
Object.defineProperty(FastBuffer.prototype, 'constructor', { value: Buffer, writable: true, configurable: true });
Object.setPrototypeOf(Buffer, Uint8Array);
Object.defineProperty(Buffer, Symbol.species, { get: () => FastBuffer, configurable: true });
Buffer.poolSize = 8192;

Buffer.from = function from(value, encodingOrOffset, length) {
    if (typeof value === 'string') return encodeString(value, encodingOrOffset);
    if (typeof value === 'object' && value !== null) {
        if (isArrayBuffer(value)) {
            const offset = encodingOrOffset === undefined ? 0 : Number(encodingOrOffset) || 0;
            if (offset < 0 || offset > value.byteLength) throw nodeError(RangeError, 'ERR_BUFFER_OUT_OF_BOUNDS', '"offset" is outside of buffer bounds');
            const max = value.byteLength - offset;
            const size = length === undefined ? max : Number(length) || 0;
            if (size < 0 || size > max) throw nodeError(RangeError, 'ERR_BUFFER_OUT_OF_BOUNDS', '"length" is outside of buffer bounds');
            return new FastBuffer(value, offset, size);
        }
        if (isView(value)) {
            const bytes = bytesOf(value);
            const copy = new FastBuffer(bytes.length);
            copy.set(bytes);
            return copy;
        }
        const primitive = value.valueOf && value.valueOf();
        if (primitive !== undefined && primitive !== null && primitive !== value) {
            return Buffer.from(primitive, encodingOrOffset, length);
        }
        if (typeof value.length === 'number' || Array.isArray(value)) {
            checkSize(value.length);
            return new FastBuffer(Array.prototype.slice.call(value));
        }
        if (value.type === 'Buffer' && Array.isArray(value.data)) return Buffer.from(value.data);
        if (typeof value[Symbol.toPrimitive] === 'function') {
            return Buffer.from(value[Symbol.toPrimitive]('string'), encodingOrOffset, length);
        }
    }
    throw nodeError(TypeError, 'ERR_INVALID_ARG_TYPE', `The first argument must be of type string or an instance of Buffer, ArrayBuffer, or Array or an Array-like Object. Received ${describe(value)}`);
};

Buffer.alloc = function alloc(size, fill, encoding) {
    checkSize(size);
    const buffer = new FastBuffer(Math.floor(size));
    if (fill !== undefined && fill !== 0 && buffer.length > 0) buffer.fill(fill, 0, buffer.length, encoding);
    return buffer;
};
Buffer.allocUnsafe = function allocUnsafe(size) {
    checkSize(size);
    return new FastBuffer(Math.floor(size));
};
Buffer.allocUnsafeSlow = Buffer.allocUnsafe;
Buffer.isBuffer = (value) => value instanceof Buffer;
Buffer.isEncoding = (encoding) => typeof encoding === 'string' && encoding !== '' && ENCODINGS[encoding.toLowerCase()] !== undefined;
Buffer.byteLength = function byteLength(value, encoding) {
    if (typeof value === 'string') return native.byteLength(wellFormed(value), normalizeEncoding(encoding));
    if (isView(value) || isArrayBuffer(value)) return value.byteLength;
    throw invalidArgType('string', 'of type string or an instance of Buffer or ArrayBuffer', value);
};
Buffer.compare = function compare(a, b) {
    if (!(a instanceof Uint8Array)) throw invalidArgType('buf1', 'an instance of Buffer or Uint8Array', a);
    if (!(b instanceof Uint8Array)) throw invalidArgType('buf2', 'an instance of Buffer or Uint8Array', b);
    return native.compare(a, b);
};
Buffer.concat = function concat(list, totalLength) {
    if (!Array.isArray(list)) throw invalidArgType('list', 'an instance of Array', list);
    list.forEach((item, i) => {
        if (!(item instanceof Uint8Array)) throw invalidArgType(`list[${i}]`, 'an instance of Buffer or Uint8Array', item);
    });
    const total = totalLength === undefined ? list.reduce((sum, item) => sum + item.length, 0) : totalLength;
    checkSize(total);
    const out = new FastBuffer(Math.floor(total));
    let offset = 0;
    for (const item of list) {
        if (offset >= out.length) break;
        const part = item.length > out.length - offset ? item.subarray(0, out.length - offset) : item;
        out.set(part, offset);
        offset += part.length;
    }
    return out;
};

function clampRange(length, start, end) {
    start = start === undefined ? 0 : Math.trunc(Number(start)) || 0;
    end = end === undefined ? length : Math.trunc(Number(end)) || 0;
    if (start < 0) start = 0;
    if (end > length) end = length;
    return [start, Math.max(start, end)];
}

const proto = FastBuffer.prototype;

proto.toString = function toString(encoding, start, end) {
    if (arguments.length === 0) return native.decode(this, 'utf8');
    const [from, to] = clampRange(this.length, start, end);
    return native.decode(this.subarray(from, to), normalizeEncoding(encoding));
};
proto.toLocaleString = proto.toString;
proto.equals = function equals(other) {
    if (!(other instanceof Uint8Array)) throw invalidArgType('otherBuffer', 'an instance of Buffer or Uint8Array', other);
    return this === other || native.compare(this, other) === 0;
};
proto.compare = function compare(target, targetStart, targetEnd, sourceStart, sourceEnd) {
    if (!(target instanceof Uint8Array)) throw invalidArgType('target', 'an instance of Buffer or Uint8Array', target);
    const [ts, te] = clampRange(target.length, targetStart, targetEnd);
    const [ss, se] = clampRange(this.length, sourceStart, sourceEnd);
    return native.compare(this.subarray(ss, se), target.subarray(ts, te));
};
proto.toJSON = function toJSON() {
    return { type: 'Buffer', data: Array.from(this) };
};
proto.slice = function slice(start, end) {
    return this.subarray(start, end);
};
proto.write = function write(string, offset, length, encoding) {
    if (typeof string !== 'string') throw invalidArgType('string', 'of type string', string);
    if (typeof offset === 'string') [encoding, offset, length] = [offset, 0, undefined];
    else if (typeof length === 'string') [encoding, length] = [length, undefined];
    offset = offset === undefined ? 0 : offset;
    checkInteger(offset, 'offset', 0, this.length);
    const room = this.length - offset;
    length = length === undefined ? room : Math.min(room, length);
    const bytes = encodeString(string, encoding);
    const written = Math.min(length, bytes.length);
    this.set(bytes.subarray(0, written), offset);
    return written;
};
proto.copy = function copy(target, targetStart = 0, sourceStart = 0, sourceEnd = this.length) {
    if (!(target instanceof Uint8Array)) throw invalidArgType('target', 'an instance of Buffer or Uint8Array', target);
    const [ss, se] = clampRange(this.length, sourceStart, sourceEnd);
    const ts = Math.max(0, Math.trunc(targetStart) || 0);
    if (ts >= target.length) return 0;
    const count = Math.min(se - ss, target.length - ts);
    target.set(this.subarray(ss, ss + count), ts);
    return count;
};
const typedFill = Uint8Array.prototype.fill;
proto.fill = function fill(value, offset, end, encoding) {
    if (typeof offset === 'string') [encoding, offset, end] = [offset, 0, this.length];
    else if (typeof end === 'string') [encoding, end] = [end, this.length];
    const [from, to] = clampRange(this.length, offset, end);
    if (typeof value === 'number' || typeof value === 'boolean') return typedFill.call(this, Number(value) & 255, from, to);
    const bytes = typeof value === 'string' ? encodeString(value, encoding) : bytesOf(value);
    if (bytes.length === 0) {
        if (typeof value === 'string' && value === '') return typedFill.call(this, 0, from, to);
        throw nodeError(TypeError, 'ERR_INVALID_ARG_VALUE', `The argument 'value' is invalid. Received ${inspect(value)}`);
    }
    for (let i = from; i < to; i += bytes.length) this.set(bytes.subarray(0, Math.min(bytes.length, to - i)), i);
    return this;
};
const typedIndexOf = Uint8Array.prototype.indexOf;
proto.indexOf = function indexOf(value, byteOffset = 0, encoding) {
    if (typeof value === 'number') return typedIndexOf.call(this, value & 255, byteOffset);
    if (typeof byteOffset === 'string') [encoding, byteOffset] = [byteOffset, 0];
    const needle = typeof value === 'string' ? encodeString(value, encoding) : bytesOf(value);
    let start = Math.trunc(Number(byteOffset)) || 0;
    if (start < 0) start = Math.max(0, this.length + start);
    if (needle.length === 0) return Math.min(start, this.length);
    for (let i = typedIndexOf.call(this, needle[0], start); i !== -1 && i + needle.length <= this.length; i = typedIndexOf.call(this, needle[0], i + 1)) {
        let j = 1;
        while (j < needle.length && this[i + j] === needle[j]) j++;
        if (j === needle.length) return i;
    }
    return -1;
};
proto.includes = function includes(value, byteOffset, encoding) {
    return this.indexOf(value, byteOffset, encoding) !== -1;
};
for (const encoding of ['utf8', 'latin1', 'ascii', 'hex', 'base64', 'base64url', 'ucs2', 'utf16le']) {
    proto[`${encoding}Slice`] = function (start, end) {
        return this.toString(encoding, start, end);
    };
    proto[`${encoding}Write`] = function (string, offset, length) {
        return this.write(string, offset, length, encoding);
    };
}

// readUInt8 … writeDoubleBE, through a DataView over the same bytes.
function view(buffer) {
    return new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}
function checkOffset(buffer, offset, size) {
    if (offset === undefined) offset = 0;
    if (typeof offset !== 'number') throw invalidArgType('offset', 'of type number', offset);
    if (!Number.isInteger(offset)) throw outOfRange('offset', 'an integer', offset);
    if (offset < 0 || offset + size > buffer.length) {
        if (buffer.length - size < 0) throw nodeError(RangeError, 'ERR_BUFFER_OUT_OF_BOUNDS', 'Attempt to access memory outside buffer bounds');
        throw outOfRange('offset', `>= 0 and <= ${buffer.length - size}`, offset);
    }
    return offset;
}
const ACCESSORS = [
    ['UInt8', 'Uint8', 1, [0, 255]], ['Int8', 'Int8', 1, [-128, 127]],
    ['UInt16', 'Uint16', 2, [0, 65535]], ['Int16', 'Int16', 2, [-32768, 32767]],
    ['UInt32', 'Uint32', 4, [0, 4294967295]], ['Int32', 'Int32', 4, [-2147483648, 2147483647]],
    ['Float', 'Float32', 4, null], ['Double', 'Float64', 8, null],
    ['BigUInt64', 'BigUint64', 8, null], ['BigInt64', 'BigInt64', 8, null],
];
for (const [name, dataView, size, range] of ACCESSORS) {
    for (const endian of size === 1 ? [''] : ['LE', 'BE']) {
        const little = endian === 'LE';
        const read = function (offset) {
            offset = checkOffset(this, offset, size);
            return view(this)[`get${dataView}`](offset, little);
        };
        const write = function (value, offset) {
            offset = checkOffset(this, offset, size);
            if (range && (typeof value !== 'number' || value < range[0] || value > range[1])) {
                if (typeof value !== 'number') throw invalidArgType('value', 'of type number', value);
                throw outOfRange('value', `>= ${range[0]} and <= ${range[1]}`, value);
            }
            view(this)[`set${dataView}`](offset, value, little);
            return offset + size;
        };
        for (const alias of new Set([name, name.replace('UInt', 'Uint')])) {
            proto[`read${alias}${endian}`] = read;
            proto[`write${alias}${endian}`] = write;
        }
    }
}

// ---------------------------------------------------------------------------------------------- text

class TextEncoder {
    get encoding() {
        return 'utf-8';
    }
    encode(input = '') {
        return native.encode(wellFormed(String(input)), 'utf8');
    }
    encodeInto(source, destination) {
        if (!(destination instanceof Uint8Array)) throw invalidArgType('dest', 'an instance of Uint8Array', destination);
        const text = wellFormed(String(source));
        let read = 0;
        let written = 0;
        for (const char of text) {
            const code = char.codePointAt(0);
            const size = code < 0x80 ? 1 : code < 0x800 ? 2 : code < 0x10000 ? 3 : 4;
            if (written + size > destination.length) break;
            destination.set(native.encode(char, 'utf8'), written);
            written += size;
            read += char.length;
        }
        return { read, written };
    }
}

const DECODERS = { 'utf-8': 'utf-8', utf8: 'utf-8', 'unicode-1-1-utf-8': 'utf-8', 'utf-16le': 'utf-16le', 'utf-16': 'utf-16le' };

class TextDecoder {
    #encoding;
    #fatal;
    #ignoreBOM;
    constructor(label = 'utf-8', options = {}) {
        const encoding = DECODERS[String(label).trim().toLowerCase()];
        if (!encoding) throw nodeError(RangeError, 'ERR_ENCODING_NOT_SUPPORTED', `The "${label}" encoding is not supported`);
        this.#encoding = encoding;
        this.#fatal = Boolean(options && options.fatal);
        this.#ignoreBOM = Boolean(options && options.ignoreBOM);
    }
    get encoding() {
        return this.#encoding;
    }
    get fatal() {
        return this.#fatal;
    }
    get ignoreBOM() {
        return this.#ignoreBOM;
    }
    decode(input) {
        if (input === undefined || input === null) return '';
        if (!isView(input) && !isArrayBuffer(input)) {
            throw invalidArgType('input', 'an instance of ArrayBuffer or ArrayBufferView', input);
        }
        let bytes = bytesOf(input);
        if (this.#encoding === 'utf-16le') {
            if (!this.#ignoreBOM && bytes[0] === 0xff && bytes[1] === 0xfe) bytes = bytes.subarray(2);
            return native.decode(bytes, 'utf16le');
        }
        if (!this.#ignoreBOM && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) bytes = bytes.subarray(3);
        const text = native.decodeUtf8(bytes, this.#fatal);
        if (text === null || text === undefined) {
            throw nodeError(TypeError, 'ERR_ENCODING_INVALID_ENCODED_DATA', `The encoded data was not valid for encoding ${this.#encoding}`);
        }
        return text;
    }
}

// ---------------------------------------------------------------------------------------------- URL

const URL_FIELDS = ['href', 'origin', 'protocol', 'username', 'password', 'host', 'hostname', 'port', 'pathname', 'search', 'hash'];
const PARTS = Symbol('parts');
const PARAMS = Symbol('params');
const LIST = Symbol('list');
const OWNER = Symbol('owner');

function invalidUrl(input, base) {
    const error = nodeError(TypeError, 'ERR_INVALID_URL', 'Invalid URL');
    error.input = input;
    if (base !== undefined) error.base = base;
    return error;
}

class URL {
    constructor(input, base) {
        if (arguments.length === 0) throw nodeError(TypeError, 'ERR_MISSING_ARGS', 'The "url" argument must be specified');
        input = wellFormed(`${input}`);
        if (base !== undefined) base = wellFormed(`${base}`);
        const parts = native.urlParse(input, base);
        if (!parts) throw invalidUrl(input, base);
        Object.defineProperty(this, PARTS, { value: parts, writable: true });
    }
    static canParse(input, base) {
        return Boolean(native.urlParse(wellFormed(`${input}`), base === undefined ? undefined : wellFormed(`${base}`)));
    }
    static parse(input, base) {
        try {
            return new URL(input, base);
        } catch {
            return null;
        }
    }
    get searchParams() {
        if (!this[PARAMS]) {
            const params = new URLSearchParams(this.search);
            params[OWNER] = this;
            Object.defineProperty(this, PARAMS, { value: params });
        }
        return this[PARAMS];
    }
    toString() {
        return this[PARTS][0];
    }
    toJSON() {
        return this[PARTS][0];
    }
    get [Symbol.toStringTag]() {
        return 'URL';
    }
}
URL_FIELDS.forEach((field, index) => {
    const descriptor = {
        get() {
            return this[PARTS][index];
        },
        enumerable: true,
        configurable: true,
    };
    if (field !== 'origin') {
        descriptor.set = function (value) {
            const parts = native.urlSet(this[PARTS][0], field, wellFormed(`${value}`));
            if (!parts) throw invalidUrl(`${value}`);
            this[PARTS] = parts;
            if ((field === 'search' || field === 'href') && this[PARAMS]) {
                this[PARAMS][LIST] = parseQuery(parts[9]);
            }
        };
    }
    Object.defineProperty(URL.prototype, field, descriptor);
});

function parseQuery(query) {
    if (query.startsWith('?')) query = query.slice(1);
    const flat = native.formParse(query);
    const list = [];
    for (let i = 0; i < flat.length; i += 2) list.push([flat[i], flat[i + 1]]);
    return list;
}

class URLSearchParams {
    constructor(init = undefined) {
        Object.defineProperty(this, LIST, { value: [], writable: true });
        Object.defineProperty(this, OWNER, { value: null, writable: true });
        if (init === undefined || init === null) return;
        if (typeof init === 'object' || typeof init === 'function') {
            if (typeof init[Symbol.iterator] === 'function') {
                for (const pair of init) {
                    if ((typeof pair !== 'object' && typeof pair !== 'function') || pair === null || typeof pair[Symbol.iterator] !== 'function') {
                        throw nodeError(TypeError, 'ERR_INVALID_TUPLE', 'Each query pair must be an iterable [name, value] tuple');
                    }
                    const items = [...pair];
                    if (items.length !== 2) throw nodeError(TypeError, 'ERR_INVALID_TUPLE', 'Each query pair must be an iterable [name, value] tuple');
                    this[LIST].push([wellFormed(`${items[0]}`), wellFormed(`${items[1]}`)]);
                }
            } else {
                for (const key of Object.keys(init)) this[LIST].push([wellFormed(key), wellFormed(`${init[key]}`)]);
            }
        } else {
            this[LIST] = parseQuery(wellFormed(`${init}`));
        }
    }
    #changed() {
        const owner = this[OWNER];
        if (owner) {
            owner[PARTS] = native.urlSet(owner[PARTS][0], 'search', this.toString()) || owner[PARTS];
        }
    }
    get size() {
        return this[LIST].length;
    }
    append(name, value) {
        if (arguments.length < 2) throw nodeError(TypeError, 'ERR_MISSING_ARGS', 'The "name" and "value" arguments must be specified');
        this[LIST].push([wellFormed(`${name}`), wellFormed(`${value}`)]);
        this.#changed();
    }
    delete(name, value) {
        if (arguments.length < 1) throw nodeError(TypeError, 'ERR_MISSING_ARGS', 'The "name" argument must be specified');
        name = `${name}`;
        this[LIST] = this[LIST].filter(([n, v]) => n !== name || (value !== undefined && v !== `${value}`));
        this.#changed();
    }
    get(name) {
        if (arguments.length < 1) throw nodeError(TypeError, 'ERR_MISSING_ARGS', 'The "name" argument must be specified');
        const found = this[LIST].find(([n]) => n === `${name}`);
        return found ? found[1] : null;
    }
    getAll(name) {
        if (arguments.length < 1) throw nodeError(TypeError, 'ERR_MISSING_ARGS', 'The "name" argument must be specified');
        return this[LIST].filter(([n]) => n === `${name}`).map(([, v]) => v);
    }
    has(name, value) {
        if (arguments.length < 1) throw nodeError(TypeError, 'ERR_MISSING_ARGS', 'The "name" argument must be specified');
        return this[LIST].some(([n, v]) => n === `${name}` && (value === undefined || v === `${value}`));
    }
    set(name, value) {
        if (arguments.length < 2) throw nodeError(TypeError, 'ERR_MISSING_ARGS', 'The "name" and "value" arguments must be specified');
        name = wellFormed(`${name}`);
        value = wellFormed(`${value}`);
        const index = this[LIST].findIndex(([n]) => n === name);
        if (index === -1) this[LIST].push([name, value]);
        else {
            this[LIST][index] = [name, value];
            this[LIST] = this[LIST].filter(([n], i) => i <= index || n !== name);
        }
        this.#changed();
    }
    sort() {
        // Stable, by UTF-16 code units, as the standard says.
        this[LIST] = this[LIST]
            .map((pair, i) => [pair, i])
            .sort(([a, i], [b, j]) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : i - j))
            .map(([pair]) => pair);
        this.#changed();
    }
    forEach(callback, thisArg = undefined) {
        if (typeof callback !== 'function') throw invalidArgType('callback', 'of type function', callback);
        for (let i = 0; i < this[LIST].length; i++) {
            const [name, value] = this[LIST][i];
            callback.call(thisArg, value, name, this);
        }
    }
    *entries() {
        for (let i = 0; i < this[LIST].length; i++) yield [this[LIST][i][0], this[LIST][i][1]];
    }
    *keys() {
        for (let i = 0; i < this[LIST].length; i++) yield this[LIST][i][0];
    }
    *values() {
        for (let i = 0; i < this[LIST].length; i++) yield this[LIST][i][1];
    }
    [Symbol.iterator]() {
        return this.entries();
    }
    toString() {
        return native.formSerialize(this[LIST].flat());
    }
    get [Symbol.toStringTag]() {
        return 'URLSearchParams';
    }
}

// The legacy API of the url module.
class Url {
    constructor() {
        Object.assign(this, { protocol: null, slashes: null, auth: null, host: null, port: null, hostname: null, hash: null, search: null, query: null, pathname: null, path: null, href: null });
    }
}
const SLASHED = new Set(['http:', 'https:', 'ftp:', 'gopher:', 'file:', 'ws:', 'wss:']);

function urlParse(input, parseQueryString = false, slashesDenoteHost = false) {
    if (input instanceof Url) return input;
    if (typeof input !== 'string') throw invalidArgType('url', 'of type string', input);
    const out = new Url();
    let rest = input.trim().replace(/\\/g, '/');
    const hashAt = rest.indexOf('#');
    if (hashAt !== -1) {
        out.hash = rest.slice(hashAt);
        rest = rest.slice(0, hashAt);
    }
    const queryAt = rest.indexOf('?');
    if (queryAt !== -1) {
        out.search = rest.slice(queryAt);
        out.query = rest.slice(queryAt + 1);
        rest = rest.slice(0, queryAt);
    } else if (parseQueryString) {
        out.search = '';
        out.query = '';
    }
    if (parseQueryString) out.query = Object.fromEntries(groupQuery(out.query));
    const protocol = /^([a-z][a-z0-9.+-]*:)/i.exec(rest);
    if (protocol) {
        out.protocol = protocol[1].toLowerCase();
        rest = rest.slice(protocol[1].length);
    }
    if (rest.startsWith('//') && (out.protocol !== null || slashesDenoteHost) && out.protocol !== 'javascript:') {
        out.slashes = true;
        rest = rest.slice(2);
        const end = rest.search(/[/]/);
        let authority = end === -1 ? rest : rest.slice(0, end);
        rest = end === -1 ? '' : rest.slice(end);
        const at = authority.lastIndexOf('@');
        if (at !== -1) {
            out.auth = decodeURIComponent(authority.slice(0, at));
            authority = authority.slice(at + 1);
        }
        const port = /:(\d*)$/.exec(authority);
        if (port) {
            if (port[1]) out.port = port[1];
            authority = authority.slice(0, port.index);
        }
        out.hostname = authority.toLowerCase();
        out.host = out.port ? `${out.hostname}:${out.port}` : out.hostname;
    }
    out.pathname = rest || (out.slashes && SLASHED.has(out.protocol) ? '/' : null);
    out.path = out.pathname === null && out.search === null ? null : `${out.pathname || ''}${out.search || ''}`;
    out.href = urlFormat(out);
    return out;
}

function groupQuery(query) {
    const grouped = new Map();
    for (const [name, value] of parseQuery(query || '')) {
        const seen = grouped.get(name);
        grouped.set(name, seen === undefined ? value : Array.isArray(seen) ? [...seen, value] : [seen, value]);
    }
    return grouped;
}

function urlFormat(object, options) {
    if (typeof object === 'string') object = urlParse(object);
    else if (object instanceof URL) {
        const url = new URL(object.href);
        if (options && options.auth === false) url.username = url.password = '';
        if (options && options.search === false) url.search = '';
        if (options && options.fragment === false) url.hash = '';
        return url.href;
    } else if (typeof object !== 'object' || object === null) {
        throw invalidArgType('urlObject', 'one of type object or string', object);
    }
    let protocol = object.protocol || '';
    if (protocol && !protocol.endsWith(':')) protocol += ':';
    let host = '';
    if (object.host) host = object.host;
    else if (object.hostname) host = object.hostname + (object.port ? `:${object.port}` : '');
    const auth = object.auth ? `${encodeURIComponent(object.auth).replace(/%3A/i, ':')}@` : '';
    const slashes = object.slashes || SLASHED.has(protocol) ? '//' : '';
    let pathname = object.pathname || '';
    if (host && pathname && !pathname.startsWith('/')) pathname = `/${pathname}`;
    let search = object.search || '';
    if (!search && object.query && typeof object.query === 'object') {
        const params = new URLSearchParams();
        for (const [name, value] of Object.entries(object.query)) {
            for (const item of Array.isArray(value) ? value : [value]) params.append(name, item);
        }
        const text = params.toString();
        search = text ? `?${text}` : '';
    }
    if (search && !search.startsWith('?')) search = `?${search}`;
    let hash = object.hash || '';
    if (hash && !hash.startsWith('#')) hash = `#${hash}`;
    return `${protocol}${host || protocol === 'file:' ? slashes : ''}${auth}${host}${pathname}${search}${hash}`;
}

function urlResolve(from, to) {
    const base = new URL(from, 'resolve://');
    const resolved = new URL(to, base);
    if (resolved.protocol === 'resolve:') {
        const { pathname, search, hash } = resolved;
        return /^[/]/.test(from) || !from ? `${pathname}${search}${hash}` : `${pathname.slice(1)}${search}${hash}`;
    }
    return resolved.href;
}

function fileURLToPath(path) {
    const url = typeof path === 'string' ? new URL(path) : path;
    if (!(url instanceof URL)) throw invalidArgType('path', 'of type string or an instance of URL', path);
    if (url.protocol !== 'file:') throw nodeError(TypeError, 'ERR_INVALID_URL_SCHEME', 'The URL must be of scheme file');
    if (url.hostname !== '') throw nodeError(TypeError, 'ERR_INVALID_FILE_URL_HOST', 'File URL host must be "localhost" or empty on linux');
    if (/%2f/i.test(url.pathname)) throw nodeError(TypeError, 'ERR_INVALID_FILE_URL_PATH', 'File URL path must not include encoded / characters');
    return decodeURIComponent(url.pathname);
}

function pathToFileURL(path) {
    if (typeof path !== 'string') throw invalidArgType('path', 'of type string', path);
    const absolute = path.startsWith('/') ? path : `/${path}`;
    const url = new URL('file://');
    url.pathname = absolute.replace(/%/g, '%25').replace(/#/g, '%23').replace(/\?/g, '%3F');
    return url;
}

// ---------------------------------------------------------------------------------------------- timers

let lastTimer = 0;
const liveTimers = new Map();
const TIMER_ID = Symbol('timerId');

// What Timeout and Immediate share: the timer's id, and the ref calls, which mean nothing here (a run
// ends when its script returns, not when its timers are done).
class TimerHandle {
    constructor(id) {
        this[TIMER_ID] = id;
    }
    ref() {
        return this;
    }
    unref() {
        return this;
    }
    hasRef() {
        return true;
    }
}

class Timeout extends TimerHandle {
    refresh() {
        return this;
    }
    close() {
        clearTimeout(this);
        return this;
    }
    [Symbol.toPrimitive]() {
        return this[TIMER_ID];
    }
}

function reportUncaught(error) {
    const text = error && error.stack ? `${error}\n${String(error.stack).trimEnd()}` : inspect(error);
    native.log('error', `Uncaught exception in a timer callback: ${text}`);
}

function delayOf(delay) {
    const ms = Number(delay);
    return ms >= 1 && ms <= 2147483647 ? ms : 1;
}

function schedule(callback, delay, args, repeat) {
    if (typeof callback !== 'function') throw invalidArgType('callback', 'of type function', callback);
    const id = ++lastTimer;
    const ms = delay === null ? 0 : delayOf(delay);
    liveTimers.set(id, true);
    const tick = () => {
        native.sleep(id, ms).then((fired) => {
            if (!fired || !liveTimers.has(id)) return;
            if (!repeat) liveTimers.delete(id);
            try {
                callback(...args);
            } catch (error) {
                reportUncaught(error);
            }
            if (repeat && liveTimers.has(id)) tick();
        });
    };
    tick();
    return id;
}

function clearTimer(timer) {
    const id = timer instanceof TimerHandle ? timer[TIMER_ID] : Number(timer);
    if (liveTimers.delete(id)) native.cancel(id);
}

class Immediate extends TimerHandle {}

function setTimeout(callback, delay, ...args) {
    return new Timeout(schedule(callback, delay, args, false));
}
function setInterval(callback, delay, ...args) {
    return new Timeout(schedule(callback, delay, args, true));
}
function setImmediate(callback, ...args) {
    return new Immediate(schedule(callback, null, args, false));
}
const clearTimeout = (timer) => clearTimer(timer);

// ---------------------------------------------------------------------------------------------- structuredClone

function dataCloneError(value) {
    return new DOMException(`${typeof value === 'function' ? String(value).slice(0, 80) : String(value)} could not be cloned.`, 'DataCloneError');
}

const TYPED_ARRAYS = [Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array, Float32Array, Float64Array, BigInt64Array, BigUint64Array];
const ERRORS = { Error, EvalError, RangeError, ReferenceError, SyntaxError, TypeError, URIError };

function structuredClone(value, options = undefined) {
    if (arguments.length === 0) throw nodeError(TypeError, 'ERR_MISSING_ARGS', 'The "value" argument must be specified');
    const memory = new Map();
    const clone = (input) => {
        if (typeof input === 'function' || typeof input === 'symbol') throw dataCloneError(input);
        if (typeof input !== 'object' || input === null) return input;
        if (memory.has(input)) return memory.get(input);
        let out;
        if (Array.isArray(input)) {
            out = new Array(input.length);
            memory.set(input, out);
            for (const key of Object.keys(input)) out[key] = clone(input[key]);
            return out;
        }
        if (input instanceof Date) out = new Date(input.getTime());
        else if (input instanceof RegExp) out = new RegExp(input.source, input.flags);
        else if (input instanceof Boolean || input instanceof Number || input instanceof String) out = Object(input.valueOf());
        else if (isArrayBuffer(input)) out = input.slice(0);
        else if (input instanceof DataView) out = new DataView(clone(input.buffer), input.byteOffset, input.byteLength);
        else if (isView(input)) {
            const Kind = TYPED_ARRAYS.find((T) => input instanceof T) || Uint8Array;
            out = new Kind(clone(input.buffer), input.byteOffset, input.length);
        } else if (input instanceof Map) {
            out = new Map();
            memory.set(input, out);
            for (const [k, v] of input) out.set(clone(k), clone(v));
            return out;
        } else if (input instanceof Set) {
            out = new Set();
            memory.set(input, out);
            for (const v of input) out.add(clone(v));
            return out;
        } else if (input instanceof Error) {
            const Kind = ERRORS[input.name] || Error;
            out = new Kind(input.message);
            if (input.stack !== undefined) out.stack = input.stack;
            if ('cause' in input) out.cause = clone(input.cause);
        } else if (input instanceof Promise || input instanceof WeakMap || input instanceof WeakSet || input instanceof WeakRef) {
            throw dataCloneError(input);
        } else {
            out = {};
            memory.set(input, out);
            for (const key of Object.keys(input)) out[key] = clone(input[key]);
            return out;
        }
        memory.set(input, out);
        return out;
    };
    void options;
    return clone(value);
}

// ---------------------------------------------------------------------------------------------- inspect, console

const CUSTOM_INSPECT = Symbol.for('nodejs.util.inspect.custom');
const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

function quote(text) {
    const q = !text.includes("'") ? "'" : !text.includes('"') ? '"' : !text.includes('`') ? '`' : "'";
    const escaped = text.replace(/[\\\n\t\r\b\f\v]/g, (c) => ({ '\\': '\\\\', '\n': '\\n', '\t': '\\t', '\r': '\\r', '\b': '\\b', '\f': '\\f', '\v': '\\v' })[c]);
    return q + (q === "'" ? escaped.replace(/'/g, "\\'") : escaped) + q;
}

function inspect(value, options = {}) {
    const maxDepth = options.depth === undefined ? 2 : options.depth === null ? Infinity : options.depth;
    const seen = [];
    const primitive = (v, nested) => {
        switch (typeof v) {
            case 'string': {
                if (!nested) return v;
                const cut = v.length > 10000 ? `${quote(v.slice(0, 10000))}... ${v.length - 10000} more characters` : quote(v);
                return cut;
            }
            case 'number':
                return Object.is(v, -0) ? '-0' : String(v);
            case 'bigint':
                return `${v}n`;
            case 'symbol':
                return v.toString();
            case 'function': {
                const kind = /^class\b/.test(Function.prototype.toString.call(v)) ? 'class' : v.constructor && v.constructor.name !== 'Function' ? v.constructor.name : 'Function';
                return kind === 'class' ? `[class ${v.name || '(anonymous)'}]` : `[${kind}${v.name ? `: ${v.name}` : ' (anonymous)'}]`;
            }
            default:
                return String(v);
        }
    };
    const join = (prefix, open, items, close, indent) => {
        if (items.length === 0) return `${prefix}${open}${close}`;
        const flat = `${prefix}${open} ${items.join(', ')} ${close}`;
        if (flat.length <= 72 && !items.some((i) => i.includes('\n'))) return flat;
        const pad = '  '.repeat(indent + 1);
        return `${prefix}${open}\n${items.map((i) => pad + i).join(',\n')}\n${'  '.repeat(indent)}${close}`;
    };
    const format = (v, depth, nested) => {
        if ((typeof v !== 'object' && typeof v !== 'function') || v === null) return primitive(v, nested);
        if (typeof v === 'function' && Object.keys(v).length === 0) return primitive(v, nested);
        if (seen.includes(v)) return '[Circular *1]';
        if (typeof v[CUSTOM_INSPECT] === 'function' && v[CUSTOM_INSPECT] !== inspect) {
            const custom = v[CUSTOM_INSPECT](maxDepth - depth, options, inspect);
            if (custom !== v) return typeof custom === 'string' ? custom : format(custom, depth, nested);
        }
        if (v instanceof Error) {
            const stack = v.stack ? `${v.name}: ${v.message}\n${String(v.stack).trimEnd()}` : `${v.name}: ${v.message}`;
            return nested ? `[${stack.split('\n')[0]}]` : stack;
        }
        if (v instanceof Date) return Number.isNaN(v.getTime()) ? 'Invalid Date' : v.toISOString();
        if (v instanceof RegExp) return String(v);
        if (v instanceof URL) return `URL { href: ${quote(v.href)} }`;
        if (v instanceof URLSearchParams) return join('URLSearchParams ', '{', [...v].map(([k, val]) => `${quote(k)} => ${quote(val)}`), '}', depth);
        if (v instanceof Buffer) {
            const hex = Array.from(v.subarray(0, 50), (b) => b.toString(16).padStart(2, '0')).join(' ');
            return `<Buffer${hex ? ` ${hex}` : ''}${v.length > 50 ? ` ... ${v.length - 50} more bytes` : ''}>`;
        }
        if (v instanceof Promise) return 'Promise { <pending> }';
        const name = v.constructor && v.constructor.name;
        if (depth > maxDepth) return Array.isArray(v) ? '[Array]' : `[${name || 'Object'}]`;
        seen.push(v);
        try {
            const items = [];
            const limited = (list, render) => {
                list.slice(0, 100).forEach((item) => items.push(render(item)));
                if (list.length > 100) items.push(`... ${list.length - 100} more item${list.length - 100 > 1 ? 's' : ''}`);
            };
            if (Array.isArray(v)) {
                limited(Array.from(v), (item) => format(item, depth + 1, true));
                return join(name && name !== 'Array' ? `${name}(${v.length}) ` : '', '[', items, ']', depth);
            }
            if (isView(v) && !(v instanceof DataView)) {
                limited(Array.from(v), (item) => primitive(item, true));
                return join(`${name}(${v.length}) `, '[', items, ']', depth);
            }
            if (v instanceof Map) {
                limited([...v], ([k, val]) => `${format(k, depth + 1, true)} => ${format(val, depth + 1, true)}`);
                return join(`Map(${v.size}) `, '{', items, '}', depth);
            }
            if (v instanceof Set) {
                limited([...v], (item) => format(item, depth + 1, true));
                return join(`Set(${v.size}) `, '{', items, '}', depth);
            }
            for (const key of [...Object.keys(v), ...Object.getOwnPropertySymbols(v).filter((s) => Object.getOwnPropertyDescriptor(v, s).enumerable)]) {
                const descriptor = Object.getOwnPropertyDescriptor(v, key);
                const label = typeof key === 'symbol' ? `[${key.toString()}]` : IDENTIFIER.test(key) ? key : quote(key);
                const shown = descriptor.get ? (descriptor.set ? '[Getter/Setter]' : '[Getter]') : descriptor.set ? '[Setter]' : format(descriptor.value, depth + 1, true);
                items.push(`${label}: ${shown}`);
            }
            const prefix = typeof v === 'function' ? `${primitive(v)} ` : Object.getPrototypeOf(v) === null ? '[Object: null prototype] ' : name && name !== 'Object' ? `${name} ` : '';
            return join(prefix, '{', items, '}', depth);
        } finally {
            seen.pop();
        }
    };
    return format(value, 0, false);
}

function formatWithOptions(args) {
    const first = args[0];
    let out = '';
    let next = 0;
    if (typeof first === 'string') {
        next = 1;
        let last = 0;
        for (let i = 0; i < first.length - 1; i++) {
            if (first[i] !== '%') continue;
            const c = first[i + 1];
            let piece;
            if (c === '%') piece = '%';
            else if (next < args.length && 'sdifjoOc'.includes(c)) {
                const arg = args[next++];
                switch (c) {
                    case 's':
                        piece = typeof arg === 'string' ? arg : typeof arg === 'bigint' ? `${arg}n` : typeof arg === 'object' && arg !== null ? inspect(arg, { depth: 1 }) : plain(arg);
                        break;
                    case 'd':
                    case 'i':
                        piece = typeof arg === 'bigint' ? `${arg}n` : typeof arg === 'symbol' ? 'NaN' : String(c === 'i' ? parseInt(arg) : Number(arg));
                        break;
                    case 'f':
                        piece = typeof arg === 'symbol' ? 'NaN' : String(parseFloat(arg));
                        break;
                    case 'j':
                        try {
                            piece = JSON.stringify(arg);
                        } catch {
                            piece = '[Circular]';
                        }
                        break;
                    case 'o':
                    case 'O':
                        piece = inspect(arg, { depth: c === 'o' ? 4 : 2 });
                        break;
                    default:
                        piece = '';
                }
            } else continue;
            out += first.slice(last, i) + piece;
            last = i + 2;
            i++;
        }
        out += first.slice(last);
    }
    for (; next < args.length; next++) {
        const arg = args[next];
        out += (out === '' && next === 0 ? '' : ' ') + (typeof arg === 'string' ? arg : inspect(arg));
    }
    return out;
}

function plain(value) {
    return typeof value === 'symbol' ? value.toString() : String(value);
}

const counts = new Map();
const timers = new Map();
let groupIndent = '';

function makeConsole() {
    const write = (level, args) => {
        const text = formatWithOptions(args);
        native.log(level, groupIndent ? text.split('\n').map((line) => groupIndent + line).join('\n') : text);
    };
    const console = {
        log: (...args) => write('info', args),
        info: (...args) => write('info', args),
        warn: (...args) => write('warn', args),
        error: (...args) => write('error', args),
        debug: (...args) => write('debug', args),
        trace: (...args) => {
            const stack = String(new Error().stack || '').split('\n').slice(1).join('\n');
            write('debug', [`Trace: ${formatWithOptions(args)}\n${stack}`.trimEnd()]);
        },
        dir: (value, options) => write('info', [inspect(value, options || {})]),
        table: (...args) => write('info', args),
        assert: (condition, ...args) => {
            if (!condition) write('error', args.length ? [`Assertion failed: ${formatWithOptions(args)}`] : ['Assertion failed']);
        },
        count: (label = 'default') => {
            const n = (counts.get(`${label}`) || 0) + 1;
            counts.set(`${label}`, n);
            write('info', [`${label}: ${n}`]);
        },
        countReset: (label = 'default') => counts.delete(`${label}`),
        time: (label = 'default') => timers.set(`${label}`, Date.now()),
        timeLog: (label = 'default', ...args) => {
            const started = timers.get(`${label}`);
            if (started !== undefined) write('info', [`${label}: ${(Date.now() - started).toFixed(3)}ms`, ...args]);
        },
        timeEnd: (label = 'default') => {
            const started = timers.get(`${label}`);
            if (started !== undefined) {
                timers.delete(`${label}`);
                write('info', [`${label}: ${(Date.now() - started).toFixed(3)}ms`]);
            }
        },
        group: (...args) => {
            if (args.length) write('info', args);
            groupIndent += '  ';
        },
        groupEnd: () => {
            groupIndent = groupIndent.slice(2);
        },
    };
    console.groupCollapsed = console.group;
    console.dirxml = console.log;
    return console;
}

// ---------------------------------------------------------------------------------------------- crypto

function toBytes(data, encoding, name) {
    if (typeof data === 'string') return encodeString(data, encoding);
    if (isView(data)) return bytesOf(data);
    throw invalidArgType(name, 'of type string or an instance of Buffer, TypedArray, or DataView', data);
}

function finish(bytes, encoding) {
    const buffer = wrap(bytes);
    return encoding === undefined || encoding === 'buffer' ? buffer : buffer.toString(encoding);
}

class Hash {
    #algorithm;
    #key;
    #chunks = [];
    #done = false;
    constructor(algorithm, key) {
        if (typeof algorithm !== 'string') throw invalidArgType('algorithm', 'of type string', algorithm);
        if (!native.hashName(algorithm)) {
            throw key === undefined ? new Error('Digest method not supported') : nodeError(TypeError, 'ERR_CRYPTO_INVALID_DIGEST', `Invalid digest: ${algorithm}`);
        }
        this.#algorithm = algorithm;
        this.#key = key;
    }
    update(data, encoding) {
        if (this.#done) throw nodeError(Error, 'ERR_CRYPTO_HASH_FINALIZED', 'Digest already called');
        this.#chunks.push(toBytes(data, encoding, 'data'));
        return this;
    }
    digest(encoding) {
        if (this.#done) throw nodeError(Error, 'ERR_CRYPTO_HASH_FINALIZED', 'Digest already called');
        this.#done = true;
        const chunks = this.#chunks;
        this.#chunks = [];
        return finish(native.digest(this.#algorithm, this.#key, chunks), encoding);
    }
    copy() {
        if (this.#done || this.#key !== undefined) throw nodeError(Error, 'ERR_CRYPTO_HASH_FINALIZED', 'Digest already called');
        const copy = new Hash(this.#algorithm);
        for (const chunk of this.#chunks) copy.update(chunk);
        return copy;
    }
}

class KeyObject {
    #pem;
    #type;
    constructor(type, pem) {
        this.#type = type;
        this.#pem = pem;
    }
    get type() {
        return this.#type;
    }
    get asymmetricKeyType() {
        return 'rsa';
    }
    export(options = {}) {
        if (options.format && options.format !== 'pem') throw new Error('only PEM export is supported');
        return this.#pem;
    }
    static pemOf(key) {
        return key.#pem;
    }
}

function pemOf(key, name) {
    if (key instanceof KeyObject) return KeyObject.pemOf(key);
    if (typeof key === 'object' && key !== null && !isView(key) && !isArrayBuffer(key)) {
        if (key.passphrase !== undefined) throw new Error('encrypted private keys are not supported; pass the key unencrypted');
        if (key.padding !== undefined && key.padding !== 1) throw new Error('only RSA PKCS#1 v1.5 signatures (RS256) are supported');
        if (key.format !== undefined && key.format !== 'pem') throw new Error('only keys in PEM format are supported');
        return pemOf(key.key, `${name}.key`);
    }
    if (typeof key === 'string') return key;
    if (isView(key) || isArrayBuffer(key)) return native.decode(bytesOf(key), 'utf8');
    throw invalidArgType(name, 'of type string or an instance of ArrayBuffer, Buffer, TypedArray, DataView, KeyObject, or CryptoKey', key);
}

function digestName(algorithm) {
    if (typeof algorithm !== 'string') throw invalidArgType('algorithm', 'of type string', algorithm);
    if (!native.hashName(algorithm)) throw nodeError(TypeError, 'ERR_CRYPTO_INVALID_DIGEST', `Invalid digest: ${algorithm}`);
    return algorithm;
}

class Sign {
    #algorithm;
    #chunks = [];
    constructor(algorithm) {
        this.#algorithm = digestName(algorithm);
    }
    update(data, encoding) {
        this.#chunks.push(toBytes(data, encoding, 'data'));
        return this;
    }
    sign(privateKey, encoding) {
        return finish(native.sign(this.#algorithm, pemOf(privateKey, 'key'), this.#chunks), encoding);
    }
}

class Verify {
    #algorithm;
    #chunks = [];
    constructor(algorithm) {
        this.#algorithm = digestName(algorithm);
    }
    update(data, encoding) {
        this.#chunks.push(toBytes(data, encoding, 'data'));
        return this;
    }
    verify(publicKey, signature, encoding) {
        return native.verify(this.#algorithm, pemOf(publicKey, 'key'), this.#chunks, toBytes(signature, encoding, 'signature'));
    }
}

const MAX_RANDOM_INT_RANGE = 2 ** 48 - 1;

function randomBytes(size, callback) {
    checkInteger(size, 'size', 0, Math.min(2147483647, native.maxLength));
    const bytes = wrap(native.randomBytes(size));
    if (callback === undefined) return bytes;
    if (typeof callback !== 'function') throw invalidArgType('callback', 'of type function', callback);
    queueMicrotask(() => callback(null, bytes));
    return undefined;
}

function randomInt(min, max, callback) {
    if (max === undefined || typeof max === 'function') [min, max, callback] = [0, min, max];
    if (!Number.isSafeInteger(min)) throw invalidArgType('min', 'a safe integer', min);
    if (!Number.isSafeInteger(max)) throw invalidArgType('max', 'a safe integer', max);
    if (max <= min) throw outOfRange('max', `greater than the value of "min" (${min})`, max);
    const range = max - min;
    if (range > MAX_RANDOM_INT_RANGE) throw outOfRange('max - min', `<= ${MAX_RANDOM_INT_RANGE}`, range);
    // Rejection sampling over 48 random bits keeps the result uniform.
    const limit = 2 ** 48 - (2 ** 48 % range);
    let n;
    do {
        const b = native.randomBytes(6);
        n = b[0] * 2 ** 40 + b[1] * 2 ** 32 + b[2] * 2 ** 24 + b[3] * 2 ** 16 + b[4] * 2 ** 8 + b[5];
    } while (n >= limit);
    const result = min + (n % range);
    if (callback === undefined) return result;
    if (typeof callback !== 'function') throw invalidArgType('callback', 'of type function', callback);
    queueMicrotask(() => callback(null, result));
    return undefined;
}

function getRandomValues(array) {
    if (!isView(array) || array instanceof DataView || array instanceof Float32Array || array instanceof Float64Array) {
        throw new DOMException('The data argument must be an integer-type TypedArray', 'TypeMismatchError');
    }
    if (array.byteLength > 65536) {
        throw new DOMException(`The ArrayBufferView's byte length (${array.byteLength}) exceeds the number of bytes of entropy available via this API (65536)`, 'QuotaExceededError');
    }
    bytesOf(array).set(native.randomBytes(array.byteLength));
    return array;
}

function randomFillSync(buffer, offset = 0, size = undefined) {
    if (!isView(buffer) && !isArrayBuffer(buffer)) throw invalidArgType('buf', 'an instance of ArrayBuffer or ArrayBufferView', buffer);
    const bytes = bytesOf(buffer);
    checkInteger(offset, 'offset', 0, bytes.length);
    const count = size === undefined ? bytes.length - offset : size;
    checkInteger(count, 'size', 0, bytes.length - offset);
    bytes.set(native.randomBytes(count), offset);
    return buffer;
}

function timingSafeEqual(a, b) {
    if (!isView(a) && !isArrayBuffer(a)) throw invalidArgType('buf1', 'an instance of ArrayBuffer, Buffer, TypedArray, or DataView', a);
    if (!isView(b) && !isArrayBuffer(b)) throw invalidArgType('buf2', 'an instance of ArrayBuffer, Buffer, TypedArray, or DataView', b);
    if (a.byteLength !== b.byteLength) throw nodeError(RangeError, 'ERR_CRYPTO_TIMING_SAFE_EQUAL_LENGTH', 'Input buffers must have the same byte length');
    return native.timingSafeEqual(bytesOf(a), bytesOf(b));
}

function oneShotAlgorithm(algorithm) {
    return algorithm === null || algorithm === undefined ? 'sha256' : digestName(algorithm);
}

function makeCrypto() {
    const randomUUID = () => native.randomUUID();
    const webcrypto = { getRandomValues, randomUUID };
    return {
        createHash: (algorithm) => new Hash(algorithm),
        createHmac: (algorithm, key) => {
            if (key instanceof KeyObject) throw new Error('an HMAC key must be a string or a Buffer');
            return new Hash(algorithm, toBytes(key, 'utf8', 'key'));
        },
        createSign: (algorithm) => new Sign(algorithm),
        createVerify: (algorithm) => new Verify(algorithm),
        createPrivateKey: (key) => new KeyObject('private', pemOf(key, 'key')),
        createPublicKey: (key) => new KeyObject('public', pemOf(key, 'key')),
        sign: (algorithm, data, key) => finish(native.sign(oneShotAlgorithm(algorithm), pemOf(key, 'key'), [toBytes(data, 'utf8', 'data')])),
        verify: (algorithm, data, key, signature) =>
            native.verify(oneShotAlgorithm(algorithm), pemOf(key, 'key'), [toBytes(data, 'utf8', 'data')], toBytes(signature, 'utf8', 'signature')),
        randomBytes,
        randomFillSync,
        randomInt,
        randomUUID,
        getRandomValues,
        timingSafeEqual,
        getHashes: () => ['md5', 'sha1', 'sha256', 'sha384', 'sha512'],
        webcrypto,
    };
}

// ---------------------------------------------------------------------------------------------- install

const btoaBuiltin = globalThis.btoa;
const atobBuiltin = globalThis.atob;

export function install(host) {
    native = host;
    const crypto = makeCrypto();
    const globals = {
        Buffer,
        URL,
        URLSearchParams,
        TextEncoder,
        TextDecoder,
        setTimeout,
        clearTimeout,
        setInterval,
        clearInterval: clearTimeout,
        setImmediate,
        clearImmediate: clearTimeout,
        structuredClone,
        console: makeConsole(),
        crypto: crypto.webcrypto,
    };
    if (typeof globalThis.queueMicrotask !== 'function') {
        globals.queueMicrotask = (callback) => {
            if (typeof callback !== 'function') throw invalidArgType('callback', 'of type function', callback);
            Promise.resolve().then(callback);
        };
    }
    for (const [name, value] of Object.entries(globals)) {
        Object.defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });
    }
    modules.crypto = crypto;
    modules.url = { URL, URLSearchParams, parse: urlParse, format: urlFormat, resolve: urlResolve, fileURLToPath, pathToFileURL, Url };
    modules.buffer = { Buffer, atob: atobBuiltin, btoa: btoaBuiltin, kMaxLength: native.maxLength, constants: { MAX_LENGTH: native.maxLength, MAX_STRING_LENGTH: 2 ** 29 - 24 } };
}
