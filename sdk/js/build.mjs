#!/usr/bin/env node
// Build a flowlet operator written with @flowlet/sdk into a WebAssembly component:
//
//   node build.mjs OPERATOR.js --world processor|stateful-processor|aggregator --wit WITDIR -o OUT.wasm
//
// 1. writes an entry module that imports the world's host interfaces (log, metrics; state and
//    timers for stateful-processor), binds them to the SDK, and re-exports the operator's export
//    (`handler`, `statefulHandler` or `aggregate`);
// 2. bundles entry, operator and SDK into one ES module with rolldown (componentize-js resolves
//    relative imports only, not packages);
// 3. makes the component with componentize-js, without the HTTP features flowlet does not grant.
//
// Tools: $COMPONENTIZE_JS, else `componentize-js` on PATH, else node_modules/.bin; $ROLLDOWN,
// else the rolldown installed beside componentize-js, else node_modules/.bin.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const WORLDS = {
  processor: { export: 'handler', imports: ['log', 'metrics'], factory: 'processor' },
  'stateful-processor': {
    export: 'statefulHandler',
    imports: ['log', 'metrics', 'state', 'timers'],
    factory: 'statefulProcessor',
  },
  aggregator: { export: 'aggregate', imports: ['log', 'metrics'], factory: 'aggregator' },
};
const CONTRACT = '0.2.0';
const SDK = path.dirname(fileURLToPath(import.meta.url));
const USAGE = `usage: node build.mjs OPERATOR.js --world ${Object.keys(WORLDS).join('|')} --wit WITDIR -o OUT.wasm [--keep]`;

class UsageError extends Error {}

function parseArgs(argv) {
  const args = { keep: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new UsageError(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--world') args.world = value();
    else if (a === '--wit') args.wit = value();
    else if (a === '-o' || a === '--out') args.out = value();
    else if (a === '--keep') args.keep = true;
    else if (a === '-h' || a === '--help') throw new UsageError('');
    else if (a.startsWith('-')) throw new UsageError(`unknown option ${a}`);
    else if (args.operator === undefined) args.operator = a;
    else throw new UsageError(`one operator module only (got ${args.operator} and ${a})`);
  }
  if (!args.operator) throw new UsageError('which operator module?');
  if (!WORLDS[args.world]) throw new UsageError(`--world must be one of ${Object.keys(WORLDS).join(', ')}`);
  if (!args.wit) throw new UsageError('--wit names the directory of the WIT files (flowlet sdk wit -o wit)');
  if (!args.out) throw new UsageError('-o names the component to write');
  return args;
}

function isFile(p) {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

function onPath(name) {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir && isFile(path.join(dir, name))) return path.join(dir, name);
  }
  return null;
}

/** `node_modules/.bin/NAME` in `from` or a directory above it. */
function inNodeModules(name, from) {
  for (let dir = path.resolve(from); ; dir = path.dirname(dir)) {
    const p = path.join(dir, 'node_modules', '.bin', name);
    if (isFile(p)) return p;
    if (path.dirname(dir) === dir) return null;
  }
}

function componentizeJs() {
  const p = process.env.COMPONENTIZE_JS || onPath('componentize-js') || inNodeModules('componentize-js', process.cwd());
  if (!p) {
    throw new Error(
      'componentize-js not found: set COMPONENTIZE_JS, put it on PATH (scripts/toolchains install js), or npm install @bytecodealliance/componentize-js@0.23.0',
    );
  }
  return p.includes(path.sep) ? path.resolve(p) : (onPath(p) ?? p);
}

/** rolldown comes with componentize-js (a dependency of jco): look beside it, link by link. */
function rolldown(componentize) {
  if (process.env.ROLLDOWN) return process.env.ROLLDOWN;
  let p = componentize;
  for (let hops = 0; p && hops < 8; hops++) {
    const beside = path.join(path.dirname(p), 'rolldown');
    if (isFile(beside)) return beside;
    const found = inNodeModules('rolldown', path.dirname(p));
    if (found) return found;
    let link;
    try {
      link = fs.readlinkSync(p);
    } catch {
      break;
    }
    p = path.resolve(path.dirname(p), link);
  }
  const local = inNodeModules('rolldown', process.cwd());
  if (local) return local;
  throw new Error('rolldown not found: set ROLLDOWN, or install it beside componentize-js (npm install rolldown)');
}

/** Run a tool; what it prints on stdout is shown only when it fails (stderr always). */
function run(cmd, args, what) {
  try {
    execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  } catch (e) {
    if (e.stdout?.length) process.stderr.write(e.stdout);
    throw new Error(
      `${what} failed (${path.basename(cmd)} ${e.status === null ? `killed by ${e.signal}` : `exit ${e.status}`})`,
    );
  }
}

/** The module that binds the host's interfaces to the SDK, evaluated before the operator's. */
function hostModule(world) {
  const names = WORLDS[world].imports;
  const lines = names.map((n) => `import * as ${n} from 'flowlet:operator/${n}@${CONTRACT}';`);
  lines.push(`import { bind } from ${JSON.stringify(pathToFileURL(path.join(SDK, 'index.js')).pathname)};`);
  lines.push(`bind({ ${names.join(', ')} });`);
  return lines.join('\n') + '\n';
}

function entryModule(world, operator) {
  const name = WORLDS[world].export;
  return `import './host.js';\nexport { ${name} } from ${JSON.stringify(operator)};\n`;
}

function rolldownConfig(dir) {
  return `export default {
  input: ${JSON.stringify(path.join(dir, 'entry.js'))},
  external: /^flowlet:operator\\//,
  platform: 'neutral',
  // Packages the operator imports from node_modules (ES modules or CommonJS) are bundled.
  resolve: { mainFields: ['module', 'main'], conditionNames: ['import', 'module', 'default'] },
  onLog(level, log, handler) {
    if (log.code === 'UNRESOLVED_IMPORT') {
      handler('error', { ...log, message: log.message + ' (a component cannot load packages at run time: install the package so that it is bundled, or import a relative path)' });
    } else {
      handler(level, log);
    }
  },
  output: { file: ${JSON.stringify(path.join(dir, 'bundle.js'))}, format: 'esm' },
};
`;
}

/**
 * The operator module must export what the world needs. Checked by loading it under node (as
 * its unit tests do); a module node cannot load is left to the bundler to judge.
 */
async function checkExport(operator, world) {
  const { export: name, factory } = WORLDS[world];
  let module;
  try {
    module = await import(pathToFileURL(operator).href);
  } catch {
    return;
  }
  const handler = module[name];
  if (handler === undefined) {
    const kinds = Object.entries(WORLDS).filter(([, w]) => module[w.export] !== undefined);
    const hint = kinds.length ? ` (it exports \`${kinds[0][1].export}\`: build it with --world ${kinds[0][0]})` : '';
    throw new Error(
      `${operator} does not export \`${name}\`, which the ${world} world needs: export const ${name} = ${factory}({ ... })${hint}`,
    );
  }
  const kind = handler?.[Symbol.for('flowlet.sdk.definition')]?.kind;
  if (kind !== undefined && kind !== world) {
    throw new Error(
      `\`${name}\` of ${operator} is a ${kind} operator, not a ${world} one: build it with --world ${kind}`,
    );
  }
}

async function build(args) {
  const operator = path.resolve(args.operator);
  if (!isFile(operator)) throw new Error(`${args.operator}: no such file`);
  const wit = path.resolve(args.wit);
  if (!fs.existsSync(path.join(wit, 'worlds.wit'))) {
    throw new Error(`${args.wit} has no worlds.wit (flowlet sdk wit -o ${args.wit})`);
  }
  await checkExport(operator, args.world);
  const componentize = componentizeJs();
  const bundler = rolldown(componentize);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flowlet-js-'));
  let ok = false;
  try {
    fs.writeFileSync(path.join(dir, 'host.js'), hostModule(args.world));
    fs.writeFileSync(path.join(dir, 'entry.js'), entryModule(args.world, operator));
    fs.writeFileSync(path.join(dir, 'rolldown.config.mjs'), rolldownConfig(dir));
    run(bundler, ['--config', path.join(dir, 'rolldown.config.mjs')], 'bundling with rolldown');
    const out = path.resolve(args.out);
    fs.mkdirSync(path.dirname(out), { recursive: true });
    run(
      componentize,
      [
        path.join(dir, 'bundle.js'),
        '--wit',
        wit,
        '--world-name',
        args.world,
        '-d',
        'http',
        '-d',
        'fetch-event',
        '-o',
        out,
      ],
      'componentize-js',
    );
    ok = true;
    const size = (fs.statSync(out).size / 1e6).toFixed(1);
    const shown = path.relative(process.cwd(), out).startsWith('..') ? out : path.relative(process.cwd(), out);
    console.error(`build.mjs: wrote ${shown} (${args.world}, ${size} MB)`);
  } finally {
    if (ok && !args.keep) fs.rmSync(dir, { recursive: true, force: true });
    else console.error(`build.mjs: the generated entry and bundle are in ${dir}`);
  }
}

try {
  await build(parseArgs(process.argv.slice(2)));
} catch (e) {
  if (e instanceof UsageError) {
    if (e.message) console.error(`build.mjs: ${e.message}`);
    console.error(USAGE);
    process.exit(2);
  }
  console.error(`build.mjs: ${e.message}`);
  process.exit(1);
}
