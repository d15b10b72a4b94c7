// enrich (JavaScript): the sample JSON enrich-and-filter operator, the same as plugins/enrich
// (Rust), plugins/enrich-c and plugins/enrich-python — see plugins/enrich/src/lib.rs.
import { processor, Reject, settings } from '../../sdk/js/index.js';

const REGIONS = new Map([
  ...['at', 'be', 'de', 'dk', 'es', 'fi', 'fr', 'ie', 'it', 'nl', 'pl', 'pt', 'se'].map((c) => [c, 'eu']),
  ...['ca', 'mx', 'us'].map((c) => [c, 'na']),
  ...['au', 'cn', 'in', 'jp', 'kr', 'sg'].map((c) => [c, 'apac']),
]);
// ASCII case only, as in the other languages.
const asciiLower = (s) => s.replace(/[A-Z]/g, (c) => c.toLowerCase());
let limits;

export const handler = processor({
  init(config) {
    limits = settings(config, { 'min-amount': 0, 'high-amount': 1000 });
  },

  process(event, out) {
    const order = event.object;
    if (typeof order.amount !== 'number') throw new Reject('`amount` is missing or not a number');
    if (order.amount < limits['min-amount']) return;
    order.tier = order.amount >= limits['high-amount'] ? 'high' : 'low';
    order.region = (typeof order.country === 'string' && REGIONS.get(asciiLower(order.country))) || 'other';
    out.emit(order);
  },
});
