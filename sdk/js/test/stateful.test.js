// The stateful-processor world: keyed state, TTLs, map state and timers, through the harness's
// in-memory host.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { Reject, processor, statefulProcessor } from '../index.js';
import { Harness, event } from '../testing.js';

const text = (b) => (b === undefined ? undefined : new TextDecoder().decode(b));
const keyed = (key, value, timestamp = 0) => event(value, { key, timestamp });

describe('keyed state', () => {
  it('keeps value state per key', () => {
    const h = new Harness(
      statefulProcessor({
        process(e, out) {
          const n = (e.state.getJson('count') ?? 0) + 1;
          e.state.putJson('count', n);
          out.emit({ key: e.keyText, n });
        },
      }),
    );
    const r = h.process([keyed('a', '1'), keyed('b', '2'), keyed('a', '3')]);
    assert.deepEqual(r.json, [
      { key: 'a', n: 1 },
      { key: 'b', n: 1 },
      { key: 'a', n: 2 },
    ]);
    assert.equal(h.state('a').getJson('count'), 2);
    assert.equal(h.state('c').get('count'), undefined);
  });

  it('gets, puts and deletes bytes and strings, and unkeyed events share the empty key', () => {
    const h = new Harness(
      statefulProcessor({
        process(e, out) {
          const s = e.state;
          if (e.text === 'put') s.put('v', new Uint8Array([1, 2]));
          if (e.text === 'put text') s.put('v', 'héllo');
          if (e.text === 'delete') s.delete('v');
          out.emit({ bytes: Array.from(s.get('v') ?? []), text: s.getText('v') ?? null });
        },
      }),
    );
    const r = h.process(['put', 'get', 'put text', 'delete']);
    assert.deepEqual(r.json, [
      { bytes: [1, 2], text: '\u0001\u0002' },
      { bytes: [1, 2], text: '\u0001\u0002' },
      { bytes: [104, 195, 169, 108, 108, 111], text: 'héllo' },
      { bytes: [], text: null },
    ]);
    h.state(null).put('v', 'seeded');
    assert.deepEqual(h.process(['get']).json, [{ bytes: [115, 101, 101, 100, 101, 100], text: 'seeded' }]);
  });

  it('forgets entries after their TTL of processing time', () => {
    const h = new Harness(
      statefulProcessor({
        process(e, out) {
          if (e.state.get('seen') === undefined) out.forward();
          e.state.put('seen', '1', 1000);
          e.state.mapPut('m', 'k', 'v', 500);
        },
      }),
    );
    h.setProcessingTime(0);
    assert.deepEqual(h.process([keyed('a', '1'), keyed('a', '2')]).values, ['1']);
    h.setProcessingTime(500);
    assert.equal(h.state('a').mapGet('m', 'k'), undefined);
    assert.equal(text(h.state('a').get('seen')), '1');
    h.setProcessingTime(1000);
    assert.equal(h.state('a').get('seen'), undefined);
    assert.deepEqual(h.process([keyed('a', '3')]).values, ['3']);
  });

  it('keeps ordered map state and ranges over it', () => {
    const h = new Harness(
      statefulProcessor({
        process(e, out) {
          const s = e.state;
          for (const k of ['b', 'a', 'd', 'c']) s.mapPut('m', k, k.toUpperCase());
          s.mapDelete('m', 'd');
          const entries = (list) => list.map(([k, v]) => text(k) + text(v));
          out.emit({
            all: entries(s.mapRange('m')),
            from_b: entries(s.mapRange('m', 'b')),
            a_to_c: entries(s.mapRange('m', 'a', 'c')),
            first2: entries(s.mapRange('m', '', '', 2)),
            get: text(s.mapGet('m', new TextEncoder().encode('c'))),
            gone: s.mapGet('m', 'd') ?? null,
          });
        },
      }),
    );
    assert.deepEqual(h.process([keyed('k', 'x')]).json, [
      {
        all: ['aA', 'bB', 'cC'],
        from_b: ['bB', 'cC'],
        a_to_c: ['aA', 'bB'],
        first2: ['aA', 'bB'],
        get: 'C',
        gone: null,
      },
    ]);
    assert.deepEqual(h.state('other').mapRange('m'), []);
  });

  it('is only for the stateful-processor world', () => {
    const h = new Harness(processor({ process: (e) => e.state.get('x') }));
    assert.match(
      h.process(['x']).rejected[0].reason,
      /^Error: keyed state and timers are only for .*stateful-processor/,
    );
  });

  it('refuses bad TTLs, keys, values and names per event', () => {
    const h = new Harness(
      statefulProcessor({
        process(e) {
          if (e.index === 0) e.state.put('v', 'x', -1);
          if (e.index === 1) e.state.mapPut('m', 7, 'x');
          if (e.index === 2) e.state.put('v', { not: 'bytes' });
          if (e.index === 3) e.state.get(42); // would trap at the boundary: refused before
        },
      }),
    );
    assert.deepEqual(
      h.process(['0', '1', '2', '3']).rejected.map((r) => r.reason.split(':')[0]),
      ['TypeError', 'TypeError', 'TypeError', 'TypeError'],
    );
  });
});

describe('timers', () => {
  /** Emits "fired" for each timer; registers at the event's time + 10 (event and processing time). */
  const delayed = () =>
    statefulProcessor({
      process(e, out) {
        if (e.text === 'cancel') {
          e.timers.cancel(e.timestamp, 'event-time');
          return;
        }
        e.timers.register(e.timestamp + 10);
        e.timers.register(e.timestamp + 10); // twice: fires once
        e.timers.register(e.timers.now() + 100, 'processing-time');
        e.state.put('last', e.text);
        out.emit({ watermark: e.timers.watermark() });
      },
      onTimer(timer, out) {
        out.emit({ key: timer.keyText, domain: timer.domain, at: timer.at, last: timer.state.getText('last') });
        if (timer.domain === 'event-time') timer.timers.register(timer.at + 1000, 'processing-time');
      },
    });

  it('fires event-time timers when the watermark passes, in time order, with their key and time', () => {
    const h = new Harness(delayed());
    const r = h.process([keyed('b', 'x', 20), keyed('a', 'y', 5), keyed('c', 'cancel', 15)]);
    assert.deepEqual(r.json, [{ watermark: -(2 ** 63) }, { watermark: -(2 ** 63) }]);
    assert.deepEqual(
      h.timers().filter((t) => t.domain === 'event-time'),
      [
        { key: 'a', domain: 'event-time', at: 15 },
        { key: 'b', domain: 'event-time', at: 30 },
      ],
    );
    assert.deepEqual(h.advanceWatermark(14).events, []);
    const fired = h.advanceWatermark(30);
    assert.deepEqual(fired.json, [
      { key: 'a', domain: 'event-time', at: 15, last: 'y' },
      { key: 'b', domain: 'event-time', at: 30, last: 'x' },
    ]);
    // Output of a timer: the timer's key and time by default.
    assert.deepEqual(fired.keys, ['a', 'b']);
    assert.deepEqual(fired.timestamps, [15, 30]);
    assert.deepEqual(h.advanceWatermark(1000).events, []);
    assert.deepEqual(h.process([keyed('a', 'z', 40)]).json, [{ watermark: 1000 }]);
  });

  it('fires processing-time timers when the clock passes', () => {
    const h = new Harness(delayed());
    h.setProcessingTime(1);
    h.process([keyed('a', 'x', 0)]);
    assert.deepEqual(h.setProcessingTime(100).events, []);
    assert.deepEqual(h.setProcessingTime(101).json, [{ key: 'a', domain: 'processing-time', at: 101, last: 'x' }]);
    // A timer registered by a timer.
    h.advanceWatermark(10);
    assert.deepEqual(h.setProcessingTime(2000).json, [{ key: 'a', domain: 'processing-time', at: 1010, last: 'x' }]);
  });

  it('fails the call when onTimer throws: a timer has no event to reject', () => {
    const h = new Harness(
      statefulProcessor({
        process(e) {
          e.timers.register(1);
        },
        onTimer() {
          throw new Reject('nope');
        },
      }),
    );
    h.process([keyed('k', 'x')]);
    assert.throws(() => h.advanceWatermark(1), {
      name: 'Failed',
      message: 'on a event-time timer at 1 of key "k": nope',
    });
  });

  it('refuses unknown domains and non-integer times', () => {
    const h = new Harness(
      statefulProcessor({
        process(e) {
          if (e.index === 0) e.timers.register(5, 'wall-clock');
          else e.timers.register(1.5);
        },
      }),
    );
    assert.deepEqual(
      h.process(['a', 'b']).rejected.map((r) => r.reason.split(':')[0]),
      ['TypeError', 'TypeError'],
    );
    assert.deepEqual(h.timers(), []);
  });

  it('forward() needs an input event, emit() works without one', () => {
    const h = new Harness(
      statefulProcessor({
        process(e) {
          e.timers.register(1);
        },
        onTimer(t, out) {
          out.emit('ok', { key: 'other', timestamp: 99 });
          out.forward();
        },
      }),
    );
    h.process([keyed('k', 'x')]);
    assert.throws(() => h.advanceWatermark(1), { name: 'Failed', message: /forward\(\) passes on an input event/ });
  });
});
