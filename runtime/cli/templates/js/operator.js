// {{name}}: adds "label": <config.label> to every JSON object event; anything else is rejected
// (and meets the operator's `on-error` policy).

let label = 'hello';
const decoder = new TextDecoder();
const encoder = new TextEncoder();

function concat(parts, length) {
  const out = new Uint8Array(length);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export const handler = {
  init(config) {
    const settings = JSON.parse(config) ?? {};
    for (const name of Object.keys(settings)) {
      if (name !== 'label') {
        throw { tag: 'invalid-config', val: `unknown setting '${name}' (expected label)` };
      }
    }
    if (settings.label !== undefined && typeof settings.label !== 'string') {
      throw { tag: 'invalid-config', val: '`label` must be a string' };
    }
    label = settings.label ?? 'hello';
  },

  process(input) {
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
      event.label = label;
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
