// build.mjs refuses what cannot become a component before it starts the slow tools (the builds
// themselves: component.test.js).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const SDK = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const WIT = path.join(SDK, '..', '..', 'wit');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flowlet-build-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

function build(source, ...args) {
  const file = path.join(dir, `op${Math.random().toString(36).slice(2)}.js`);
  fs.writeFileSync(file, source.replace('SDK', path.join(SDK, 'index.js')));
  // No tools on PATH: every refusal must come before they are needed.
  const r = spawnSync(process.execPath, [path.join(SDK, 'build.mjs'), file, ...args], {
    encoding: 'utf8',
    env: { PATH: '', COMPONENTIZE_JS: '' },
    cwd: dir,
  });
  return { status: r.status, err: r.stderr };
}

const processorModule = "import { processor } from 'SDK'; export const handler = processor({ process() {} });";

it('explains its usage', () => {
  const r = build(processorModule, '--wit', WIT, '-o', 'x.wasm');
  assert.equal(r.status, 2);
  assert.match(r.err, /--world must be one of processor, stateful-processor, aggregator/);
  assert.match(r.err, /^usage: node build.mjs OPERATOR.js/m);
  assert.match(build(processorModule, '--world', 'processor', '--wit', WIT, '--bogus').err, /unknown option --bogus/);
});

it('needs the export of the world, made for that world', () => {
  let r = build(processorModule, '--world', 'aggregator', '--wit', WIT, '-o', 'x.wasm');
  assert.equal(r.status, 1);
  assert.match(r.err, /does not export `aggregate`, .*\(it exports `handler`: build it with --world processor\)/);
  r = build(
    "import { statefulProcessor } from 'SDK'; export const handler = statefulProcessor({ process() {} });",
    '--world',
    'processor',
    '--wit',
    WIT,
    '-o',
    'x.wasm',
  );
  assert.match(r.err, /`handler` of .* is a stateful-processor operator, not a processor one/);
});

it('needs the WIT files and the tools', () => {
  assert.match(build(processorModule, '--world', 'processor', '--wit', dir, '-o', 'x.wasm').err, /has no worlds.wit/);
  const r = build(processorModule, '--world', 'processor', '--wit', WIT, '-o', path.join(dir, 'x.wasm'));
  assert.equal(r.status, 1);
  assert.match(r.err, /componentize-js not found: set COMPONENTIZE_JS/);
});
