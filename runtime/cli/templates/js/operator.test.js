// Unit tests: `node --test` runs the operator in-process through the SDK's harness, no Wasm.
import assert from 'node:assert/strict';
import { it } from 'node:test';

import { Harness, event } from '#flowlet/sdk/testing';
import { handler } from './operator.js';

it('labels JSON objects and rejects anything else', () => {
  const h = new Harness(handler, { label: 'checked' });
  const r = h.process([{ id: 1 }, [1, 2, 3], 'not JSON', event({ id: 2, label: 'old' }, { key: 'k2', timestamp: 5 })]);
  assert.deepEqual(r.json, [
    { id: 1, label: 'checked' },
    { id: 2, label: 'checked' },
  ]);
  assert.deepEqual(r.keys, [null, 'k2']); // key and timestamp are the input event's
  assert.deepEqual(r.timestamps[1], 5);
  assert.deepEqual(r.rejected, [
    { index: 1, reason: 'the value is not a JSON object' },
    { index: 2, reason: 'the value is not a JSON object' },
  ]);
});

it('labels "hello" without a config', () => {
  assert.deepEqual(new Harness(handler).process([{ id: 1 }]).json, [{ id: 1, label: 'hello' }]);
});

it('refuses unknown settings and a label that is not a string', () => {
  assert.throws(() => new Harness(handler, { lable: 'x' }), {
    name: 'InvalidConfig',
    message: 'unknown setting "lable" (expected label)',
  });
  assert.throws(() => new Harness(handler, { label: 1 }), {
    name: 'InvalidConfig',
    message: '`label` must be a string',
  });
});
