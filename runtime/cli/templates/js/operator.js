// {{name}}: adds "label": <config.label> to every JSON object event; anything else is rejected
// (and meets the operator's `on-error` policy).
import { processor, settings } from '#flowlet/sdk';

let label = 'hello';

export const handler = processor({
  // Once per instance, with the manifest's `config:` ({} when there is none).
  init(config) {
    label = settings(config, { label: 'hello' }).label; // `label` only, a string
  },

  // Every event: `event.object` is the value as a JSON object, or rejects the event.
  process(event, out) {
    out.emit({ ...event.object, label });
  },
});
