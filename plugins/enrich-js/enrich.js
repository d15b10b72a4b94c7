// enrich (JavaScript): the sample JSON enrich-and-filter operator, the same as plugins/enrich
// (Rust), plugins/enrich-c and plugins/enrich-python — see plugins/enrich/src/lib.rs.

const REGIONS = new Map([
  ...['at', 'be', 'de', 'dk', 'es', 'fi', 'fr', 'ie', 'it', 'nl', 'pl', 'pt', 'se'].map((c) => [c, 'eu']),
  ...['ca', 'mx', 'us'].map((c) => [c, 'na']),
  ...['au', 'cn', 'in', 'jp', 'kr', 'sg'].map((c) => [c, 'apac']),
]);

const settings = { 'min-amount': 0, 'high-amount': 1000 };
const decoder = new TextDecoder();
const encoder = new TextEncoder();

// ASCII case only, as in the other languages.
const asciiLower = (s) => s.replace(/[A-Z]/g, (c) => c.toLowerCase());

function region(country) {
  return typeof country === 'string' ? REGIONS.get(asciiLower(country)) ?? 'other' : 'other';
}

function concat(parts, length) {
  const out = new Uint8Array(length);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const invalid = (message) => ({ tag: 'invalid-config', val: message });

export const handler = {
  init(config) {
    const given = JSON.parse(config);
    if (given === null) return;
    if (typeof given !== 'object' || Array.isArray(given)) {
      throw invalid('the config must be a map (min-amount, high-amount)');
    }
    for (const [name, value] of Object.entries(given)) {
      if (!(name in settings)) throw invalid(`unknown setting "${name}" (expected min-amount, high-amount)`);
      if (typeof value !== 'number') throw invalid(`\`${name}\` must be a number`);
      settings[name] = value;
    }
  },

  process(input) {
    const low = settings['min-amount'];
    const high = settings['high-amount'];
    const values = [], valueEnds = [], keys = [], keyEnds = [], timestamps = [], rejected = [];
    let start = 0, kstart = 0, vlen = 0, klen = 0;
    for (let i = 0; i < input.valueEnds.length; i++) {
      const end = input.valueEnds[i], kend = input.keyEnds[i];
      const raw = input.values.subarray(start, end);
      const key = input.keys.subarray(kstart, kend);
      start = end;
      kstart = kend;
      let event;
      try {
        event = JSON.parse(decoder.decode(raw));
      } catch {
        event = undefined;
      }
      if (event === null || typeof event !== 'object' || Array.isArray(event)) {
        rejected.push({ event: i, reason: 'the value is not a JSON object' });
        continue;
      }
      const amount = event.amount;
      if (typeof amount !== 'number') {
        rejected.push({ event: i, reason: '`amount` is missing or not a number' });
        continue;
      }
      if (amount < low) continue;
      event.tier = amount >= high ? 'high' : 'low';
      event.region = region(event.country);
      const bytes = encoder.encode(JSON.stringify(event));
      values.push(bytes);
      vlen += bytes.length;
      valueEnds.push(vlen);
      keys.push(key);
      klen += key.length;
      keyEnds.push(klen);
      timestamps.push(input.timestamps[i]);
    }
    return {
      events: { values: concat(values, vlen), valueEnds, keys: concat(keys, klen), keyEnds, timestamps, headers: [] },
      rejected,
    };
  },
};
