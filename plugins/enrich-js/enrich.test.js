// Unit tests of enrich.js under `node --test`, through the SDK's harness (no Wasm): the cases of
// plugins/enrich/src/lib.rs.
import assert from 'node:assert/strict';
import { it } from 'node:test';

import { Harness, event } from '../../sdk/js/testing.js';
import { handler } from './enrich.js';

it('filters, enriches and rejects', () => {
  const h = new Harness(handler, { 'min-amount': 100, 'high-amount': 500 });
  const r = h.process([
    '{"amount":50,"country":"DE"}',
    event('{"amount":100,"country":"us"}', { key: 'k', timestamp: 7 }),
    '{"amount":750.5,"country":"xx","tier":"old"}',
    '{"amount":"7"}',
    '[1]',
    '{"amount":500,"country":"Jp"}',
    '{"amount":100,"country":49}',
    'not json',
  ]);
  assert.deepEqual(r.json, [
    { amount: 100, country: 'us', tier: 'low', region: 'na' },
    { amount: 750.5, country: 'xx', tier: 'high', region: 'other' },
    { amount: 500, country: 'Jp', tier: 'high', region: 'apac' },
    { amount: 100, country: 49, tier: 'low', region: 'other' },
  ]);
  // Key and timestamp are kept.
  assert.deepEqual(r.keys[0], 'k');
  assert.deepEqual(r.timestamps[0], 7);
  assert.deepEqual(r.rejected, [
    { index: 3, reason: '`amount` is missing or not a number' },
    { index: 4, reason: 'the value is not a JSON object' },
    { index: 7, reason: 'the value is not a JSON object' },
  ]);
});

it('defaults to min-amount 0 and high-amount 1000', () => {
  const r = new Harness(handler, null).process(['{"amount":-1}', '{"amount":0,"country":"SE"}', '{"amount":1000}']);
  assert.deepEqual(r.json, [
    { amount: 0, country: 'SE', tier: 'low', region: 'eu' },
    { amount: 1000, tier: 'high', region: 'other' },
  ]);
});

it('refuses a bad config with the reason', () => {
  for (const [config, want] of [
    [{ min: 1 }, 'unknown setting "min" (expected min-amount, high-amount)'],
    [{ 'min-amount': '1' }, '`min-amount` must be a number'],
    [{ 'high-amount': null }, '`high-amount` must be a number'],
    [[1], 'the config must be a map (min-amount, high-amount)'],
  ]) {
    assert.throws(() => new Harness(handler, config), { name: 'InvalidConfig', message: want });
  }
});
