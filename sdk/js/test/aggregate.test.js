// The aggregator world: accumulators packed into slots, rejected events, merge and finish.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { Reject, aggregator, log, metrics } from '../index.js';
import { Harness, event } from '../testing.js';

/** Sum and count of /x, the accumulator an object changed in place; JSON-encoded. */
const sum = (extra = {}) =>
  aggregator({
    create: () => ({ n: 0, total: 0, seen: [] }),
    add(acc, e) {
      acc.n += 1; // changed before the event may turn out bad
      acc.seen.push(e.index);
      log.debug(`add ${e.index}`);
      metrics.counterAdd('added');
      const x = e.json.x;
      if (typeof x !== 'number') throw new Reject(`x is not a number: ${JSON.stringify(x)}`);
      acc.total += x;
    },
    merge: (a, b) => ({ n: a.n + b.n, total: a.total + b.total, seen: [...a.seen, ...b.seen] }),
    finish(acc, w, out) {
      out.emit({ key: w.keyText, start: w.start, end: w.end, n: acc.n, total: acc.total, firing: w.firing });
    },
    ...extra,
  });

describe('aggregates', () => {
  it('folds events into a fresh accumulator', () => {
    const h = new Harness(sum());
    assert.deepEqual(h.decode(h.create()), { n: 0, total: 0, seen: [] });
    const { acc, rejected, logs, metrics: m } = h.fold([{ x: 1 }, { x: 2.5 }]);
    assert.deepEqual(h.decode(acc), { n: 2, total: 3.5, seen: [0, 1] });
    assert.deepEqual(rejected, []);
    assert.equal(logs.length, 2);
    assert.deepEqual(m.counters, { added: 2 });
  });

  it('leaves the accumulator unchanged by a rejected event, even one changed in place', () => {
    const h = new Harness(sum());
    const {
      acc,
      rejected,
      logs,
      metrics: m,
    } = h.fold([{ x: 1 }, { x: 'no' }, { x: 2 }, 'not json', { x: 4 }, { y: 1 }]);
    assert.deepEqual(h.decode(acc), { n: 3, total: 7, seen: [0, 2, 4] });
    assert.deepEqual(rejected, [
      { index: 1, reason: 'x is not a number: "no"' },
      { index: 3, reason: rejected[1].reason },
      { index: 5, reason: 'x is not a number: undefined' },
    ]);
    assert.match(rejected[1].reason, /^the value is not JSON/);
    // Restoring replays the accepted events without logging or counting them again.
    assert.equal(logs.length, 6);
    assert.deepEqual(m.counters, { added: 6 });
  });

  it('folds each event into its slot, keeping untouched slots as they are', () => {
    const h = new Harness(sum());
    const fresh = h.create();
    const other = h.fold([{ x: 100 }]).acc;
    const { accumulators, rejected } = h.add(
      [fresh, other, fresh],
      [{ x: 1 }, { x: 2 }, { x: 'bad' }, { x: 3 }],
      [0, 1, 1, 0],
    );
    assert.deepEqual(
      accumulators.map((a) => h.decode(a)),
      [
        { n: 2, total: 4, seen: [0, 3] },
        { n: 2, total: 102, seen: [0, 1] },
        { n: 0, total: 0, seen: [] },
      ],
    );
    assert.deepEqual(accumulators[2], fresh);
    assert.deepEqual(
      rejected.map((r) => r.index),
      [2],
    );
  });

  it('handles an empty batch', () => {
    const h = new Harness(sum());
    const acc = h.fold([{ x: 1 }]).acc;
    assert.deepEqual(h.add([acc], [], []).accumulators, [acc]);
  });

  it('merges accumulators', () => {
    const h = new Harness(sum());
    const merged = h.merge(h.fold([{ x: 1 }]).acc, h.fold([{ x: 2 }, { x: 3 }]).acc);
    assert.deepEqual(h.decode(merged), { n: 3, total: 6, seen: [0, 0, 1] });
    const noMerge = new Harness(sum({ merge: undefined }));
    assert.throws(() => noMerge.merge(noMerge.create(), noMerge.create()), { name: 'Failed', message: /no merge/ });
  });

  it('finishes windows: output keyed by the window, at its last millisecond', () => {
    const h = new Harness(sum());
    const acc = h.fold([{ x: 5 }]).acc;
    const r = h.finish([
      { acc, start: 0, end: 1000, key: 'u1' },
      { acc, start: 1000, end: 2000, key: null, firing: 2 },
      { acc, start: -(2 ** 63), end: -(2 ** 63), key: 'min' },
    ]);
    assert.deepEqual(r.json, [
      { key: 'u1', start: 0, end: 1000, n: 1, total: 5, firing: 0 },
      { key: '', start: 1000, end: 2000, n: 1, total: 5, firing: 2 },
      { key: 'min', start: -(2 ** 63), end: -(2 ** 63), n: 1, total: 5, firing: 0 },
    ]);
    assert.deepEqual(r.keys, ['u1', null, 'min']);
    assert.deepEqual(
      r.events.map((e) => e.timestampBigInt),
      [999n, 1999n, -(2n ** 63n)],
    );
  });

  it('lets finish override key and timestamp, and fails the call when it throws', () => {
    const h = new Harness(
      sum({
        finish(acc, w, out) {
          if (acc.total < 0) throw new RangeError('negative');
          out.emit(String(acc.total), { key: 'total', timestamp: w.start });
        },
      }),
    );
    const r = h.finish(h.fold([{ x: 5 }]).acc, { start: 10, end: 20, key: 'k' });
    assert.deepEqual([r.values, r.keys, r.timestamps], [['5'], ['total'], [10]]);
    assert.throws(() => h.finish(h.fold([{ x: -1 }]).acc, { start: 0, end: 5 }), {
      name: 'Failed',
      message: 'finish() of the window [0, 5): RangeError: negative',
    });
  });

  it('runs tumbling windows from end to end', () => {
    const h = new Harness(sum());
    const at = (key, timestamp, x) => event({ x }, { key, timestamp });
    const r = h.tumbling(
      [at('a', 5, 1), at('b', 1500, 2), at('a', 999, 3), at('a', 1000, 4), at('b', 1700, 'x'), at('c', 3000, 'y')],
      1000,
    );
    assert.deepEqual(
      r.json.map(({ key, start, total, n }) => [key, start, n, total]),
      [
        ['a', 0, 2, 4],
        ['a', 1000, 1, 4],
        ['b', 1000, 1, 2],
        ['c', 3000, 0, 0], // its only event was rejected: the host fires it all the same
      ],
    );
    assert.deepEqual(r.timestamps, [999, 1999, 1999, 3999]);
    assert.deepEqual(
      r.rejected.map((x) => x.index),
      [4, 5],
    );
  });

  it("encodes accumulators with the aggregate's own encode and decode", () => {
    const count = aggregator({
      create: () => 0n,
      add: (n) => n + 1n,
      merge: (a, b) => a + b,
      finish: (n, w, out) => out.emit({ count: Number(n) }),
      encode(n) {
        const b = new Uint8Array(8);
        new DataView(b.buffer).setBigUint64(0, n, true);
        return b;
      },
      decode: (b) => new DataView(b.buffer, b.byteOffset, b.byteLength).getBigUint64(0, true),
    });
    const h = new Harness(count);
    const { acc } = h.fold(['a', 'b', 'c']);
    assert.deepEqual(acc, new Uint8Array([3, 0, 0, 0, 0, 0, 0, 0]));
    assert.equal(h.decode(h.merge(acc, acc)), 6n);
    assert.deepEqual(h.finish(acc).json, [{ count: 3 }]);
  });

  it('keeps a primitive accumulator as it was when an event is rejected', () => {
    const h = new Harness(
      aggregator({
        create: () => 0,
        add(total, e) {
          if (e.json < 0) throw new Error('negative');
          return total + e.json;
        },
        finish: (total, w, out) => out.emit(total),
      }),
    );
    const { acc, rejected } = h.fold([1, -5, 2]);
    assert.equal(h.decode(acc), 3);
    assert.deepEqual(rejected, [{ index: 1, reason: 'Error: negative' }]);
  });

  it('fails the batch when a replayed event is refused: add must be deterministic', () => {
    let calls = 0;
    const h = new Harness(
      aggregator({
        create: () => ({ n: 0 }),
        add(acc, e) {
          calls += 1;
          if (e.index === 1 || calls === 3) throw new Reject('flaky');
          acc.n += 1;
        },
        finish: () => {},
      }),
    );
    assert.throws(() => h.fold(['a', 'b']), { name: 'Failed', message: /must be deterministic/ });
  });

  it('refuses an accumulator with no JSON form', () => {
    const h = new Harness(aggregator({ create: () => undefined, add() {}, finish() {} }));
    assert.throws(() => h.create(), {
      name: 'Failed',
      message: /create\(\): TypeError: the accumulator undefined has no JSON form/,
    });
  });
});
