// Types of @flowlet/sdk/testing (testing.js): operators in-process under `node --test`.

import type { AggregateHandler, Handler, StatefulHandler, KeyState, TimeDomain, Timestamp } from './index.js';

/** An input event with a key, timestamp or headers. */
export interface TestEvent {
  readonly value: unknown;
  readonly key: string | Uint8Array | null;
  readonly timestamp: Timestamp | undefined;
  readonly headers: ReadonlyArray<{ name: string; value: string | Uint8Array }>;
}

/**
 * An input event: a string is the value's text as it is, a Uint8Array its bytes, any other value
 * is written as JSON. Timestamps default to 0, 1, 2, … across the calls of a harness.
 */
export function event(
  value: unknown,
  options?: {
    key?: string | Uint8Array | null;
    timestamp?: Timestamp;
    headers?: ReadonlyArray<{ name: string; value: string | Uint8Array }>;
  },
): TestEvent;

export interface OutputEvent {
  value: Uint8Array;
  key: Uint8Array | null;
  timestamp: number;
  timestampBigInt: bigint;
  headers: Array<{ name: string; value: Uint8Array }>;
}

export interface Rejection {
  /** The index of the input event. */
  index: number;
  reason: string;
}

export interface Recorded {
  logs: Array<{ level: 'trace' | 'debug' | 'info' | 'warn' | 'error'; message: string }>;
  metrics: { counters: Record<string, number>; gauges: Record<string, number> };
}

/** What one call produced. */
export class Result {
  events: OutputEvent[];
  rejected: Rejection[];
  /** One route mask per event (empty: all to the main output). */
  routes: number[];
  /** The events sent to `output` (`main` or a named output). */
  on(output?: string): OutputEvent[];
  logs: Recorded['logs'];
  metrics: Recorded['metrics'];
  /** The values as text. */
  readonly values: string[];
  /** The values parsed as JSON. */
  readonly json: any[];
  /** The keys as text (null: no key). */
  readonly keys: Array<string | null>;
  readonly timestamps: number[];
}

export interface FiredWindow {
  acc: Uint8Array;
  start?: Timestamp;
  end?: Timestamp;
  key?: string | Uint8Array | null;
  firing?: number;
}

/**
 * An operator driven by a test, through the same export the component has: `new Harness(exported,
 * config)` calls `init` (throwing InvalidConfig or Failed as the host would refuse to start).
 */
export class Harness {
  constructor(
    handler: Handler | StatefulHandler | AggregateHandler,
    config?: unknown,
    options?: { inputs?: string[]; outputs?: string[] },
  );
  readonly kind: 'processor' | 'stateful-processor' | 'aggregator';

  /** One batch through `process`. */
  process(events: ReadonlyArray<unknown>, options?: { input?: string }): Result;
  /** Advance the watermark and fire the event-time timers due (stateful-processor). */
  advanceWatermark(t: Timestamp): Result;
  /** Set the processing-time clock (TTLs expire by it) and fire the processing-time timers due. */
  setProcessingTime(t: Timestamp): Result;
  /** The timers waiting to fire, in time order. */
  timers(): Array<{ key: string; domain: TimeDomain; at: number }>;
  /** The keyed state of `key` (null: unkeyed events), to read or seed. */
  state(key: string | Uint8Array | null): KeyState;

  /** A fresh accumulator, encoded (aggregator). */
  create(): Uint8Array;
  /** One `add` call: event `i` into `accs[slots[i]]`. */
  add(
    accs: ReadonlyArray<Uint8Array>,
    events: ReadonlyArray<unknown>,
    slots: ReadonlyArray<number>,
  ): { accumulators: Uint8Array[]; rejected: Rejection[] } & Recorded;
  /** Fold events into one accumulator (default: a fresh one). */
  fold(events: ReadonlyArray<unknown>, acc?: Uint8Array): { acc: Uint8Array; rejected: Rejection[] } & Recorded;
  merge(a: Uint8Array, b: Uint8Array): Uint8Array;
  /** An encoded accumulator, decoded as the aggregate does. */
  decode(acc: Uint8Array): any;
  /** Finish windows (defaults: [0, 1000), no key, firing 0), or one accumulator in `window`. */
  finish(windows: ReadonlyArray<FiredWindow>): Result;
  finish(acc: Uint8Array, window?: Omit<FiredWindow, 'acc'>): Result;
  /** Tumbling windows of `size` ms over the events, from the first add to the last finish. */
  tumbling(events: ReadonlyArray<unknown>, size: number): Result;
}
