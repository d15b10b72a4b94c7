// @flowlet/sdk/testing — run an operator in-process under `node --test`, without Wasm.
//
//   import { Harness, event } from '@flowlet/sdk/testing';
//   import { handler } from './operator.js';
//
//   const h = new Harness(handler, { label: 'x' });
//   const r = h.process([{ id: 1 }, 'not json', event({ id: 2 }, { key: 'u1', timestamp: 5 })]);
//   assert.deepEqual(r.json, [{ id: 1, label: 'x' }, { id: 2, label: 'x' }]);
//   assert.deepEqual(r.rejected, [{ index: 1, reason: 'the value is not a JSON object' }]);
//
// The harness drives the operator's export (`handler`, `statefulHandler` or `aggregate`) the way
// the host does: it packs the events into the contract's column batch, calls the export, checks
// and unpacks the columns it returns. Only the host differs: keyed state, timers, clocks, logs
// and metrics live here, in memory.

import { DEFINITION, Failed, InvalidConfig, KeyState, bind } from './index.js';

const encoder = new TextEncoder();
const lossy = new TextDecoder('utf-8', { ignoreBOM: true });
const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;
const DOMAINS = ['event-time', 'processing-time'];

function bytes(value, what) {
  if (value instanceof Uint8Array) return value;
  if (typeof value === 'string') return encoder.encode(value);
  const json = JSON.stringify(value);
  if (json === undefined) throw new TypeError(`${what} ${String(value)} has no JSON form`);
  return encoder.encode(json);
}

function keyBytes(key) {
  if (key === null || key === undefined) return new Uint8Array(0);
  if (key instanceof Uint8Array) return key;
  return encoder.encode(String(key));
}

function i64(t, what) {
  const v = typeof t === 'bigint' ? t : BigInt(t);
  if (v < I64_MIN || v > I64_MAX) throw new RangeError(`${what} ${t} is out of the i64 range`);
  return v;
}

const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
const order = (x, y) => (x < y ? -1 : x > y ? 1 : 0);
/** Timers or windows in the order the host fires them: by time (`field`), then by key bytes. */
const byTimeAndKey = (field) => (a, b) => order(a[field], b[field]) || order(hex(a.key), hex(b.key));

/** An input event with a key, timestamp or headers: `event(value, {key, timestamp, headers})`. */
export function event(value, { key = null, timestamp, headers = [] } = {}) {
  return new TestEvent(value, key, timestamp, headers);
}

class TestEvent {
  constructor(value, key, timestamp, headers) {
    this.value = value;
    this.key = key;
    this.timestamp = timestamp;
    this.headers = headers;
  }
}

/**
 * The contract's batch (the columns componentize-js hands an export) of `events`: a string is
 * the value's text as it is, a Uint8Array its bytes, anything else is written as JSON;
 * `event(value, {...})` adds a key, timestamp and headers. Timestamps default to `next()`.
 */
function pack(events, next) {
  const values = [];
  const keys = [];
  const valueEnds = new Uint32Array(events.length);
  const keyEnds = new Uint32Array(events.length);
  const timestamps = new BigInt64Array(events.length);
  const headers = [];
  let vlen = 0;
  let klen = 0;
  events.forEach((e, i) => {
    const t = e instanceof TestEvent ? e : new TestEvent(e, null, undefined, []);
    const v = bytes(t.value, 'the value');
    const k = keyBytes(t.key);
    values.push(v);
    keys.push(k);
    vlen += v.length;
    klen += k.length;
    valueEnds[i] = vlen;
    keyEnds[i] = klen;
    timestamps[i] = t.timestamp === undefined ? next() : i64(t.timestamp, 'timestamp');
    for (const h of t.headers) headers.push({ event: i, name: h.name, value: bytes(h.value, 'a header') });
  });
  return { values: concat(values, vlen), valueEnds, keys: concat(keys, klen), keyEnds, timestamps, headers };
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

/** Check `ends` of a packed list as the host does: one per item, ascending, ending at `length`. */
function checkEnds(ends, length, what) {
  let last = 0;
  for (const e of ends) {
    if (!Number.isInteger(e) || e < last || e > 0xffffffff) {
      throw new Error(`malformed output: ${what} are not ascending u32s`);
    }
    last = e;
  }
  if (last !== length) throw new Error(`malformed output: ${what} end at ${last}, the bytes at ${length}`);
}

function isBytes(v) {
  return v instanceof Uint8Array;
}

/**
 * A batch as an export returned it, checked as lowering it and the host would, and copied out of
 * the operator's buffers (which the next call reuses) into events.
 */
function unpack(batch) {
  const { values, valueEnds, keys, keyEnds, timestamps, headers } = batch;
  if (!isBytes(values) || !isBytes(keys)) throw new Error('malformed output: values and keys must be Uint8Arrays');
  const n = valueEnds.length;
  if (keyEnds.length !== n || timestamps.length !== n) {
    throw new Error(`malformed output: ${n} value ends, ${keyEnds.length} key ends, ${timestamps.length} timestamps`);
  }
  checkEnds(valueEnds, values.length, 'value ends');
  checkEnds(keyEnds, keys.length, 'key ends');
  const events = [];
  for (let i = 0; i < n; i++) {
    const ts = timestamps[i];
    if (typeof ts !== 'bigint' || ts < I64_MIN || ts > I64_MAX) {
      throw new Error(`malformed output: timestamp ${ts} is not an i64 BigInt`);
    }
    const key = keys.slice(i === 0 ? 0 : keyEnds[i - 1], keyEnds[i]);
    events.push({
      value: values.slice(i === 0 ? 0 : valueEnds[i - 1], valueEnds[i]),
      key: key.length === 0 ? null : key,
      timestamp: Number(ts),
      timestampBigInt: ts,
      headers: [],
    });
  }
  for (const h of headers) {
    if (!Number.isInteger(h.event) || h.event < 0 || h.event >= n || typeof h.name !== 'string' || !isBytes(h.value)) {
      throw new Error(`malformed output: header ${JSON.stringify(h.name)} of event ${h.event} (${n} events)`);
    }
    events[h.event].headers.push({ name: h.name, value: h.value.slice() });
  }
  return events;
}

/** What one call produced. */
export class Result {
  constructor(events, rejected, host, routes = [], outputs = []) {
    /** `[{value, key, timestamp, timestampBigInt, headers}]`: values and keys as Uint8Arrays. */
    this.events = events;
    /** One route mask per event (none: every event to the main output); see `on(output)`. */
    this.routes = Array.from(routes);
    if (this.routes.length !== 0 && this.routes.length !== events.length) {
      throw new Error(`malformed output: ${this.routes.length} routes for ${events.length} events`);
    }
    this._outputs = outputs;
    /** `[{index, reason}]`: the input events refused. */
    this.rejected = rejected;
    /** `[{level, message}]` logged during the call. */
    this.logs = host.takeLogs();
    /** `{counters: {name: n}, gauges: {name: x}}` recorded during the call. */
    this.metrics = host.takeMetrics();
  }

  /** The events sent to `output`: `main`, or one of the operator's named outputs. */
  on(output = 'main') {
    const i = this._outputs.indexOf(output);
    if (output !== 'main' && i < 0) throw new TypeError(`no output "${output}" (outputs: ${this._outputs.join(', ')})`);
    const bit = output === 'main' ? 1 : 2 ** (i + 1);
    return this.events.filter((_, j) => ((this.routes.length === 0 ? 1 : this.routes[j]) & bit) !== 0);
  }

  /** The values as text. */
  get values() {
    return this.events.map((e) => lossy.decode(e.value));
  }

  /** The values parsed as JSON. */
  get json() {
    return this.events.map((e, i) => {
      try {
        return JSON.parse(lossy.decode(e.value));
      } catch {
        const text = lossy.decode(e.value.subarray(0, 200));
        throw new Error(`output event ${i} is not JSON: ${text}${e.value.length > 200 ? '…' : ''}`);
      }
    });
  }

  /** The keys as text (null: no key). */
  get keys() {
    return this.events.map((e) => (e.key === null ? null : lossy.decode(e.key)));
  }

  get timestamps() {
    return this.events.map((e) => e.timestamp);
  }
}

/** A WIT `error` an export threw, as the Error a test expects: InvalidConfig or Failed. */
function fromWit(e) {
  if (e !== null && typeof e === 'object' && typeof e.val === 'string') {
    if (e.tag === 'invalid-config') return new InvalidConfig(e.val);
    if (e.tag === 'failed') return new Failed(e.val);
  }
  // Anything else would trap the component: a bug in the export, not an operator error.
  const error = new Error(
    `the export threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}, not a WIT error: the component would trap`,
  );
  error.cause = e;
  return error;
}

/** The host the harness binds: keyed state, timers, clocks, logs and metrics, in memory. */
class MemoryHost {
  constructor() {
    this.values = new Map(); // hex(key) + ' ' + name → {value, expires}
    this.maps = new Map(); // hex(key) + ' ' + name → Map(hex(mapKey) → {key, value, expires})
    this.pending = new Map(); // domain + ' ' + at + ' ' + hex(key) → {key, domain, at}
    this.watermark = I64_MIN;
    this.now = 0n;
    this.logs = [];
    this.counters = {};
    this.gauges = {};
    const self = this;
    const live = (entry) => entry !== undefined && (entry.expires === null || entry.expires > self.now);
    const expiry = (ttl) => {
      if (ttl === undefined) return null;
      if (typeof ttl !== 'bigint' || ttl < 0n) throw new TypeError(`ttl must be a u64 BigInt, not ${ttl}`);
      return self.now + ttl;
    };
    const slot = (key, name) => {
      if (!isBytes(key) || typeof name !== 'string') {
        throw new TypeError('state: the key must be a Uint8Array and the name a string');
      }
      return `${hex(key)} ${name}`;
    };
    const map = (key, name, create) => {
      const s = slot(key, name);
      let m = self.maps.get(s);
      if (m === undefined && create) self.maps.set(s, (m = new Map()));
      return m;
    };
    const mapKey = (k) => {
      if (!isBytes(k)) throw new TypeError('state: a map key must be a Uint8Array');
      return hex(k);
    };
    const timer = (key, domain, at) => {
      if (!isBytes(key) || !DOMAINS.includes(domain) || typeof at !== 'bigint') {
        throw new TypeError('timers: (key: Uint8Array, domain: event-time | processing-time, at: BigInt)');
      }
      return `${domain} ${at} ${hex(key)}`;
    };
    this.log = { log: (level, message) => self.logs.push({ level, message }) };
    this.metrics = {
      counterAdd(name, delta) {
        if (typeof delta !== 'bigint') throw new TypeError('counterAdd: the delta must be a BigInt (u64)');
        self.counters[name] = (self.counters[name] ?? 0) + Number(delta);
      },
      gaugeSet(name, value) {
        self.gauges[name] = value;
      },
    };
    this.state = {
      valueGet(key, name) {
        const e = self.values.get(slot(key, name));
        return live(e) ? e.value.slice() : undefined;
      },
      valuePut(key, name, value, ttl) {
        if (!isBytes(value)) throw new TypeError('state: a value must be a Uint8Array');
        self.values.set(slot(key, name), { value: value.slice(), expires: expiry(ttl) });
      },
      valueDelete(key, name) {
        self.values.delete(slot(key, name));
      },
      mapGet(key, name, k) {
        const e = map(key, name, false)?.get(mapKey(k));
        return live(e) ? e.value.slice() : undefined;
      },
      mapPut(key, name, k, value, ttl) {
        if (!isBytes(value)) throw new TypeError('state: a value must be a Uint8Array');
        map(key, name, true).set(mapKey(k), { key: k.slice(), value: value.slice(), expires: expiry(ttl) });
      },
      mapDelete(key, name, k) {
        map(key, name, false)?.delete(mapKey(k));
      },
      mapRange(key, name, start, end, limit) {
        const from = mapKey(start);
        const to = mapKey(end);
        const m = map(key, name, false);
        if (m === undefined) return [];
        return [...m.entries()]
          .filter(([k, e]) => k >= from && (to === '' || k < to) && live(e))
          .sort(([a], [b]) => order(a, b))
          .slice(0, limit)
          .map(([, e]) => [e.key.slice(), e.value.slice()]);
      },
    };
    this.timers = {
      currentWatermark: () => self.watermark,
      currentProcessingTime: () => self.now,
      register(key, domain, at) {
        self.pending.set(timer(key, domain, at), { key: key.slice(), domain, at });
      },
      cancel(key, domain, at) {
        self.pending.delete(timer(key, domain, at));
      },
    };
  }

  /** Remove and return the timers of `domain` due at `time`, in time order (then key). */
  due(domain, time) {
    const due = [...this.pending.entries()].filter(([, t]) => t.domain === domain && t.at <= time);
    for (const [id] of due) this.pending.delete(id);
    return due.map(([, t]) => t).sort(byTimeAndKey('at'));
  }

  takeLogs() {
    const logs = this.logs;
    this.logs = [];
    return logs;
  }

  takeMetrics() {
    const m = { counters: this.counters, gauges: this.gauges };
    this.counters = {};
    this.gauges = {};
    return m;
  }
}

const KINDS = {
  processor: ['init', 'process'],
  'stateful-processor': ['init', 'process', 'onTimer'],
  aggregator: ['init', 'createAccumulator', 'add', 'merge', 'finish'],
};

/** The world of an export: from the SDK's mark, or from the functions it has. */
function kindOf(handler) {
  const marked = handler?.[DEFINITION]?.kind;
  if (marked) return marked;
  for (const kind of ['aggregator', 'stateful-processor', 'processor']) {
    if (KINDS[kind].every((f) => typeof handler?.[f] === 'function')) return kind;
  }
  throw new TypeError(
    'Harness takes the export of an operator: processor({...}), statefulProcessor({...}) or aggregator({...})',
  );
}

/**
 * An operator instance driven by a test: `new Harness(exported, config)` calls `init` with the
 * config (as JSON: the manifest's `config:`), and throws InvalidConfig (or Failed) as the host
 * would refuse to start.
 */
export class Harness {
  /**
   * `config`: the manifest's `config:`; `options.inputs` and `options.outputs`: the names of
   * the operator's inputs and named outputs, as the manifest would give them.
   */
  constructor(handler, config = null, options = {}) {
    this.handler = handler;
    this.kind = kindOf(handler);
    this.host = new MemoryHost();
    // What the component of this world imports: state and timers only for stateful-processor.
    this._bound = this.kind === 'stateful-processor' ? this.host : { log: this.host.log, metrics: this.host.metrics };
    this._next = 0;
    this.setup = { operator: 'operator', inputs: options.inputs ?? ['input'], outputs: options.outputs ?? [] };
    this._call(() => handler.init(JSON.stringify(config), this.setup));
    this.host.takeLogs();
    this.host.takeMetrics();
  }

  _call(f) {
    bind(this._bound);
    try {
      return f();
    } catch (e) {
      throw fromWit(e);
    }
  }

  _expect(...kinds) {
    if (!kinds.includes(this.kind)) {
      throw new TypeError(`this is for ${kinds.join(' and ')} operators; the operator is a ${this.kind}`);
    }
  }

  _batch(events) {
    if (!Array.isArray(events)) throw new TypeError('process() takes an array of events');
    return pack(events, () => BigInt(this._next++));
  }

  /**
   * Run one batch of `events` through `process`: a string is a value's text, a Uint8Array its
   * bytes, anything else is written as JSON; `event(value, {key, timestamp, headers})` sets the
   * rest (timestamps default to 0, 1, 2, … across calls).
   */
  process(events, options = {}) {
    this._expect('processor', 'stateful-processor');
    const origin = options.input === undefined ? 0 : this.setup.inputs.indexOf(options.input);
    if (origin < 0) throw new TypeError(`no input "${options.input}" (inputs: ${this.setup.inputs.join(', ')})`);
    const input = this._batch(events);
    const out = this._call(() => this.handler.process(input, origin));
    const rejected = out.rejected.map((r) => {
      if (!Number.isInteger(r.event) || r.event >= events.length || typeof r.reason !== 'string') {
        throw new Error(`malformed output: rejection ${JSON.stringify(r)} of ${events.length} events`);
      }
      return { index: r.event, reason: r.reason };
    });
    return new Result(unpack(out.events), rejected, this.host, out.routes, this.setup.outputs);
  }

  /** Advance the watermark to `t` and fire the event-time timers due, as the host would. */
  advanceWatermark(t) {
    this._expect('stateful-processor');
    const at = i64(t, 'watermark');
    if (at > this.host.watermark) this.host.watermark = at;
    return this._fire('event-time', at);
  }

  /** Set the processing-time clock (TTLs expire by it) and fire the processing-time timers due. */
  setProcessingTime(t) {
    this._expect('stateful-processor');
    this.host.now = i64(t, 'processing time');
    return this._fire('processing-time', this.host.now);
  }

  _fire(domain, time) {
    const due = this.host.due(domain, time);
    const events = due.length === 0 ? [] : unpack(this._call(() => this.handler.onTimer(due)).events);
    return new Result(events, [], this.host);
  }

  /** The timers waiting to fire: `[{key, domain, at}]` with the key as text, in time order. */
  timers() {
    this._expect('stateful-processor');
    return [...this.host.pending.values()]
      .sort(byTimeAndKey('at'))
      .map((t) => ({ key: lossy.decode(t.key), domain: t.domain, at: Number(t.at) }));
  }

  /** The keyed state of `key` (a string, bytes, or null for unkeyed events), to read or seed. */
  state(key) {
    this._expect('stateful-processor');
    return new KeyState(this.host, keyBytes(key));
  }

  // --- aggregates ---

  /** A fresh accumulator, encoded as the host keeps it. */
  create() {
    this._expect('aggregator');
    return this._call(() => this.handler.createAccumulator()).slice();
  }

  /**
   * Fold `events` into the accumulators `accs` (encoded; event `i` into `accs[slots[i]]`) with
   * one `add` call: `{accumulators, rejected, logs, metrics}`.
   */
  add(accs, events, slots) {
    this._expect('aggregator');
    const { accumulators, rejected } = this._add(accs, this._batch(events), slots);
    return { accumulators, rejected, logs: this.host.takeLogs(), metrics: this.host.takeMetrics() };
  }

  _add(accs, input, slots) {
    const ends = new Uint32Array(accs.length);
    let total = 0;
    accs.forEach((a, i) => (ends[i] = total += a.length));
    const added = this._call(() =>
      this.handler.add({ bytes: concat(accs, total), ends }, input, Uint32Array.from(slots)),
    );
    const { bytes: packed, ends: outEnds } = added.accumulators;
    if (!isBytes(packed) || outEnds.length !== accs.length) {
      throw new Error('malformed output: one accumulator per slot');
    }
    checkEnds(outEnds, packed.length, 'accumulator ends');
    const accumulators = Array.from(outEnds, (e, i) => packed.slice(i === 0 ? 0 : outEnds[i - 1], e));
    const rejected = added.rejected.map((r) => {
      if (!Number.isInteger(r.event) || r.event >= slots.length || typeof r.reason !== 'string') {
        throw new Error(`malformed output: rejection ${JSON.stringify(r)} of ${slots.length} events`);
      }
      return { index: r.event, reason: r.reason };
    });
    return { accumulators, rejected };
  }

  /** Fold `events` into one accumulator (default: a fresh one): `{acc, rejected, logs, metrics}`. */
  fold(events, acc = this.create()) {
    const r = this.add([acc], events, new Array(events.length).fill(0));
    return { acc: r.accumulators[0], rejected: r.rejected, logs: r.logs, metrics: r.metrics };
  }

  merge(a, b) {
    this._expect('aggregator');
    return this._call(() => this.handler.merge(a, b)).slice();
  }

  /** An encoded accumulator decoded as the aggregate does (JSON unless it has `decode`). */
  decode(acc) {
    this._expect('aggregator');
    const definition = this.handler[DEFINITION]?.definition;
    if (typeof definition?.decode === 'function') return definition.decode(acc);
    return JSON.parse(lossy.decode(acc));
  }

  /**
   * Finish windows: `[{acc, start, end, key, firing}]` (defaults: `[0, 1000)`, no key, firing 0),
   * or one accumulator and its window.
   */
  finish(windows, window = {}) {
    this._expect('aggregator');
    const list = isBytes(windows) ? [{ ...window, acc: windows }] : windows;
    const fired = {
      starts: new BigInt64Array(list.length),
      ends: new BigInt64Array(list.length),
      keys: null,
      keyEnds: new Uint32Array(list.length),
      accumulators: null,
      accumulatorEnds: new Uint32Array(list.length),
      firings: new Uint32Array(list.length),
    };
    const keys = [];
    const accs = [];
    let klen = 0;
    let alen = 0;
    list.forEach((w, i) => {
      const k = keyBytes(w.key);
      keys.push(k);
      accs.push(w.acc);
      fired.starts[i] = i64(w.start ?? 0, 'start');
      fired.ends[i] = i64(w.end ?? 1000, 'end');
      fired.keyEnds[i] = klen += k.length;
      fired.accumulatorEnds[i] = alen += w.acc.length;
      fired.firings[i] = w.firing ?? 0;
    });
    fired.keys = concat(keys, klen);
    fired.accumulators = concat(accs, alen);
    return new Result(unpack(this._call(() => this.handler.finish(fired))), [], this.host);
  }

  /**
   * The whole life of tumbling windows of `size` ms over `events` (keyed by their `key`, at
   * their `timestamp`): one `add` for the batch, then every window that got an event finished
   * (as the host does, also a window whose events were all rejected), in order of end and key.
   * The result has the windows' output and the rejected events.
   */
  tumbling(events, size) {
    this._expect('aggregator');
    const width = BigInt(size);
    if (width <= 0n) throw new RangeError('the window size must be positive');
    const input = this._batch(events);
    const ids = new Map();
    const windows = [];
    const slots = [];
    for (let i = 0; i < events.length; i++) {
      const t = input.timestamps[i];
      const start = t - (((t % width) + width) % width);
      const key = input.keys.slice(i === 0 ? 0 : input.keyEnds[i - 1], input.keyEnds[i]);
      const id = `${start} ${hex(key)}`;
      if (!ids.has(id)) {
        ids.set(id, windows.length);
        windows.push({ start, end: start + width, key });
      }
      slots.push(ids.get(id));
    }
    const fresh = this.create();
    const { accumulators, rejected } = this._add(
      windows.map(() => fresh),
      input,
      slots,
    );
    const fired = windows.map((w, i) => ({ ...w, acc: accumulators[i] })).sort(byTimeAndKey('end'));
    const result = this.finish(fired);
    result.rejected = rejected;
    return result;
  }
}
