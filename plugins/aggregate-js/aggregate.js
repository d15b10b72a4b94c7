// aggregate (JavaScript): keyed window statistics — count, sum, avg, min or max of a numeric field
// per key and window — the same operator as plugins/aggregate (Rust) and plugins/aggregate-python,
// with the same config and output:
//
//   window: {kind: tumbling, size: 1m}
//   config: {function: sum, field: /amount}   # count needs no field; `output` renames the result
//
// Output per (key, window): {"key": …, "start": …, "end": …, "sum": 12.5, "count": 3} (with
// "firing" when late events update a window). Events without a numeric field are rejected.
//
// The host keeps the accumulators (one per key and window, in its keyed state, checkpointed); this
// code only folds events into them: 32 bytes, count (u64) then sum, min, max (f64), little-endian.
import { InvalidConfig, Pointer, Reject, aggregator } from '../../sdk/js/index.js';

const FUNCTIONS = ['count', 'sum', 'avg', 'min', 'max'];
const SETTINGS = ['function', 'field', 'output'];
let fn = 'count';
let field = null;
let output = 'count';

const isMap = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

export const aggregate = aggregator({
  init(config) {
    if (!isMap(config)) {
      throw new InvalidConfig('the config must be a map: {function: count|sum|avg|min|max, field: /pointer}');
    }
    const unknown = Object.keys(config)
      .filter((k) => !SETTINGS.includes(k))
      .sort();
    if (unknown.length) throw new InvalidConfig(`unknown setting '${unknown[0]}' (expected ${SETTINGS.join(', ')})`);
    fn = config.function;
    if (!FUNCTIONS.includes(fn)) throw new InvalidConfig(`\`function\` must be one of ${FUNCTIONS.join(', ')}`);
    try {
      field = config.field == null ? null : new Pointer(config.field);
    } catch (e) {
      throw new InvalidConfig(`\`field\`: ${e.message}`);
    }
    if (field === null && fn !== 'count') {
      throw new InvalidConfig(`\`${fn}\` needs a \`field\` (a JSON pointer to a number, e.g. /amount)`);
    }
    output = config.output ?? fn;
    if (['key', 'start', 'end', 'firing'].includes(output) || (output === 'count' && fn !== 'count')) {
      throw new InvalidConfig(
        `\`output: ${output}\` would collide with the \`${output}\` field every result carries; choose another name`,
      );
    }
  },

  create: () => ({ count: 0, sum: 0, min: Infinity, max: -Infinity }),

  add(acc, event) {
    if (field !== null) {
      const x = field.find(event.json);
      if (x === undefined) throw new Reject(`no field ${field}`);
      if (typeof x !== 'number') throw new Reject(`${field} is not a number: ${JSON.stringify(x)}`);
      acc.sum += x;
      acc.min = Math.min(acc.min, x);
      acc.max = Math.max(acc.max, x);
    }
    acc.count += 1;
  },

  merge: (a, b) => ({
    count: a.count + b.count,
    sum: a.sum + b.sum,
    min: Math.min(a.min, b.min),
    max: Math.max(a.max, b.max),
  }),

  finish(acc, window, out) {
    const result = {
      count: acc.count,
      sum: acc.sum,
      avg: acc.sum / Math.max(acc.count, 1),
      min: acc.min,
      max: acc.max,
    }[fn];
    // Non-finite numbers (min and max of an empty window) are written as null, as serde_json does.
    const line = { key: window.keyText, start: window.start, end: window.end, [output]: result, count: acc.count };
    if (window.firing > 0) line.firing = window.firing;
    out.emit(line);
  },

  encode(acc) {
    const bytes = new Uint8Array(32);
    const view = new DataView(bytes.buffer);
    view.setBigUint64(0, BigInt(acc.count), true);
    view.setFloat64(8, acc.sum, true);
    view.setFloat64(16, acc.min, true);
    view.setFloat64(24, acc.max, true);
    return bytes;
  },

  decode(bytes) {
    if (bytes.length !== 32) throw new Error('corrupt accumulator');
    const view = new DataView(bytes.buffer, bytes.byteOffset, 32);
    return {
      count: Number(view.getBigUint64(0, true)),
      sum: view.getFloat64(8, true),
      min: view.getFloat64(16, true),
      max: view.getFloat64(24, true),
    };
  },
});
