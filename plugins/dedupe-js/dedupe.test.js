// Unit tests of dedupe.js under `node --test`, through the SDK's harness (no Wasm): the cases of
// plugins/dedupe/src/lib.rs, and the durations the config takes.
import assert from 'node:assert/strict';
import { it } from 'node:test';

import { Harness, event } from '../../sdk/js/testing.js';
import { duration, statefulHandler } from './dedupe.js';

const keyed = (key, value) => event(value, { key });

it('drops repeats within the TTL only, and counts them', () => {
  const h = new Harness(statefulHandler, { ttl: '1s' });
  h.setProcessingTime(0);
  const r = h.process([keyed('a', '1'), keyed('b', '2'), keyed('a', '3')]);
  assert.deepEqual(r.values, ['1', '2']);
  assert.deepEqual(r.metrics.counters, { duplicates: 1 });
  h.setProcessingTime(999);
  assert.deepEqual(h.process([keyed('a', '4')]).values, []);
  h.setProcessingTime(1000);
  assert.deepEqual(h.process([keyed('a', '5')]).values, ['5']);
});

it('forwards the first event unchanged', () => {
  const h = new Harness(statefulHandler, { ttl: '10m' });
  const r = h.process([event('{"id":1}', { key: '1', timestamp: 42, headers: [{ name: 'h', value: 'v' }] })]);
  assert.deepEqual(r.values, ['{"id":1}']);
  assert.deepEqual([r.keys, r.timestamps, r.events[0].headers.map((x) => x.name)], [['1'], [42], ['h']]);
});

it('rejects events without a key', () => {
  const r = new Harness(statefulHandler, { ttl: '1m' }).process(['{"id":1}', keyed('x', '2')]);
  assert.deepEqual(r.values, ['2']);
  assert.deepEqual(r.rejected, [
    { index: 0, reason: 'the event has no key; give the dedupe operator `key-by:` the id field' },
  ]);
});

it('reads durations as humantime does', () => {
  assert.equal(duration('10m'), 600_000);
  assert.equal(duration('1h30m'), 5_400_000);
  assert.equal(duration('1h 30min 5s'), 5_405_000);
  assert.equal(duration('500ms'), 500);
  assert.equal(duration('1.5s'), 1500);
  assert.equal(duration('2d'), 172_800_000);
  assert.equal(duration('1 week'), 604_800_000);
  assert.throws(() => duration('10'), { message: 'time unit needed, for example 10sec or 10ms' });
  assert.throws(() => duration('10 parsecs'), { message: /^unknown time unit "parsecs"/ });
  assert.throws(() => duration('m10'), { message: 'expected number at 0' });
  assert.throws(() => duration(' '), { message: 'value was empty' });
});

it('refuses a bad config with the reason', () => {
  for (const [config, want] of [
    [null, '`ttl` is missing (write e.g. 10m)'],
    [{ ttl: 10 }, '`ttl` must be a string'],
    [{ ttl: '1m', x: 1 }, 'unknown setting "x" (expected ttl)'],
    [{ ttl: 'soon' }, '`ttl` "soon": expected number at 0 (write e.g. 10m)'],
    [{ ttl: '0s' }, '`ttl` must be longer than 0'],
  ]) {
    assert.throws(() => new Harness(statefulHandler, config), { name: 'InvalidConfig', message: want });
  }
});
