// The processor world through the harness: the same export, batch layout and output columns as
// in the component, with an in-memory host.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { Failed, InvalidConfig, Pointer, Reject, log, metrics, processor, settings } from '../index.js';
import { Harness, event } from '../testing.js';

const bytes = (...b) => new Uint8Array(b);
const text = (b) => new TextDecoder().decode(b);
const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;

/** An operator whose `process` is `f`. */
const op = (process, init) => processor(init ? { init, process } : { process });

describe('events', () => {
  it('parses the value lazily, once, and only when asked', () => {
    let parses = 0;
    const parse = JSON.parse;
    const h = new Harness(
      op((e, out) => {
        // The first event never looks at its JSON.
        if (e.index === 0) out.forward();
        else out.emit({ same: e.json === e.json, n: e.json.n });
      }),
    );
    JSON.parse = (...args) => (parses++, parse(...args));
    try {
      const r = h.process(['not json at all', '{"n":1}']);
      assert.equal(parses, 1);
      assert.deepEqual(r.values, ['not json at all', '{"same":true,"n":1}']);
      assert.deepEqual(r.rejected, []);
    } finally {
      JSON.parse = parse;
    }
  });

  it('gives value, text, object, key, timestamp and index', () => {
    const seen = [];
    const h = new Harness(
      op((e) => {
        seen.push({ value: e.value, text: e.text, key: e.key, keyText: e.keyText, ts: e.timestamp, index: e.index });
      }),
    );
    h.process([event('{"a":1}', { key: 'k1', timestamp: 1700000000123 }), 'x']);
    assert.deepEqual(seen, [
      {
        value: new TextEncoder().encode('{"a":1}'),
        text: '{"a":1}',
        key: bytes(0x6b, 0x31),
        keyText: 'k1',
        ts: 1700000000123,
        index: 0,
      },
      { value: bytes(0x78), text: 'x', key: null, keyText: null, ts: 0, index: 1 },
    ]);
  });

  it('event.object refuses anything but a JSON object with one reason', () => {
    const h = new Harness(op((e, out) => out.emit(e.object)));
    const r = h.process(['[1]', 'null', '"s"', 'nope', '{"ok":true}', bytes(0xff)]);
    assert.deepEqual(r.json, [{ ok: true }]);
    assert.deepEqual(
      r.rejected,
      [0, 1, 2, 3, 5].map((index) => ({ index, reason: 'the value is not a JSON object' })),
    );
  });

  it('rejects values that are not JSON with the parser message', () => {
    const r = new Harness(op((e, out) => out.emit(e.json))).process(['{"a":', '', '5']);
    assert.deepEqual(r.values, ['5']);
    assert.equal(r.rejected.length, 2);
    assert.match(r.rejected[0].reason, /^the value is not JSON \(.+\)$/);
    assert.equal(r.rejected[1].index, 1);
  });

  it('rejects invalid UTF-8 when the text or JSON is read, while the bytes stay usable', () => {
    const h = new Harness(
      op((e, out) => {
        if (e.index === 0) out.emit(e.value);
        else if (e.index === 1) out.forward();
        else out.emit(e.json);
      }),
    );
    const bad = bytes(0x7b, 0x7d, 0xc3, 0x28); // "{}" then a broken 2-byte sequence
    const r = h.process([bad, bad, bad, bytes(0xef, 0xbb, 0xbf, 0x31)]);
    assert.deepEqual(r.events[0].value, bad);
    assert.deepEqual(r.events[1].value, bad);
    assert.deepEqual(r.rejected, [
      { index: 2, reason: 'the value is not UTF-8 (invalid byte at 2)' },
      // A byte-order mark is kept, and is not JSON, as in the Rust SDK.
      { index: 3, reason: r.rejected[1].reason },
    ]);
    assert.match(r.rejected[1].reason, /^the value is not JSON/);
  });

  it('handles empty values', () => {
    const r = new Harness(
      op((e, out) => {
        out.forward();
        out.emit('');
        out.emit(e.text + '!');
      }),
    ).process(['', '']);
    assert.deepEqual(r.values, ['', '', '!', '', '', '!']);
  });

  it('handles an empty batch', () => {
    const r = new Harness(op((e, out) => out.forward())).process([]);
    assert.deepEqual(r.events, []);
    assert.deepEqual(r.rejected, []);
  });

  it('reads the headers of its own event', () => {
    const got = [];
    const h = new Harness(op((e) => got.push(e.headers.map((x) => `${x.name}=${text(x.value)}`))));
    h.process([
      event('1', {
        headers: [
          { name: 'a', value: 'x' },
          { name: 'b', value: 'y' },
        ],
      }),
      '2',
      event('3', { headers: [{ name: 'a', value: 'z' }] }),
    ]);
    assert.deepEqual(got, [['a=x', 'b=y'], [], ['a=z']]);
  });
});

describe('output', () => {
  it('emits objects as compact JSON, strings as text and bytes as they are', () => {
    const r = new Harness(
      op((e, out) => {
        out.emit({ a: [1, 'é'], b: null });
        out.emit('plain "text" ü');
        out.emit(bytes(0, 255, 10));
        out.emit(42);
        out.emit([true]);
        out.emit(null);
      }),
    ).process(['x']);
    assert.deepEqual(r.values.slice(0, 2), ['{"a":[1,"é"],"b":null}', 'plain "text" ü']);
    assert.deepEqual(r.events[2].value, bytes(0, 255, 10));
    assert.deepEqual(r.values.slice(3), ['42', '[true]', 'null']);
  });

  it('forwards the event unchanged: value, key, timestamp and headers', () => {
    const r = new Harness(op((e, out) => out.forward())).process([
      event(bytes(1, 2, 3), { key: bytes(9, 8), timestamp: 77, headers: [{ name: 'h', value: bytes(5) }] }),
      event('b', { key: 'kb', timestamp: -5 }),
    ]);
    assert.deepEqual(r.events, [
      {
        value: bytes(1, 2, 3),
        key: bytes(9, 8),
        timestamp: 77,
        timestampBigInt: 77n,
        headers: [{ name: 'h', value: bytes(5) }],
      },
      { value: bytes(0x62), key: new TextEncoder().encode('kb'), timestamp: -5, timestampBigInt: -5n, headers: [] },
    ]);
  });

  it('defaults key and timestamp to the input event, and overrides them', () => {
    const r = new Harness(
      op((e, out) => {
        out.emit('default');
        out.emit('string key', { key: 'other', timestamp: 5 });
        out.emit('bytes key', { key: bytes(1), timestamp: 6n });
        out.emit('no key', { key: null });
        out.emit('headers', {
          headers: [
            { name: 'n', value: 'v' },
            { name: 'b', value: bytes(7) },
          ],
        });
      }),
    ).process([event('x', { key: 'in', timestamp: 1000 })]);
    assert.deepEqual(r.keys, ['in', 'other', '\u0001', null, 'in']);
    assert.deepEqual(r.timestamps, [1000, 5, 6, 1000, 1000]);
    assert.deepEqual(r.events[4].headers, [
      { name: 'n', value: new TextEncoder().encode('v') },
      { name: 'b', value: bytes(7) },
    ]);
  });

  it('keeps i64 timestamps exact at both bounds', () => {
    const r = new Harness(
      op((e, out) => {
        out.forward();
        out.emit('default');
        out.emit('as a number', { timestamp: e.timestamp });
        out.emit('as a BigInt', { timestamp: e.timestampBigInt });
      }),
    ).process([event('min', { timestamp: I64_MIN }), event('max', { timestamp: I64_MAX })]);
    assert.deepEqual(
      r.events.map((e) => e.timestampBigInt),
      [I64_MIN, I64_MIN, I64_MIN, I64_MIN, I64_MAX, I64_MAX, I64_MAX, I64_MAX],
    );
    assert.equal(r.timestamps[4], 2 ** 63);
  });

  it('rejects timestamps that are no i64', () => {
    const r = new Harness(
      op((e, out) => {
        out.emit('before');
        out.emit('x', { timestamp: [2n ** 63n, 1.5, '7', 2 ** 64][e.index] });
      }),
    ).process(['0', '1', '2', '3']);
    assert.deepEqual(r.values, []);
    assert.deepEqual(
      r.rejected.map((x) => x.reason.split(':')[0]),
      ['RangeError', 'TypeError', 'TypeError', 'RangeError'],
    );
  });

  it('refuses values with no JSON form, and bad keys and headers, before writing anything', () => {
    const r = new Harness(
      op((e, out) => {
        const bad = [undefined, () => 1, { n: 1n }];
        try {
          if (e.index < 3) out.emit(bad[e.index]);
          else if (e.index === 3) out.emit('v', { key: 5 });
          else out.emit('v', { headers: [{ name: 'x', value: 5 }] });
        } catch (err) {
          out.emit(`caught ${err.name}`); // the failed emit left nothing behind
        }
      }),
    ).process(['0', '1', '2', '3', '4']);
    assert.deepEqual(r.values, Array(5).fill('caught TypeError'));
    assert.deepEqual(r.keys, Array(5).fill(null));
    assert.deepEqual(
      r.events.map((e) => e.headers),
      Array(5).fill([]),
    );
  });

  it('handles huge values and many events', () => {
    const huge = 'é'.repeat(3 << 20) + 'x'.repeat(1 << 20); // 7 MiB of UTF-8
    const r = new Harness(
      op((e, out) => {
        if (e.index === 0) {
          out.emit(e.text);
          out.forward();
          out.emit({ huge: e.text.length });
        } else {
          out.emit({ i: e.index });
        }
      }),
    ).process([huge, ...Array.from({ length: 20000 }, (_, i) => String(i))]);
    assert.equal(r.events.length, 3 + 20000);
    assert.equal(r.values[0], huge);
    assert.equal(r.events[1].value.length, 7 << 20);
    assert.deepEqual(JSON.parse(r.values[2]), { huge: 4 << 20 });
    assert.deepEqual(JSON.parse(r.values[20002]), { i: 20000 });
  });

  it('starts every batch with empty output', () => {
    const h = new Harness(op((e, out) => out.emit(e.text.repeat(3))));
    assert.deepEqual(h.process(['ab', 'c']).values, ['ababab', 'ccc']);
    assert.deepEqual(h.process(['d']).values, ['ddd']);
  });
});

describe('errors', () => {
  it('turns Reject and any exception into a rejection of that event only, discarding its output', () => {
    const r = new Harness(
      op((e, out) => {
        out.emit(`before ${e.index}`);
        if (e.index === 1) throw new Reject('no good');
        if (e.index === 2) e.json.missing.field; // TypeError
        if (e.index === 3) throw new RangeError('too far');
        if (e.index === 4) throw 'a string';
        if (e.index === 5) throw { code: 7 };
        out.emit(`after ${e.index}`, { headers: [{ name: 'h', value: 'v' }] });
      }),
    ).process(['{}', '{}', '{}', '{}', '{}', '{}', '{}']);
    assert.deepEqual(r.values, ['before 0', 'after 0', 'before 6', 'after 6']);
    assert.deepEqual(
      r.events.map((e) => e.headers.length),
      [0, 1, 0, 1],
    );
    assert.deepEqual(r.rejected, [
      { index: 1, reason: 'no good' },
      { index: 2, reason: r.rejected[1].reason },
      { index: 3, reason: 'RangeError: too far' },
      { index: 4, reason: 'a string' },
      { index: 5, reason: '{"code":7}' },
    ]);
    assert.match(r.rejected[1].reason, /^TypeError: ./);
  });

  it('fails the whole batch on Failed', () => {
    const h = new Harness(
      op((e, out) => {
        out.emit('x');
        if (e.index === 1) throw new Failed('the database is gone');
      }),
    );
    assert.throws(() => h.process(['a', 'b']), { name: 'Failed', message: 'the database is gone' });
  });

  it('refuses a bad config with InvalidConfig, and reports other init errors as failures', () => {
    const make = () =>
      op(
        (e, out) => out.forward(),
        (config) => {
          if (config.boom) config.boom.deeper.x;
          if (config.bad) throw new InvalidConfig('`bad` is bad');
          if (config.fail) throw new Failed('cannot start');
        },
      );
    assert.throws(() => new Harness(make(), { bad: 1 }), { name: 'InvalidConfig', message: '`bad` is bad' });
    assert.throws(() => new Harness(make(), { fail: 1 }), { name: 'Failed', message: 'cannot start' });
    assert.throws(() => new Harness(make(), { boom: {} }), { name: 'Failed', message: /^TypeError: / });
    assert.deepEqual(new Harness(make(), null).process(['a']).values, ['a']);
  });

  it('hands init the config, with {} for none', () => {
    const configs = [];
    const handler = op(
      () => {},
      (c) => configs.push(c),
    );
    new Harness(handler, null);
    new Harness(handler, { a: [1] });
    new Harness(handler, [1]);
    assert.deepEqual(configs, [{}, { a: [1] }, [1]]);
  });

  it('fails the batch when process is async: the host calls it synchronously', () => {
    const h = new Harness(
      processor({
        async process(e, out) {
          out.emit('x');
        },
      }),
    );
    assert.throws(() => h.process(['a']), { name: 'Failed', message: /process\(\) returned a promise/ });
  });

  it('checks what a hand-written export returns, as the component would', () => {
    // componentize-js traps on a Number where the contract has an s64 (a BigInt).
    const handwritten = {
      init() {},
      process: () => ({
        events: { values: bytes(1), valueEnds: [1], keys: bytes(), keyEnds: [0], timestamps: [5], headers: [] },
        rejected: [],
      }),
    };
    assert.throws(() => new Harness(handwritten).process(['x']), /timestamp 5 is not an i64 BigInt/);
    const throwing = {
      init() {},
      process: () => {
        throw new TypeError('oops');
      },
    };
    assert.throws(() => new Harness(throwing).process(['x']), /would trap/);
  });
});

describe('log, metrics, settings and pointers', () => {
  it('records logs and metrics per call', () => {
    const h = new Harness(
      op((e) => {
        log.info(`saw ${e.index}`);
        metrics.counterAdd('seen');
        metrics.counterAdd('bytes', e.value.length);
        metrics.gaugeSet('last', e.index);
      }),
    );
    const r = h.process(['ab', 'c']);
    assert.deepEqual(r.logs, [
      { level: 'info', message: 'saw 0' },
      { level: 'info', message: 'saw 1' },
    ]);
    assert.deepEqual(r.metrics, { counters: { seen: 2, bytes: 3 }, gauges: { last: 1 } });
    assert.deepEqual(h.process([]).logs, []);
  });

  it('settings() checks names and types and fills in defaults', () => {
    const defaults = { 'min-amount': 0, name: 'x', on: false, any: null };
    assert.deepEqual(settings({}, defaults), defaults);
    assert.deepEqual(settings(null, defaults), defaults);
    assert.deepEqual(settings({ 'min-amount': 5, any: [1] }, defaults), { ...defaults, 'min-amount': 5, any: [1] });
    assert.throws(() => settings({ min: 1 }, defaults), {
      name: 'InvalidConfig',
      message: 'unknown setting "min" (expected min-amount, name, on, any)',
    });
    assert.throws(() => settings({ 'min-amount': '1' }, defaults), { message: '`min-amount` must be a number' });
    assert.throws(() => settings({ on: 1 }, defaults), { message: '`on` must be a boolean' });
    assert.throws(() => settings([1], defaults), { message: 'the config must be a map (min-amount, name, on, any)' });
  });

  it('Pointer finds fields like the Rust SDK', () => {
    const doc = { a: { 'b/c': [10, { '~': 'x' }] }, n: null };
    assert.equal(new Pointer('/a/b~1c/0').find(doc), 10);
    assert.equal(new Pointer('/a/b~1c/1/~0').find(doc), 'x');
    assert.equal(new Pointer('/n').find(doc), null);
    assert.equal(new Pointer('/a/b~1c/01').find(doc), undefined);
    assert.equal(new Pointer('/missing/x').find(doc), undefined);
    assert.deepEqual(new Pointer('').find(doc), doc);
    assert.throws(() => new Pointer('amount'), /`amount` is not a JSON pointer/);
    assert.throws(() => new Pointer('/a~2'), /is not a JSON pointer/);
  });
});
