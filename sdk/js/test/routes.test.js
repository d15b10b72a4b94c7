// Contract 0.2 through the harness: which input an event came from, and routing to the
// operator's named outputs.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { processor, setup } from '../index.js';
import { Harness } from '../testing.js';

const router = processor({
  process(e, out) {
    const doc = e.object;
    if (doc.amount === undefined) out.forward({ to: 'invalid' });
    else if (doc.amount > 1000) out.emit({ input: e.input, ...doc }, { to: ['large', 'audit'] });
    else if (doc.amount < 0) out.emit(doc, { to: 'nowhere' });
    else out.forward();
  },
});

describe('routes', () => {
  const options = { inputs: ['orders', 'refunds'], outputs: ['invalid', 'large', 'audit'] };

  it('sends events to named outputs and tells each event its input', () => {
    const h = new Harness(router, null, options);
    assert.deepEqual(setup.outputs, ['invalid', 'large', 'audit']);
    const r = h.process([{ id: 1 }, { id: 2, amount: 5 }, { id: 3, amount: 5000 }], { input: 'refunds' });
    const json = (events) => events.map((e) => JSON.parse(new TextDecoder().decode(e.value)));
    assert.deepEqual(json(r.on('invalid')), [{ id: 1 }]);
    assert.deepEqual(json(r.on('main')), [{ id: 2, amount: 5 }]);
    const big = { input: 'refunds', id: 3, amount: 5000 };
    assert.deepEqual(json(r.on('large')), [big]);
    assert.deepEqual(json(r.on('audit')), [big]);
    assert.deepEqual(r.routes, [2, 1, 4 | 8]);
    assert.throws(() => h.process([], { input: 'nope' }), /no input "nope"/);
  });

  it('fails a batch that routes to an undeclared output, naming it and the declared ones', () => {
    const h = new Harness(router, null, options);
    assert.throws(() => h.process([{ amount: -1 }]), /no output "nowhere".*invalid, large, audit/);
  });

  it('drops the routes of a rejected event with its events, and sends nothing when none routes', () => {
    const h = new Harness(
      processor({
        process(e, out) {
          out.forward({ to: 'side' });
          if (e.object.bad) throw new Error('bad');
        },
      }),
      null,
      { outputs: ['side'] },
    );
    const r = h.process([{ a: 1 }, { bad: true }, { a: 2 }]);
    assert.deepEqual(r.routes, [2, 2]);
    assert.deepEqual(r.rejected.map((x) => x.index), [1]);
    const plain = new Harness(processor({ process: (e, out) => out.forward() }));
    assert.deepEqual(plain.process([{ a: 1 }]).routes, []);
  });
});
