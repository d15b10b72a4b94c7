// Types of @flowlet/sdk (index.js): flowlet operators in JavaScript.

/** The contract version (WIT package flowlet:operator) this SDK implements. */
export const CONTRACT: '0.2.0';

/** Where the operator sits in the topology (set by the host before `init`). */
export const setup: { operator: string; inputs: string[]; outputs: string[] };

/** Milliseconds since the Unix epoch: a Number, or a BigInt for the exact i64. */
export type Timestamp = number | bigint;

/** Bytes, or a string written as UTF-8. */
export type Bytes = Uint8Array | string;

export interface Header {
  name: string;
  value: Uint8Array;
}

/** Refuses the event being handled: it meets the operator's `on-error` policy with `reason`. */
export class Reject extends Error {
  constructor(reason: string);
  name: 'Reject';
}

/** Refuses the configuration (throw it from `init`); the message names the setting. */
export class InvalidConfig extends Error {
  constructor(message: string);
  name: 'InvalidConfig';
}

/** The operator cannot go on: fails the whole call (the host treats it like a crash). */
export class Failed extends Error {
  constructor(message: string);
  name: 'Failed';
}

/** One input event. Valid during the call that handles it: copy what you keep. */
export class Event {
  /** The index of the event in its batch. */
  readonly index: number;
  /** The input the event came from, as the manifest's `inputs:` names it. */
  readonly input: string;
  /** The raw value (usually JSON), a view into the batch. */
  readonly value: Uint8Array;
  /** The value as text; rejects the event when it is not UTF-8. */
  readonly text: string;
  /** The value parsed as JSON, on first use, then kept; rejects the event when it is not JSON. */
  readonly json: any;
  /** The value as a JSON object; any other value rejects the event ("the value is not a JSON object"). */
  readonly object: Record<string, any>;
  /** The key (from the operator's `key-by:`), or null when the event has none. */
  readonly key: Uint8Array | null;
  readonly keyText: string | null;
  /** Event time in ms (exact up to 2^53; `timestampBigInt` is the exact i64). */
  readonly timestamp: number;
  readonly timestampBigInt: bigint;
  /** This event's headers. */
  readonly headers: readonly Header[];
  /** The keyed state of this event's key (stateful-processor only). */
  readonly state: KeyState;
  /** The timers of this event's key (stateful-processor only). */
  readonly timers: Timers;
}

export interface EmitOptions {
  /** A string, bytes, or null for no key. Default: the input event's (or timer's, window's) key. */
  key?: Bytes | null;
  /** Default: the input event's timestamp (a timer's time, a window's end - 1). */
  timestamp?: Timestamp;
  headers?: ReadonlyArray<{ name: string; value: Bytes }>;
  /** A named output (one of the manifest's `outputs:`, or `main`), or several. */
  to?: string | ReadonlyArray<string>;
}

/** Where an operator puts the events it emits. */
export interface Output {
  /**
   * Emits an event: a string is written as UTF-8 text as it is, a Uint8Array as its bytes, any
   * other value as compact JSON.
   */
  emit(value: unknown, options?: EmitOptions): void;
  /** Passes the input event on unchanged: value, key, timestamp and headers (not in onTimer/finish). */
  forward(options?: { to?: string | ReadonlyArray<string> }): void;
}

/** The keyed state of one key: value state and ordered map state, kept by the host. */
export class KeyState {
  readonly key: Uint8Array;
  /** Value state `name`, or undefined. */
  get(name: string): Uint8Array | undefined;
  getText(name: string): string | undefined;
  getJson(name: string): any;
  /** Reads as absent `ttl` ms of processing time after this write (default: kept until deleted). */
  put(name: string, value: Bytes, ttl?: number): void;
  putJson(name: string, value: unknown, ttl?: number): void;
  delete(name: string): void;
  mapGet(name: string, mapKey: Bytes): Uint8Array | undefined;
  mapPut(name: string, mapKey: Bytes, value: Bytes, ttl?: number): void;
  mapDelete(name: string, mapKey: Bytes): void;
  /** `[key, value]` entries with `start <= key < end` in byte order (`end` empty: unbounded), at most `limit`. */
  mapRange(name: string, start?: Bytes, end?: Bytes, limit?: number): Array<[Uint8Array, Uint8Array]>;
}

export type TimeDomain = 'event-time' | 'processing-time';

/** The timers of one key, and the operator's clocks. */
export class Timers {
  readonly key: Uint8Array;
  /** Calls `onTimer` for this key once the watermark (or the clock) reaches `at`. */
  register(at: Timestamp, domain?: TimeDomain): void;
  cancel(at: Timestamp, domain?: TimeDomain): void;
  /** The operator's watermark in ms. */
  watermark(): number;
  /** The operator's processing time in ms. */
  now(): number;
}

/** A timer that fired. */
export class Timer {
  /** The timer's key (empty for unkeyed events). */
  readonly key: Uint8Array;
  readonly keyText: string;
  readonly domain: TimeDomain;
  readonly at: number;
  readonly state: KeyState;
  readonly timers: Timers;
}

/** A window that fired: `[start, end)`. */
export class Window {
  readonly start: number;
  readonly end: number;
  /** The window's key (empty for a window over all events). */
  readonly key: Uint8Array;
  readonly keyText: string;
  /** 0 when it fires on time; 1, 2, … for updates by late events. */
  readonly firing: number;
}

/** The operator's `config:` from the manifest (`{}` when absent). */
export type Config = any;

export interface ProcessorDefinition {
  /** Once per instance, before any event; throw InvalidConfig to refuse the config. */
  init?(config: Config): void;
  /** Every event: emit zero or more events, or throw to reject it. */
  process(event: Event, out: Output): void;
}

export interface StatefulDefinition extends ProcessorDefinition {
  /** Timers that fire, in time order; output defaults to the timer's key and time. */
  onTimer?(timer: Timer, out: Output): void;
}

export interface AggregateDefinition<Acc> {
  init?(config: Config): void;
  /** The accumulator of an empty window. */
  create(): Acc;
  /** Fold an event in: return the new accumulator, or undefined after changing `acc` in place. */
  add(acc: Acc, event: Event): Acc | void;
  /** Combine the accumulators of two sessions an event bridges. */
  merge?(a: Acc, b: Acc): Acc;
  /** Emit the result of a window; output defaults to the window's key and `end - 1`. */
  finish(acc: Acc, window: Window, out: Output): void;
  /** The accumulator's bytes (default: JSON). Give both encode and decode, or neither. */
  encode?(acc: Acc): Uint8Array;
  decode?(bytes: Uint8Array): Acc;
}

/** The export of the `processor` world (`export const handler = processor({...})`). */
export interface Handler {
  init(config: string): void;
  process(input: unknown): unknown;
}

/** The export of the `stateful-processor` world (`export const statefulHandler = ...`). */
export interface StatefulHandler extends Handler {
  onTimer(fired: unknown): unknown;
}

/** The export of the `aggregator` world (`export const aggregate = aggregator({...})`). */
export interface AggregateHandler {
  init(config: string): void;
  createAccumulator(): Uint8Array;
  add(accumulators: unknown, input: unknown, slots: Uint32Array): unknown;
  merge(a: Uint8Array, b: Uint8Array): Uint8Array;
  finish(fired: unknown): unknown;
}

export function processor<D extends ProcessorDefinition>(definition: D & ThisType<D>): Handler;
export function statefulProcessor<D extends StatefulDefinition>(definition: D & ThisType<D>): StatefulHandler;
export function aggregator<Acc, D extends AggregateDefinition<Acc> = AggregateDefinition<Acc>>(
  definition: D & AggregateDefinition<Acc> & ThisType<D>,
): AggregateHandler;

/** Structured logging into the host's log. */
export const log: {
  trace(message: unknown): void;
  debug(message: unknown): void;
  info(message: unknown): void;
  warn(message: unknown): void;
  error(message: unknown): void;
};

/** Operator metrics, exported by the host. */
export const metrics: {
  /** Adds `delta` (default 1) to a monotonic counter. */
  counterAdd(name: string, delta?: number | bigint): void;
  gaugeSet(name: string, value: number): void;
};

/**
 * `given` checked against `defaults`: every key must be one of the defaults' and have its type
 * (a default of null takes anything); absent keys take the default. Throws InvalidConfig.
 */
export function settings<T extends Record<string, unknown>>(given: Config, defaults: T): T;

/** A JSON pointer (RFC 6901), e.g. `/user/id`; throws TypeError for other text. */
export class Pointer {
  constructor(text: string);
  readonly text: string;
  readonly tokens: readonly string[];
  /** The value the pointer names in a parsed JSON document, or undefined. */
  find(doc: unknown): unknown;
  toString(): string;
}

/** A timestamp as the i64 BigInt the contract carries (2^63, Number(i64::MAX), maps back to it). */
export function toTimestamp(t: Timestamp): bigint;

/** Binds the host's interfaces (the component entry and the test harness do it). */
export function bind(host: { log: unknown; metrics: unknown; state?: unknown; timers?: unknown }): void;

/** On an exported handler: its world and definition (for the harness). */
export const DEFINITION: unique symbol;
