// @flowlet/sdk — flowlet operators in JavaScript.
//
//   import { processor, Reject } from '@flowlet/sdk';
//
//   export const handler = processor({
//     process(event, out) {
//       if (event.object.amount >= 100) out.emit({ ...event.object, tier: 'high' });
//     },
//   });
//
// `processor`, `statefulProcessor` and `aggregator` turn per-event code into the export of a
// flowlet world (`handler`, `statefulHandler`, `aggregate`): the batch layout of the WIT contract
// stays in here. `build.mjs` makes a component of the module; `testing.js` runs the very same
// export in-process with an in-memory host. This module imports no WIT interface: the component
// build binds the host's (log, metrics, state, timers) with `bind`, the harness binds its own.

/** The contract version (WIT package flowlet:operator) this SDK implements. */
export const CONTRACT = '0.2.0';

/**
 * Where the operator sits in the topology, given by the host before `init`: its name, its
 * inputs (what `event.input` is one of) and its named outputs (what `emit(v, {to})` may name).
 */
export const setup = { operator: 'operator', inputs: ['input'], outputs: [] };

// Route bits by output name: `main` and the operator's `outputs:` (set by `init`).
const ports = new Map([['main', 1]]);

function setSetup(given) {
  setup.operator = given?.operator ?? 'operator';
  setup.inputs = [...(given?.inputs ?? ['input'])];
  setup.outputs = [...(given?.outputs ?? [])];
  ports.clear();
  ports.set('main', 1);
  setup.outputs.forEach((name, i) => ports.set(name, 2 ** (i + 1)));
}

/** The route mask of `to`: an output's name or a list of them. */
function routeOf(to) {
  const names = typeof to === 'string' ? [to] : to;
  let mask = 0;
  for (const name of names) {
    const bit = ports.get(name);
    if (bit === undefined) {
      const declared = setup.outputs.join(', ') || 'none';
      throw new Failed(`no output "${name}": add it to the operator's \`outputs:\` in the manifest (it has: ${declared})`);
    }
    mask |= bit;
  }
  if (mask === 0) throw new Failed('`to` names no output');
  return mask >>> 0;
}

const HOST = Symbol.for('flowlet.sdk.host');
/** Marks the SDK's error classes and handlers, across copies of this module. */
const KIND = Symbol.for('flowlet.sdk.kind');
/** On an exported handler: what the harness needs to know about the operator. */
export const DEFINITION = Symbol.for('flowlet.sdk.definition');

const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;
const TWO_63 = 2 ** 63;
const U32_MAX = 0xffffffff;

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const lossy = new TextDecoder('utf-8', { ignoreBOM: true });
const encoder = new TextEncoder();
const EMPTY = new Uint8Array(0);
const NO_HEADERS = Object.freeze([]);
const NO_ROUTES = new Uint32Array(0);
const UNSET = Symbol('unset');

// ---------------------------------------------------------------------------------------------
// Errors

/** Refuses the event being handled: it meets the operator's `on-error` policy with `reason`. */
export class Reject extends Error {
  constructor(reason) {
    super(reason);
    this.name = 'Reject';
  }
}
Reject.prototype[KIND] = 'reject';

/** Refuses the configuration (throw it from `init`); the message names the setting. */
export class InvalidConfig extends Error {
  constructor(message) {
    super(message);
    this.name = 'InvalidConfig';
  }
}
InvalidConfig.prototype[KIND] = 'invalid-config';

/** The operator cannot go on: fails the whole call (the host treats it like a crash). */
export class Failed extends Error {
  constructor(message) {
    super(message);
    this.name = 'Failed';
  }
}
Failed.prototype[KIND] = 'failed';

/** The reason an event is rejected for, from what was thrown while handling it. */
function reasonOf(e) {
  if (e !== null && typeof e === 'object') {
    if (e[KIND] === 'reject') return String(e.message);
    if (e instanceof Error) return `${e.name}: ${e.message}`;
    try {
      const json = JSON.stringify(e);
      if (json !== undefined) return json;
    } catch {
      // cyclic or BigInt: fall back to String()
    }
  }
  return String(e);
}

/** Is `e` an error that fails the whole call rather than one event? */
function isFatal(e) {
  return e !== null && typeof e === 'object' && (e[KIND] === 'failed' || isWitError(e));
}

function isWitError(e) {
  return (e.tag === 'failed' || e.tag === 'invalid-config') && typeof e.val === 'string';
}

/** What an export throws: always a WIT `error` variant (anything else would trap the instance). */
function witError(e, context) {
  if (e !== null && typeof e === 'object') {
    if (isWitError(e)) return e;
    if (e[KIND] === 'invalid-config') return { tag: 'invalid-config', val: String(e.message) };
    if (e[KIND] === 'failed') return { tag: 'failed', val: context + String(e.message) };
  }
  return { tag: 'failed', val: context + reasonOf(e) };
}

// ---------------------------------------------------------------------------------------------
// The host: log, metrics, state and timers of the component, or the harness's in-memory ones.

/** Used when nothing is bound (the module imported by plain node): logs go to stderr. */
const detachedHost = {
  log: { log: (level, message) => console.error(`[${level}] ${message}`) },
  metrics: { counterAdd() {}, gaugeSet() {} },
};

/**
 * Binds the host interfaces: `{log, metrics, state?, timers?}` with the WIT functions in
 * camelCase. The component's entry module (build.mjs) calls it with the WIT imports, the test
 * harness with its in-memory host. Kept on `globalThis`, so that every copy of the SDK sees it.
 */
export function bind(host) {
  globalThis[HOST] = host;
}

function currentHost() {
  return globalThis[HOST] ?? detachedHost;
}

/** Set while an aggregate replays events to restore an accumulator: no duplicate logs/metrics. */
let muted = false;

function write(level, message) {
  if (!muted) currentHost().log.log(level, String(message));
}

/** Structured logging into the host's log, tagged with the operator and instance. */
export const log = Object.freeze({
  trace: (message) => write('trace', message),
  debug: (message) => write('debug', message),
  info: (message) => write('info', message),
  warn: (message) => write('warn', message),
  error: (message) => write('error', message),
});

/** Operator metrics, exported by the host (summed over instances). */
export const metrics = Object.freeze({
  /** Adds `delta` (a non-negative integer, default 1) to the counter `name`. */
  counterAdd(name, delta = 1) {
    if (muted) return;
    const d = typeof delta === 'bigint' ? delta : BigInt(delta);
    if (d < 0n || d > 0xffffffffffffffffn) throw new RangeError(`counter delta ${delta} is not a u64`);
    currentHost().metrics.counterAdd(String(name), d);
  },
  /** Sets the gauge `name` to `value`. */
  gaugeSet(name, value) {
    if (!muted) currentHost().metrics.gaugeSet(String(name), Number(value));
  },
});

// ---------------------------------------------------------------------------------------------
// Conversions

/** Bytes of a value, key or header: a Uint8Array as it is, a string as UTF-8. */
function bytesOf(value, what) {
  if (value instanceof Uint8Array) return value;
  if (typeof value === 'string') return encoder.encode(value);
  throw new TypeError(`${what} must be a string or a Uint8Array, not ${describe(value)}`);
}

function describe(value) {
  switch (typeof value) {
    case 'string':
      return `the string ${JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value)}`;
    case 'bigint':
      return `${value}n`;
    case 'function':
      return 'a function';
    case 'symbol':
      return 'a symbol';
    case 'object':
      if (value === null) return 'null';
      if (Array.isArray(value)) return 'an array';
      return `a ${value.constructor?.name ?? 'object'}`;
    default:
      return String(value);
  }
}

/**
 * A timestamp (ms since the Unix epoch) as the i64 BigInt the contract carries. Numbers are
 * exact up to 2^53; 2^63, which `Number(i64::MAX)` rounds to, maps back to i64::MAX.
 */
export function toTimestamp(t) {
  if (typeof t === 'bigint') {
    if (t < I64_MIN || t > I64_MAX) throw new RangeError(`timestamp ${t} is out of the i64 range`);
    return t;
  }
  if (typeof t !== 'number' || !Number.isInteger(t)) {
    throw new TypeError(`a timestamp is an integer number of milliseconds, not ${describe(t)}`);
  }
  if (t === TWO_63) return I64_MAX;
  if (t > TWO_63 || t < -TWO_63) throw new RangeError(`timestamp ${t} is out of the i64 range`);
  return BigInt(t);
}

/** A TTL in ms (a positive number) as the contract's `option<u64>`; sub-ms TTLs round up to 1. */
function ttlOf(ttl) {
  if (ttl === undefined || ttl === null) return undefined;
  if (typeof ttl === 'bigint') return ttl < 1n ? 1n : ttl;
  if (typeof ttl !== 'number' || !(ttl >= 0) || ttl === Infinity) {
    throw new TypeError(`a TTL is a number of milliseconds, not ${describe(ttl)}`);
  }
  return BigInt(Math.max(1, Math.floor(ttl)));
}

/** The offset of the first byte that is not UTF-8 (for the reason of a rejection). */
function badUtf8At(b) {
  let i = 0;
  while (i < b.length) {
    const c = b[i];
    const n = c < 0x80 ? 0 : c >= 0xc2 && c < 0xe0 ? 1 : c >= 0xe0 && c < 0xf0 ? 2 : c >= 0xf0 && c < 0xf5 ? 3 : -1;
    if (n < 0) return i;
    for (let k = 1; k <= n; k++) {
      const d = b[i + k];
      const lo = k === 1 && c === 0xe0 ? 0xa0 : k === 1 && c === 0xf0 ? 0x90 : 0x80;
      const hi = k === 1 && c === 0xed ? 0x9f : k === 1 && c === 0xf4 ? 0x8f : 0xbf;
      if (d === undefined || d < lo || d > hi) return i;
    }
    i += n + 1;
  }
  return i;
}

function decodeText(bytes) {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new Reject(`the value is not UTF-8 (invalid byte at ${badUtf8At(bytes)})`);
  }
}

// ---------------------------------------------------------------------------------------------
// JSON pointers and settings

/** A JSON pointer (RFC 6901), e.g. `/user/id` or `/tags/0`. */
export class Pointer {
  constructor(text) {
    if (typeof text !== 'string' || (text !== '' && !text.startsWith('/')) || /~[^01]|~$/.test(text)) {
      throw new TypeError(
        `\`${text}\` is not a JSON pointer: it must be empty or start with \`/\` (e.g. \`/user/id\`), and \`~\` may only be followed by 0 or 1`,
      );
    }
    this.text = text;
    const raw = text === '' ? [] : text.slice(1).split('/');
    this.tokens = raw.map((t) => t.replaceAll('~1', '/').replaceAll('~0', '~'));
  }

  /** The value this pointer names in `doc` (parsed JSON), or undefined when there is none. */
  find(doc) {
    let v = doc;
    for (const t of this.tokens) {
      if (Array.isArray(v)) {
        if (!/^(0|[1-9][0-9]*)$/.test(t)) return undefined;
        v = v[Number(t)];
      } else if (v !== null && typeof v === 'object' && Object.hasOwn(v, t)) {
        v = v[t];
      } else {
        return undefined;
      }
      if (v === undefined) return undefined;
    }
    return v;
  }

  toString() {
    return this.text;
  }
}

function kindOf(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

/**
 * `given` (the config `init` received) checked against `defaults`: every key must be one of
 * the defaults' and have its type (a default of null takes anything); absent keys take the
 * default. Throws InvalidConfig naming the first bad key.
 */
export function settings(given, defaults) {
  const names = Object.keys(defaults);
  if (given === null || given === undefined) given = {};
  if (kindOf(given) !== 'object') throw new InvalidConfig(`the config must be a map (${names.join(', ')})`);
  const out = { ...defaults };
  for (const [name, value] of Object.entries(given)) {
    if (!Object.hasOwn(defaults, name)) {
      throw new InvalidConfig(`unknown setting "${name}" (expected ${names.join(', ')})`);
    }
    const want = kindOf(defaults[name]);
    if (want !== 'null' && kindOf(value) !== want) {
      throw new InvalidConfig(`\`${name}\` must be ${/^[aeiou]/.test(want) ? 'an' : 'a'} ${want}`);
    }
    out[name] = value;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Keyed state and timers (stateful-processor)

function stateHost(host) {
  if (!host.state) {
    throw new Error(
      'keyed state and timers are only for operators of the stateful-processor world (statefulProcessor)',
    );
  }
  return host;
}

/** A state name: a string (anything else would trap the component when it crosses to the host). */
function nameOf(name) {
  if (typeof name !== 'string') throw new TypeError(`a state name is a string, not ${describe(name)}`);
  return name;
}

/** The keyed state of one key: value state and ordered map state, kept by the host. */
export class KeyState {
  constructor(host, key) {
    this._state = stateHost(host).state;
    this.key = key;
  }

  /** Value state `name`: its bytes, or undefined. */
  get(name) {
    return this._state.valueGet(this.key, nameOf(name));
  }

  getText(name) {
    const v = this.get(name);
    return v === undefined ? undefined : lossy.decode(v);
  }

  getJson(name) {
    const v = this.get(name);
    return v === undefined ? undefined : JSON.parse(lossy.decode(v));
  }

  /** Sets value state `name` (bytes or a string); it reads as absent `ttl` ms after this write. */
  put(name, value, ttl) {
    this._state.valuePut(this.key, nameOf(name), bytesOf(value, 'a state value'), ttlOf(ttl));
  }

  putJson(name, value, ttl) {
    this.put(name, JSON.stringify(value), ttl);
  }

  delete(name) {
    this._state.valueDelete(this.key, nameOf(name));
  }

  /** Entry `mapKey` of map state `name`. */
  mapGet(name, mapKey) {
    return this._state.mapGet(this.key, nameOf(name), bytesOf(mapKey, 'a map key'));
  }

  mapPut(name, mapKey, value, ttl) {
    this._state.mapPut(
      this.key,
      nameOf(name),
      bytesOf(mapKey, 'a map key'),
      bytesOf(value, 'a state value'),
      ttlOf(ttl),
    );
  }

  mapDelete(name, mapKey) {
    this._state.mapDelete(this.key, nameOf(name), bytesOf(mapKey, 'a map key'));
  }

  /**
   * The entries `[key, value]` of map state `name` with `start <= key < end` in the order of
   * the keys' bytes (`end` empty: unbounded), at most `limit`.
   */
  mapRange(name, start = EMPTY, end = EMPTY, limit = U32_MAX) {
    if (!Number.isInteger(limit) || limit < 0) throw new TypeError(`limit must be a u32, not ${describe(limit)}`);
    const n = Math.min(limit, U32_MAX);
    return this._state.mapRange(this.key, nameOf(name), bytesOf(start, 'a map key'), bytesOf(end, 'a map key'), n);
  }
}

const DOMAINS = new Set(['event-time', 'processing-time']);

function domainOf(domain) {
  if (!DOMAINS.has(domain)) {
    throw new TypeError(`a timer domain is 'event-time' or 'processing-time', not ${describe(domain)}`);
  }
  return domain;
}

/** The timers of one key, and the operator's clocks. */
export class Timers {
  constructor(host, key) {
    this._timers = stateHost(host).timers;
    this.key = key;
  }

  /** Calls `onTimer` for this key when the watermark (or the clock) reaches `at`. */
  register(at, domain = 'event-time') {
    this._timers.register(this.key, domainOf(domain), toTimestamp(at));
  }

  cancel(at, domain = 'event-time') {
    this._timers.cancel(this.key, domainOf(domain), toTimestamp(at));
  }

  /** The operator's watermark (ms): no event older than this is expected. */
  watermark() {
    return Number(this._timers.currentWatermark());
  }

  /** The operator's processing time (ms since the Unix epoch). */
  now() {
    return Number(this._timers.currentProcessingTime());
  }
}

// ---------------------------------------------------------------------------------------------
// Events

/** What every event of one call shares: the input columns and the host. */
class Batch {
  constructor(host) {
    this.host = host;
    this.input = null;
    this.byEvent = null;
    this.origin = '';
  }

  reset(input, origin = '') {
    this.input = input;
    this.byEvent = null;
    this.origin = origin;
  }

  headersOf(index) {
    const all = this.input.headers;
    if (all.length === 0) return NO_HEADERS;
    if (this.byEvent === null) {
      this.byEvent = new Map();
      for (const h of all) {
        const list = this.byEvent.get(h.event);
        if (list) list.push(h);
        else this.byEvent.set(h.event, [h]);
      }
    }
    return this.byEvent.get(index) ?? NO_HEADERS;
  }
}

/** One input event. Valid during the call that handles it: copy what you keep. */
export class Event {
  constructor(batch, index) {
    this._batch = batch;
    /** The index of the event in its batch. */
    this.index = index;
    this._json = UNSET;
  }

  /** The input the event came from, as the manifest's `inputs:` names it. */
  get input() {
    return this._batch.origin;
  }

  /** The raw value (usually JSON), a view into the batch. */
  get value() {
    const b = this._batch.input;
    const i = this.index;
    return b.values.subarray(i === 0 ? 0 : b.valueEnds[i - 1], b.valueEnds[i]);
  }

  /** The value as text; rejects the event when it is not UTF-8. */
  get text() {
    return decodeText(this.value);
  }

  /** The value parsed as JSON (on first use, then kept); rejects the event when it is not JSON. */
  get json() {
    if (this._json === UNSET) {
      const text = this.text;
      try {
        this._json = JSON.parse(text);
      } catch (e) {
        throw new Reject(`the value is not JSON (${e.message})`);
      }
    }
    return this._json;
  }

  /** The value as a JSON object; any other value rejects the event ("the value is not a JSON object"). */
  get object() {
    let v = this._json;
    if (v === UNSET) {
      // `json` inlined: this is the hot path of most operators.
      const b = this._batch.input;
      const i = this.index;
      try {
        v = this._json = JSON.parse(utf8.decode(b.values.subarray(i === 0 ? 0 : b.valueEnds[i - 1], b.valueEnds[i])));
      } catch {
        throw new Reject('the value is not a JSON object');
      }
    }
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Reject('the value is not a JSON object');
    return v;
  }

  /** The key (from the operator's `key-by:`) as bytes, or null when the event has none. */
  get key() {
    const b = this._batch.input;
    const i = this.index;
    const start = i === 0 ? 0 : b.keyEnds[i - 1];
    const end = b.keyEnds[i];
    return start === end ? null : b.keys.subarray(start, end);
  }

  /** The key as text, or null. */
  get keyText() {
    const k = this.key;
    return k === null ? null : lossy.decode(k);
  }

  /** Event time in ms since the Unix epoch (a Number; see timestampBigInt for the exact i64). */
  get timestamp() {
    return Number(this._batch.input.timestamps[this.index]);
  }

  get timestampBigInt() {
    return this._batch.input.timestamps[this.index];
  }

  /** This event's headers: `[{name, value}]`. */
  get headers() {
    return this._batch.headersOf(this.index);
  }

  /** The keyed state of this event's key (stateful-processor; an unkeyed event has the empty key). */
  get state() {
    return new KeyState(this._batch.host, this.key ?? EMPTY);
  }

  /** The timers of this event's key (stateful-processor). */
  get timers() {
    return new Timers(this._batch.host, this.key ?? EMPTY);
  }
}

/** A timer that fired: its key (bytes, empty for unkeyed), domain and time (ms). */
export class Timer {
  constructor(host, fired) {
    this._host = host;
    this.key = fired.key;
    this.domain = fired.domain;
    this.at = Number(fired.at);
  }

  get keyText() {
    return lossy.decode(this.key);
  }

  /** The state of the timer's key. */
  get state() {
    return new KeyState(this._host, this.key);
  }

  get timers() {
    return new Timers(this._host, this.key);
  }
}

/** A window that fired: `[start, end)`, its key, and 0 on time, 1, 2, … for late updates. */
export class Window {
  constructor(start, end, key, firing) {
    this.start = Number(start);
    this.end = Number(end);
    /** The window's key: bytes, empty for a window over all events. */
    this.key = key;
    this.firing = firing;
  }

  get keyText() {
    return lossy.decode(this.key);
  }
}

// ---------------------------------------------------------------------------------------------
// Output: the emitted events, packed into the output columns as they come.

const MAX_KEPT = 1 << 22;

// Written for the interpreter the component runs (SpiderMonkey without a JIT): every method
// call, getter and iterator costs, so the per-event path is flat — `emit` without options
// appends straight into the output buffers, and starting an event is two field writes.
class Output {
  constructor() {
    this._values = new Uint8Array(1 << 16);
    this._keys = new Uint8Array(1 << 10);
    this._valueEnds = new Uint32Array(256);
    this._keyEnds = new Uint32Array(256);
    this._timestamps = new BigInt64Array(256);
    this._clear();
  }

  /** Empty the output, keeping the buffers (the host copied what the last call returned). */
  _clear() {
    this._n = 0;
    this._vpos = 0;
    this._kpos = 0;
    this._headers = [];
    // Route masks up to the last event sent elsewhere than the main output; [] while none is.
    this._routes = [];
    // The input event being handled (`_input` null: a timer or a window, see `_beginWith`).
    this._input = null;
    this._batch = null;
    this._index = 0;
    // The number of events emitted before the current input event, timer or window.
    this._mn = 0;
    // The defaults of a timer or window: key `_src[_ks.._ke]`, timestamp `_ts`.
    this._src = EMPTY;
    this._ks = 0;
    this._ke = 0;
    this._ts = 0n;
    if (this._values.length > MAX_KEPT) this._values = new Uint8Array(1 << 16);
    if (this._keys.length > MAX_KEPT) this._keys = new Uint8Array(1 << 10);
  }

  /** Emit for the events of `batch`: set `_index` and `_mn` for each (see runEvents). */
  _beginBatch(batch) {
    this._batch = batch;
    this._input = batch.input;
  }

  /** Start emitting for a timer or a window, with these defaults. */
  _beginWith(keys, start, end, timestamp) {
    this._input = null;
    this._src = keys;
    this._ks = start;
    this._ke = end;
    this._ts = timestamp;
    this._mn = this._n;
  }

  /** Drop what was emitted since the current event began (emits are whole or nothing). */
  _rollback() {
    const n = this._mn;
    this._n = n;
    this._vpos = n === 0 ? 0 : this._valueEnds[n - 1];
    this._kpos = n === 0 ? 0 : this._keyEnds[n - 1];
    const h = this._headers;
    while (h.length !== 0 && h[h.length - 1].event >= n) h.pop();
    if (this._routes.length > n) this._routes.length = n;
  }

  /** Send the event emitted last to `to` (a name or names) instead of the main output. */
  _routeLast(to) {
    const mask = routeOf(to);
    const r = this._routes;
    while (r.length < this._n - 1) r.push(1);
    r.push(mask);
  }

  /** The output columns (views of buffers the next call reuses: the host copies them). */
  _columns() {
    const n = this._n;
    return {
      values: this._values.subarray(0, this._vpos),
      valueEnds: this._valueEnds.subarray(0, n),
      keys: this._keys.subarray(0, this._kpos),
      keyEnds: this._keyEnds.subarray(0, n),
      timestamps: this._timestamps.subarray(0, n),
      headers: this._headers,
    };
  }

  /** One route mask per event, or none when every event goes to the main output. */
  _finishedRoutes() {
    const r = this._routes;
    if (r.length === 0) return NO_ROUTES;
    while (r.length < this._n) r.push(1);
    return Uint32Array.from(r);
  }

  /**
   * Emits an event. `value`: an object, array, number… (written as compact JSON), a string
   * (written as UTF-8 text, as it is) or a Uint8Array (the bytes). `options.key` (a string,
   * bytes, or null for no key) and `options.timestamp` (ms) default to the input event's, or to
   * the timer's or window's; `options.headers`: `[{name, value}]`; `options.to`: a named
   * output (one of the manifest's `outputs:`, or `main`) or a list of them, default `main`.
   */
  emit(value, options) {
    let text;
    if (typeof value === 'string') {
      text = value;
    } else if (value instanceof Uint8Array) {
      return this._emit(value, options);
    } else {
      text = JSON.stringify(value);
      if (text === undefined) throw new TypeError(`cannot emit ${describe(value)}: it has no JSON form`);
    }
    if (options !== undefined && options !== null) return this._emit(text, options);
    // The common case, flat: the text, then the default key and timestamp.
    let values = this._values;
    const vpos = this._vpos;
    if (vpos + text.length > values.length) values = this._values = grown(values, vpos + text.length);
    const r = encoder.encodeInto(text, values.subarray(vpos));
    if (r.read === text.length) this._vpos = vpos + r.written;
    else this._writeText(text.substring(r.read), vpos + r.written);
    const input = this._input;
    let timestamp;
    if (input !== null) {
      const i = this._index;
      const ks = i === 0 ? 0 : input.keyEnds[i - 1];
      const ke = input.keyEnds[i];
      if (ks !== ke) this._copyKey(input.keys, ks, ke);
      timestamp = input.timestamps[i];
    } else {
      if (this._ks !== this._ke) this._copyKey(this._src, this._ks, this._ke);
      timestamp = this._ts;
    }
    this._push(timestamp);
  }

  /** `emit` with options or bytes: everything is checked before anything is written. */
  _emit(value, options) {
    let key; // undefined: the default
    let timestamp; // undefined: the default
    let headers = NO_HEADERS;
    let to;
    if (options !== undefined && options !== null) {
      if (options.to !== undefined) {
        to = options.to;
        routeOf(to); // checked before anything is written
      }
      if (options.key !== undefined) key = options.key === null ? EMPTY : bytesOf(options.key, 'a key');
      if (options.timestamp !== undefined) timestamp = toTimestamp(options.timestamp);
      if (options.headers !== undefined) headers = headerList(options.headers);
    }
    if (typeof value === 'string') this._writeText(value, this._vpos);
    else this._copyValue(value, 0, value.length);
    const input = this._input;
    if (key !== undefined) this._copyKey(key, 0, key.length);
    else if (input === null) this._copyKey(this._src, this._ks, this._ke);
    else this._copyKey(input.keys, this._index === 0 ? 0 : input.keyEnds[this._index - 1], input.keyEnds[this._index]);
    if (timestamp === undefined) timestamp = input === null ? this._ts : input.timestamps[this._index];
    for (let j = 0; j < headers.length; j++) {
      this._headers.push({ event: this._n, name: headers[j].name, value: headers[j].value });
    }
    this._push(timestamp);
    if (to !== undefined) this._routeLast(to);
  }

  /**
   * Passes the input event on unchanged: value, key, timestamp and headers; to the main output
   * or to `options.to` (as in `emit`).
   */
  forward(options) {
    const input = this._input;
    if (input === null) throw new TypeError('forward() passes on an input event: there is none here');
    const to = options?.to;
    if (to !== undefined) routeOf(to);
    const i = this._index;
    this._copyValue(input.values, i === 0 ? 0 : input.valueEnds[i - 1], input.valueEnds[i]);
    this._copyKey(input.keys, i === 0 ? 0 : input.keyEnds[i - 1], input.keyEnds[i]);
    if (input.headers.length !== 0) {
      const own = this._batch.headersOf(i);
      for (let j = 0; j < own.length; j++) {
        this._headers.push({ event: this._n, name: own[j].name, value: own[j].value });
      }
    }
    this._push(input.timestamps[i]);
    if (to !== undefined) this._routeLast(to);
  }

  /** Append `text` as UTF-8 at `at` (where the values end, or a partial write ends). */
  _writeText(text, at) {
    // Room for one byte per character first (ASCII), for three when the text needs more.
    let need = at + text.length;
    if (need > this._values.length) this._values = grown(this._values, need);
    let r = encoder.encodeInto(text, this._values.subarray(at));
    at += r.written;
    if (r.read < text.length) {
      const rest = text.substring(r.read);
      need = at + rest.length * 3;
      if (need > this._values.length) this._values = grown(this._values, need);
      r = encoder.encodeInto(rest, this._values.subarray(at));
      at += r.written;
    }
    this._vpos = at;
  }

  /** Append bytes `src[start..end]` to the values. */
  _copyValue(src, start, end) {
    const len = end - start;
    const at = this._vpos;
    if (at + len > this._values.length) this._values = grown(this._values, at + len);
    const dst = this._values;
    if (len < 32) {
      for (let j = 0; j < len; j++) dst[at + j] = src[start + j];
    } else {
      dst.set(src.subarray(start, end), at);
    }
    this._vpos = at + len;
  }

  /** Append bytes `src[start..end]` to the keys. */
  _copyKey(src, start, end) {
    const len = end - start;
    if (len === 0) return;
    const at = this._kpos;
    if (at + len > this._keys.length) this._keys = grown(this._keys, at + len);
    const dst = this._keys;
    if (len < 32) {
      for (let j = 0; j < len; j++) dst[at + j] = src[start + j];
    } else {
      dst.set(src.subarray(start, end), at);
    }
    this._kpos = at + len;
  }

  /** Close the event whose value and key were just appended. */
  _push(timestamp) {
    const n = this._n;
    if (n === this._valueEnds.length) {
      this._valueEnds = grown(this._valueEnds, n + 1);
      this._keyEnds = grown(this._keyEnds, n + 1);
      this._timestamps = grown(this._timestamps, n + 1);
    }
    this._valueEnds[n] = this._vpos;
    this._keyEnds[n] = this._kpos;
    this._timestamps[n] = timestamp;
    this._n = n + 1;
  }
}

/** `[{name, value}]` with every value as bytes (a copy), checked before anything is written. */
function headerList(headers) {
  if (!Array.isArray(headers)) throw new TypeError(`headers are [{name, value}], not ${describe(headers)}`);
  return headers.map((h) => {
    if (h === null || typeof h !== 'object' || typeof h.name !== 'string') {
      throw new TypeError(`a header is {name: string, value: string | Uint8Array}, not ${describe(h)}`);
    }
    return {
      name: h.name,
      value: h.value instanceof Uint8Array ? h.value.slice() : bytesOf(h.value, 'a header value'),
    };
  });
}

/** A typed array of the same kind with room for at least `need` elements, holding `a`. */
function grown(a, need) {
  let size = a.length * 2;
  while (size < need) size *= 2;
  const b = new a.constructor(size);
  b.set(a);
  return b;
}

// ---------------------------------------------------------------------------------------------
// The exports of the three worlds

function checkDefinition(definition, what, required) {
  if (definition === null || typeof definition !== 'object') {
    throw new TypeError(`${what}() takes an object with the operator's functions`);
  }
  for (const name of required) {
    if (typeof definition[name] !== 'function') {
      throw new TypeError(`${what}(): the operator needs a function \`${name}\``);
    }
  }
}

/** `init` of every world: the setup, and the config (null: `{}`) to the definition's `init`. */
function initialize(definition, config, given_setup) {
  try {
    setSetup(given_setup);
    const given = JSON.parse(config);
    if (typeof definition.init === 'function') definition.init(given ?? {});
  } catch (e) {
    throw witError(e, '');
  }
}

/** Handle the events of `input` one by one, each event's output kept or discarded as a whole. */
function runEvents(definition, input, batch, out, origin = '') {
  batch.reset(input, origin);
  out._clear();
  out._beginBatch(batch);
  const rejected = [];
  const n = input.valueEnds.length;
  for (let i = 0; i < n; i++) {
    out._index = i;
    out._mn = out._n;
    try {
      const r = definition.process(new Event(batch, i), out);
      if (r !== undefined) synchronous(r, 'process');
    } catch (e) {
      if (isFatal(e)) throw e;
      out._rollback();
      rejected.push({ event: i, reason: reasonOf(e) });
    }
  }
  return { events: out._columns(), routes: out._finishedRoutes(), rejected };
}

/** `r`, unless it is a promise: the host calls an operator synchronously. */
function synchronous(r, what) {
  if (r !== null && typeof r === 'object' && typeof r.then === 'function') {
    throw new Failed(`${what}() returned a promise: operator functions run synchronously (no async, no await)`);
  }
  return r;
}

function mark(handler, kind, definition) {
  Object.defineProperty(handler, DEFINITION, { value: { kind, definition } });
  return handler;
}

/**
 * A stateless operator (world `processor`): `definition.process(event, out)` for every event,
 * optional `definition.init(config)` once before. Export the result as `handler`.
 */
export function processor(definition) {
  checkDefinition(definition, 'processor', ['process']);
  return mark(eventHandler(definition, new Output()), 'processor', definition);
}

/** `init` and `process`, the exports every per-event world has. */
function eventHandler(definition, out) {
  return {
    init(config, given) {
      initialize(definition, config, given);
    },
    process(input, origin) {
      try {
        const name = setup.inputs[origin] ?? '';
        return runEvents(definition, input, new Batch(currentHost()), out, name);
      } catch (e) {
        throw witError(e, '');
      }
    },
  };
}

/**
 * An operator with keyed state and timers (world `stateful-processor`): as `processor`, with
 * `event.state` and `event.timers`, and an optional `definition.onTimer(timer, out)` for timers
 * that fire. Export the result as `statefulHandler`.
 */
export function statefulProcessor(definition) {
  checkDefinition(definition, 'statefulProcessor', ['process']);
  const out = new Output();
  return mark(
    {
      ...eventHandler(definition, out),
      onTimer(fired) {
        const host = currentHost();
        out._clear();
        let t = null;
        try {
          for (t of fired) {
            out._beginWith(t.key, 0, t.key.length, t.at);
            if (typeof definition.onTimer === 'function') {
              synchronous(definition.onTimer(new Timer(host, t), out), 'onTimer');
            }
          }
        } catch (e) {
          throw witError(e, `on a ${t.domain} timer at ${t.at} of key "${lossy.decode(t.key)}": `);
        }
        return { events: out._columns(), routes: out._finishedRoutes(), rejected: [] };
      },
    },
    'stateful-processor',
    definition,
  );
}

/** Accumulators as JSON (the default), or what `definition.encode`/`decode` make of them. */
function codec(definition) {
  if (typeof definition.encode === 'function' || typeof definition.decode === 'function') {
    checkDefinition(definition, 'aggregator', ['encode', 'decode']);
    return {
      encode(acc) {
        const b = definition.encode(acc);
        if (!(b instanceof Uint8Array)) throw new TypeError(`encode() must return a Uint8Array, not ${describe(b)}`);
        return b;
      },
      decode: (bytes) => definition.decode(bytes),
    };
  }
  return {
    encode(acc) {
      const json = JSON.stringify(acc);
      if (json === undefined) throw new TypeError(`the accumulator ${describe(acc)} has no JSON form`);
      return encoder.encode(json);
    },
    decode: (bytes) => JSON.parse(lossy.decode(bytes)),
  };
}

function concat(parts, total) {
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * A window aggregate (world `aggregator`): the host assigns events to windows and keeps one
 * accumulator per key and window. `definition.create()` → the empty accumulator,
 * `add(acc, event)` → the new accumulator (or undefined when it changed `acc` in place),
 * `merge(a, b)` → one accumulator (for session windows), `finish(acc, window, out)` emits the
 * window's result. Accumulators cross the boundary as JSON unless the definition has
 * `encode(acc)` → Uint8Array and `decode(bytes)`. Export the result as `aggregate`.
 */
export function aggregator(definition) {
  checkDefinition(definition, 'aggregator', ['create', 'add', 'finish']);
  const { encode, decode } = codec(definition);
  const out = new Output();
  const handler = {
    init(config, given) {
      initialize(definition, config, given);
    },

    createAccumulator() {
      try {
        return encode(definition.create());
      } catch (e) {
        throw witError(e, 'create(): ');
      }
    },

    add(accumulators, input, slots) {
      try {
        return addBatch(definition, encode, decode, accumulators, input, slots);
      } catch (e) {
        throw witError(e, '');
      }
    },

    merge(a, b) {
      try {
        if (typeof definition.merge !== 'function') {
          throw new Failed('the aggregate has no merge(a, b), which session windows need');
        }
        return encode(definition.merge(decode(a), decode(b)));
      } catch (e) {
        throw witError(e, 'merge(): ');
      }
    },

    finish(fired) {
      out._clear();
      let i = 0;
      try {
        for (; i < fired.ends.length; i++) {
          const ks = i === 0 ? 0 : fired.keyEnds[i - 1];
          const ke = fired.keyEnds[i];
          const as = i === 0 ? 0 : fired.accumulatorEnds[i - 1];
          const end = fired.ends[i];
          out._beginWith(fired.keys, ks, ke, end > I64_MIN ? end - 1n : end);
          const window = new Window(fired.starts[i], end, fired.keys.subarray(ks, ke), fired.firings[i]);
          const acc = decode(fired.accumulators.subarray(as, fired.accumulatorEnds[i]));
          synchronous(definition.finish(acc, window, out), 'finish');
        }
      } catch (e) {
        throw witError(e, `finish() of the window [${fired.starts[i]}, ${fired.ends[i]}): `);
      }
      return out._columns();
    },
  };
  return mark(handler, 'aggregator', definition);
}

function addBatch(definition, encode, decode, accumulators, input, slots) {
  const n = input.valueEnds.length;
  const packed = accumulators.bytes;
  const ends = accumulators.ends;
  if (slots.length !== n) throw new Failed(`${slots.length} slots for ${n} events`);
  if (ends.length > 0 && ends[ends.length - 1] !== packed.length) throw new Failed('malformed packed accumulators');
  const slotBytes = (s) => packed.subarray(s === 0 ? 0 : ends[s - 1], ends[s]);
  // Slots are decoded when an event first needs them; `base`/`since` say how to rebuild one.
  const accs = new Array(ends.length).fill(UNSET);
  const base = new Array(ends.length).fill(null);
  const since = new Int32Array(ends.length).fill(-1);
  let refused = null;
  const rejected = [];
  const batch = new Batch(currentHost());
  batch.reset(input);
  for (let i = 0; i < n; i++) {
    const s = slots[i];
    if (s >= ends.length) throw new Failed(`slot ${s} of ${ends.length}`);
    let acc = accs[s];
    if (acc === UNSET) acc = accs[s] = decode(slotBytes(s));
    try {
      const next = definition.add(acc, new Event(batch, i));
      if (next !== undefined) accs[s] = synchronous(next, 'add');
    } catch (e) {
      if (isFatal(e)) throw e;
      rejected.push({ event: i, reason: reasonOf(e) });
      refused ??= new Uint8Array(n);
      refused[i] = 1;
      // A refused event leaves the accumulator as it was: a primitive cannot have changed; an
      // object may have, so it is rebuilt from its last encoding and the events added since.
      if (acc !== null && (typeof acc === 'object' || typeof acc === 'function')) {
        accs[s] = replay(definition, decode, base[s] ?? slotBytes(s), since[s], i, s, slots, refused, batch);
        base[s] = encode(accs[s]);
        since[s] = i;
      }
    }
  }
  const parts = [];
  const out = new Uint32Array(ends.length);
  let total = 0;
  for (let s = 0; s < ends.length; s++) {
    const bytes = accs[s] === UNSET ? slotBytes(s) : encode(accs[s]);
    parts.push(bytes);
    total += bytes.length;
    out[s] = total;
  }
  return { accumulators: { bytes: concat(parts, total), ends: out }, rejected };
}

/** Slot `s` decoded from `bytes` with the events after `from` and before `to` added again. */
function replay(definition, decode, bytes, from, to, s, slots, refused, batch) {
  let acc = decode(bytes);
  let j = from + 1;
  muted = true;
  try {
    for (; j < to; j++) {
      if (slots[j] !== s || refused[j]) continue;
      const next = definition.add(acc, new Event(batch, j));
      if (next !== undefined) acc = next;
    }
  } catch (e) {
    throw new Failed(
      `add() accepted event ${j}, then refused it when it was added again: add must be deterministic (${reasonOf(e)})`,
    );
  } finally {
    muted = false;
  }
  return acc;
}
