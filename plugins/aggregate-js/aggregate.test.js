// Unit tests of aggregate.js under `node --test`, through the SDK's harness (no Wasm): the cases
// of plugins/aggregate/src/lib.rs.
import assert from 'node:assert/strict';
import { it } from 'node:test';

import { Harness, event } from '../../sdk/js/testing.js';
import { aggregate } from './aggregate.js';

it('averages per window and rejects bad events', () => {
  const h = new Harness(aggregate, { function: 'avg', field: '/amount' });
  const { acc, rejected } = h.fold([
    '{"amount": 1}',
    '{"amount": 2}',
    '{"amount": "x"}',
    '{}',
    '{"amount": null}',
    'nope',
  ]);
  assert.deepEqual(
    rejected.map((r) => r.reason),
    ['/amount is not a number: "x"', 'no field /amount', '/amount is not a number: null', rejected[3].reason],
  );
  assert.match(rejected[3].reason, /^the value is not JSON/);
  const r = h.finish(acc, { start: 0, end: 1000, key: 'k' });
  assert.deepEqual(r.values, ['{"key":"k","start":0,"end":1000,"avg":1.5,"count":2}']);
  assert.deepEqual([r.keys, r.timestamps], [['k'], [999]]);
});

it('writes count once, and output names cannot collide', () => {
  const h = new Harness(aggregate, { function: 'count' });
  const r = h.finish(h.fold(['{}', 'not even JSON']).acc, { start: 5, end: 10, key: 'k', firing: 2 });
  assert.deepEqual(r.values, ['{"key":"k","start":5,"end":10,"count":2,"firing":2}']);
  for (const output of ['count', 'key', 'start', 'end', 'firing']) {
    assert.throws(() => new Harness(aggregate, { function: 'sum', field: '/x', output }), {
      name: 'InvalidConfig',
      message: `\`output: ${output}\` would collide with the \`${output}\` field every result carries; choose another name`,
    });
  }
});

it('renames the result, and writes non-finite numbers as null', () => {
  const h = new Harness(aggregate, { function: 'min', field: '/a/0', output: 'lowest' });
  assert.deepEqual(h.finish(h.fold(['{"a":[3]}', '{"a":[-2.5]}']).acc).json, [
    { key: '', start: 0, end: 1000, lowest: -2.5, count: 2 },
  ]);
  assert.deepEqual(h.finish(h.create()).json, [{ key: '', start: 0, end: 1000, lowest: null, count: 0 }]);
});

it('needs a field for everything but count, and a known function', () => {
  for (const [config, want] of [
    [{ function: 'sum' }, '`sum` needs a `field` (a JSON pointer to a number, e.g. /amount)'],
    [{ function: 'median', field: '/x' }, '`function` must be one of count, sum, avg, min, max'],
    [{ function: 'sum', field: 'x' }, /^`field`: `x` is not a JSON pointer/],
    [{ function: 'sum', field: '/x', extra: 1 }, "unknown setting 'extra' (expected function, field, output)"],
    [[1], 'the config must be a map: {function: count|sum|avg|min|max, field: /pointer}'],
  ]) {
    assert.throws(() => new Harness(aggregate, config), { name: 'InvalidConfig', message: want });
  }
});

it('merges sessions', () => {
  const h = new Harness(aggregate, { function: 'max', field: '/x' });
  const m = h.merge(h.fold(['{"x": 5}']).acc, h.fold(['{"x": 9}', '{"x": 1}']).acc);
  assert.deepEqual(h.decode(m), { count: 3, sum: 15, min: 1, max: 9 });
  assert.deepEqual(h.finish(m).json[0], { key: '', start: 0, end: 1000, max: 9, count: 3 });
});

it('sums tumbling windows per key', () => {
  const h = new Harness(aggregate, { function: 'sum', field: '/amount' });
  const click = (user, timestamp, amount) => event({ user, amount }, { key: user, timestamp });
  const r = h.tumbling(
    [click('u1', 100, 1.5), click('u2', 200, 2), click('u1', 900, 3), click('u1', 1200, 4), click('u2', 300, 'x')],
    1000,
  );
  assert.deepEqual(r.json, [
    { key: 'u1', start: 0, end: 1000, sum: 4.5, count: 2 },
    { key: 'u2', start: 0, end: 1000, sum: 2, count: 1 },
    { key: 'u1', start: 1000, end: 2000, sum: 4, count: 1 },
  ]);
  assert.deepEqual(r.rejected, [{ index: 4, reason: '/amount is not a number: "x"' }]);
});

it('refuses a corrupt accumulator', () => {
  const h = new Harness(aggregate, { function: 'count' });
  assert.throws(() => h.add([new Uint8Array(3)], ['{}'], [0]), {
    name: 'Failed',
    message: 'Error: corrupt accumulator',
  });
});
