// dedupe (JavaScript): the idempotent consumer — pass the first event of each id, drop the events
// whose id was seen within a TTL — the same as plugins/dedupe (Rust). Run it with `key-by` on the
// id; the host keeps one small entry per id in keyed state and forgets it after the TTL.
//
//   key-by: /id
//   config: {ttl: 10m}
//
// The number of dropped duplicates is the operator metric `duplicates`.
import { InvalidConfig, Reject, metrics, settings, statefulProcessor } from '../../sdk/js/index.js';

const UNITS = new Map([
  ...['ms', 'msec', 'millis'].map((u) => [u, 1]),
  ...['s', 'sec', 'secs', 'second', 'seconds'].map((u) => [u, 1000]),
  ...['m', 'min', 'mins', 'minute', 'minutes'].map((u) => [u, 60_000]),
  ...['h', 'hr', 'hrs', 'hour', 'hours'].map((u) => [u, 3_600_000]),
  ...['d', 'day', 'days'].map((u) => [u, 86_400_000]),
  ...['w', 'week', 'weeks'].map((u) => [u, 604_800_000]),
]);
const PART = /\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*/y;

/** Milliseconds of a duration like 10m, 1h30m, 1.5s or 500ms (as humantime reads it). */
export function duration(text) {
  if (text.trim() === '') throw new Error('value was empty');
  let ms = 0;
  for (let at = 0; at < text.length; at = PART.lastIndex) {
    PART.lastIndex = at;
    const [, n, unit] = PART.exec(text) ?? [];
    if (n === undefined) throw new Error(`expected number at ${at}`);
    if (unit === '') throw new Error(`time unit needed, for example ${n}sec or ${n}ms`);
    if (!UNITS.has(unit)) {
      throw new Error(`unknown time unit ${JSON.stringify(unit)}, supported units: ms, s, m, h, d, w`);
    }
    ms += Number(n) * UNITS.get(unit);
  }
  return Math.floor(ms);
}

const SEEN = new Uint8Array([1]);
let ttl;

export const statefulHandler = statefulProcessor({
  init(config) {
    const given = settings(config, { ttl: '' });
    if (given.ttl === '') throw new InvalidConfig('`ttl` is missing (write e.g. 10m)');
    try {
      ttl = duration(given.ttl);
    } catch (e) {
      throw new InvalidConfig(`\`ttl\` ${JSON.stringify(given.ttl)}: ${e.message} (write e.g. 10m)`);
    }
    if (ttl === 0) throw new InvalidConfig('`ttl` must be longer than 0');
  },

  process(event, out) {
    if (event.key === null) throw new Reject('the event has no key; give the dedupe operator `key-by:` the id field');
    const state = event.state;
    if (state.get('seen') !== undefined) {
      metrics.counterAdd('duplicates');
      return;
    }
    state.put('seen', SEEN, ttl);
    out.forward();
  },
});
