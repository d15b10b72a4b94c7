// The SDK inside a real component: build.mjs builds operators of each world, `flowlet test` runs
// them through the host, and their output must be what the harness gives for the same events.
// Needs componentize-js (scripts/toolchains install js) and a flowlet binary ($FLOWLET, or
// `flowlet` on PATH); skipped without them. About 15 s per component.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { Harness, event } from '../testing.js';

const SDK = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const WIT = path.join(SDK, '..', '..', 'wit');

function which(name) {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir && fs.existsSync(path.join(dir, name))) return path.join(dir, name);
  }
  return null;
}

const flowlet = process.env.FLOWLET || which('flowlet');
const componentize = process.env.COMPONENTIZE_JS || which('componentize-js');
const skip =
  !flowlet || !componentize || !fs.existsSync(path.join(WIT, 'worlds.wit'))
    ? 'needs componentize-js, a flowlet binary ($FLOWLET) and the repository’s wit/'
    : false;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flowlet-sdk-js-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Write `source` as an operator module beside a copy of the SDK and build it for `world`. */
function build(name, world, source) {
  const sdk = path.join(dir, 'sdk');
  if (!fs.existsSync(sdk)) {
    fs.mkdirSync(sdk);
    for (const f of ['index.js', 'testing.js', 'build.mjs', 'package.json']) {
      fs.copyFileSync(path.join(SDK, f), path.join(sdk, f));
    }
  }
  const file = path.join(dir, `${name}.js`);
  fs.writeFileSync(file, source);
  const wasm = path.join(dir, `${name}.wasm`);
  execFileSync(process.execPath, [path.join(sdk, 'build.mjs'), file, '--world', world, '--wit', WIT, '-o', wasm], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, COMPONENTIZE_JS: componentize },
  });
  return { wasm, module: file };
}

/** Run `wasm` over `lines` with `flowlet test`: its output values and its rejection reasons. */
function flowletTest(wasm, lines, args) {
  const input = path.join(dir, 'input.jsonl');
  const expect = path.join(dir, 'expected.jsonl');
  fs.writeFileSync(input, lines.join('\n') + '\n');
  const run = spawnSync(flowlet, ['test', wasm, '--input', input, '--expect', expect, '--bless', ...args], {
    encoding: 'utf8',
  });
  assert.equal(run.status, 0, run.stderr);
  const values = fs.readFileSync(expect, 'utf8').split('\n').filter(Boolean);
  // Dead letters come on stdout, one JSON document per line.
  const reasons = run.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l).error.replace(/^failed: rejected: /, ''));
  return { values, reasons };
}

const sorted = (list) => [...list].sort();

describe('components built with the SDK', () => {
  it('a processor gives the harness’s output and rejections', { skip }, async () => {
    const { wasm, module } = build(
      'proc',
      'processor',
      `import { processor, Reject, log, metrics } from './sdk/index.js';
export const handler = processor({
  init(config) { this.tag = config.tag; },
  process(event, out) {
    const v = event.json;
    log.debug('event ' + event.index);
    metrics.counterAdd('seen');
    out.emit({ first: true, i: v.i });                  // discarded when the event is rejected
    if (v.reject) throw new Reject('refused ' + v.i);
    if (v.crash) v.crash.no.such.field;                 // a TypeError rejects this event only
    if (v.big) out.emit({ big: 'x'.repeat(v.big) });
    if (v.min) out.emit({ ts: 'min' }, { timestamp: -(2n ** 63n) });
    out.emit({ ...v, tag: this.tag, text: event.text.length, key: event.key });
  },
});
`,
    );
    const lines = [
      '{"i":1}',
      '{"i":2,"reject":true}',
      '{"i":3,"crash":{}}',
      'not json',
      '{"i":4,"big":300000}',
      '{"i":5,"min":true}',
      '{"i":6,"s":"é \\" \\\\"}',
      '{"i":7}',
    ];
    const got = flowletTest(wasm, lines, ['--config', '{tag: t}']);
    const { handler } = await import(module);
    const want = new Harness(handler, { tag: 't' }).process(lines);
    assert.deepEqual(
      got.values.map((v) => JSON.parse(v)),
      want.json,
    );
    // The engines word their own errors differently (SpiderMonkey in the component, V8 here).
    const kind = (reason) => reason.split(/[:(]/)[0];
    assert.deepEqual(
      got.reasons.map(kind),
      want.rejected.map((r) => kind(r.reason)),
    );
    assert.deepEqual(got.reasons.map(kind), ['refused 2', 'TypeError', 'the value is not JSON ']);
    assert.equal(got.values.length, 12);
    assert.equal(got.reasons.length, 3);
  });

  it('a stateful processor keeps state and fires timers as in the harness', { skip }, async () => {
    const { wasm, module } = build(
      'state',
      'stateful-processor',
      `import { statefulProcessor, Reject } from './sdk/index.js';
export const statefulHandler = statefulProcessor({
  process(event, out) {
    const s = event.state;
    if (event.key === null) throw new Reject('no key');
    const n = (s.getJson('n') ?? 0) + 1;
    s.putJson('n', n);
    s.mapPut('seen', String(event.timestamp).padStart(6, '0'), event.text, 3_600_000);
    if (n === 1) s.putJson('timer', event.timestamp + 100);
    if (n === 1) event.timers.register(event.timestamp + 100);
    if (n === 3) event.timers.cancel(s.getJson('timer'));
    out.emit({ key: event.keyText, n });
  },
  onTimer(timer, out) {
    const seen = timer.state.mapRange('seen', '', '', 10).map(([k]) => new TextDecoder().decode(k));
    out.emit({ timer: timer.keyText, at: timer.at, n: timer.state.getJson('n'), seen });
  },
});
`,
    );
    const docs = [
      { k: 'a', t: 1 },
      { k: 'b', t: 2 },
      { t: 3 },
      { k: 'a', t: 4 },
      { k: 'c', t: 5 },
      { k: 'c', t: 6 },
      { k: 'c', t: 7 },
    ];
    const lines = docs.map((d) => JSON.stringify(d));
    const got = flowletTest(wasm, lines, ['--key-by', '/k', '--event-time', '/t']);
    const { statefulHandler } = await import(module);
    const h = new Harness(statefulHandler);
    const processed = h.process(docs.map((d) => event(d, { key: d.k ?? null, timestamp: d.t })));
    const fired = h.advanceWatermark(2n ** 63n - 1n);
    assert.deepEqual(
      sorted(got.values.map((v) => JSON.stringify(JSON.parse(v)))),
      sorted([...processed.values, ...fired.values]),
    );
    assert.deepEqual(got.reasons, ['no key']);
    assert.equal(fired.values.length, 2); // c's timer was cancelled
  });

  it('an aggregator gives the harness’s windows', { skip }, async () => {
    const { wasm, module } = build(
      'agg',
      'aggregator',
      `import { aggregator, Reject } from './sdk/index.js';
export const aggregate = aggregator({
  create: () => ({ n: 0, sum: 0, items: [] }),
  add(acc, event) {
    acc.n += 1;
    acc.items.push(event.json.v);
    if (typeof event.json.v !== 'number') throw new Reject('v is not a number');
    acc.sum += event.json.v;
  },
  merge: (a, b) => ({ n: a.n + b.n, sum: a.sum + b.sum, items: [...a.items, ...b.items] }),
  finish(acc, window, out) {
    out.emit({ key: window.keyText, start: window.start, end: window.end, n: acc.n, sum: acc.sum, items: acc.items.sort() });
  },
});
`,
    );
    const docs = [
      { k: 'a', t: 10, v: 1 },
      { k: 'a', t: 20, v: 'x' },
      { k: 'b', t: 30, v: 2 },
      { k: 'a', t: 900, v: 3 },
      { k: 'a', t: 1100, v: 4 },
      { k: 'b', t: 1200, v: null },
    ];
    const got = flowletTest(
      wasm,
      docs.map((d) => JSON.stringify(d)),
      ['--key-by', '/k', '--event-time', '/t', '--window', '{kind: tumbling, size: 1s}'],
    );
    const { aggregate } = await import(module);
    const want = new Harness(aggregate).tumbling(
      docs.map((d) => event(d, { key: d.k, timestamp: d.t })),
      1000,
    );
    assert.deepEqual(sorted(got.values.map((v) => JSON.stringify(JSON.parse(v)))), sorted(want.values));
    assert.deepEqual(sorted(got.reasons), sorted(want.rejected.map((r) => r.reason)));
    assert.equal(want.values.length, 4);
  });
});
