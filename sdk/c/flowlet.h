// flowlet.h: the C SDK of flowlet operators (WebAssembly components of flowlet:operator@0.2.0).
//
// You write a few functions (see "Your functions" below); flowlet.c implements the WIT exports,
// hides the column layout of a batch behind events and an output builder, and gives you a JSON
// reader and writer. The same code runs natively under flowlet_testing.h for unit tests.
//
// Build (one world per component; the processor world is the default):
//   clang --target=wasm32-wasi -mexec-model=reactor -O2 -Igen -I<sdk> [-DFLOWLET_WORLD_STATEFUL |
//     -DFLOWLET_WORLD_AGGREGATOR] op.c <sdk>/flowlet.c gen/<world>.c gen/<world>_component_type.o
// where gen/ comes from `flowlet sdk c-bindings --world processor|stateful-processor|aggregator`.
//
// Lifetimes: everything the SDK hands you (events, their JSON, state values, windows) is valid
// until your function returns, except the config, which lives as long as the instance.
// Nothing you get from the SDK needs freeing, except what a function says is malloc'd.
//
// Copyright: part of flowlet, under the license of the flowlet repository.

#ifndef FLOWLET_H
#define FLOWLET_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// The contract this SDK implements: the WIT package flowlet:operator@0.2.0.
#define FLOWLET_CONTRACT_VERSION "0.2.0"

#if defined(__GNUC__) || defined(__clang__)
#define FLOWLET_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define FLOWLET_PRINTF(f, a)
#endif

// What your functions return.
enum {
  FLOWLET_OK = 0,
  // The event is bad: it meets the operator's `on-error` policy; the rest of the batch goes on.
  // Return it through flowlet_reject / flowlet_reject_event, which record the reason.
  FLOWLET_REJECTED = 1,
  // The operator cannot go on with this batch (flowlet_fail): the host treats it like a trap.
  FLOWLET_FAILED = 2,
  // From flowlet_init only (flowlet_invalid_config): the configuration is unusable.
  FLOWLET_INVALID_CONFIG = 3,
};

typedef int64_t flowlet_timestamp;  // milliseconds since the Unix epoch

// A borrowed byte string (not NUL-terminated).
typedef struct flowlet_bytes {
  const uint8_t *ptr;
  size_t len;
} flowlet_bytes;

// ---------------------------------------------------------------------------------------------
// Growing buffers

typedef struct flowlet_buf {
  uint8_t *ptr;  // malloc'd; free with flowlet_buf_free
  size_t len, cap;
} flowlet_buf;

void flowlet_buf_reserve(flowlet_buf *b, size_t extra);
void flowlet_buf_append(flowlet_buf *b, const void *data, size_t n);
void flowlet_buf_append_str(flowlet_buf *b, const char *s);
void flowlet_buf_printf(flowlet_buf *b, const char *fmt, ...) FLOWLET_PRINTF(2, 3);
void flowlet_buf_free(flowlet_buf *b);

// ---------------------------------------------------------------------------------------------
// JSON reader: values are views into JSON text, validated once (RFC 8259 strictly: no NaN or
// Infinity, no trailing garbage, UTF-8 checked, \u escapes with surrogate pairs, numbers beyond
// the range of a double refused, at most 127 nested arrays/objects — serde_json's rules). Looking
// up a member of an object whose name appears twice finds the LAST one (as JSON.parse, Python's
// json and serde_json do).

typedef enum flowlet_json_type {
  FLOWLET_JSON_ABSENT = 0,  // no such member/element (or a lookup on something that has none)
  FLOWLET_JSON_INVALID,     // the text is not JSON: flowlet_json_error() says why
  FLOWLET_JSON_NULL,
  FLOWLET_JSON_BOOL,
  FLOWLET_JSON_NUMBER,
  FLOWLET_JSON_STRING,
  FLOWLET_JSON_ARRAY,
  FLOWLET_JSON_OBJECT,
} flowlet_json_type;

struct flowlet__index;

typedef struct flowlet_json {
  const char *text;  // the value's JSON text, e.g. `"caf\u00e9"` or `{"a": 1}` (not NUL-terminated)
  size_t len;
  flowlet_json_type type;
  // Private.
  uint32_t _flags;
  const struct flowlet__index *_index;
} flowlet_json;

// Validate `len` bytes of JSON text (surrounding whitespace allowed): its value, or INVALID.
flowlet_json flowlet_json_parse(const void *text, size_t len);
flowlet_json flowlet_json_parse_str(const char *text);
// Why the last parse failed, serde_json style: "expected `,` or `}` at line 1 column 9".
const char *flowlet_json_error(void);

// Lookups: ABSENT when there is no such member or element, or when `v` is not an object/array;
// an INVALID `v` gives INVALID (so chains need one check at the end).
flowlet_json flowlet_json_get(flowlet_json obj, const char *name);
flowlet_json flowlet_json_get_n(flowlet_json obj, const char *name, size_t name_len);
flowlet_json flowlet_json_at(flowlet_json array, size_t i);
// A JSON pointer (RFC 6901): "" is `v` itself, "/a/0/b~1c" is v.a[0]["b/c"]; ABSENT also for a
// malformed pointer (check those with flowlet_json_pointer_valid).
flowlet_json flowlet_json_pointer(flowlet_json v, const char *pointer);
bool flowlet_json_pointer_valid(const char *pointer);
// Members of an object or elements of an array (0 for anything else).
size_t flowlet_json_count(flowlet_json v);

// Iterate over an object's members (name is a STRING value) or an array's elements (name ABSENT).
typedef struct flowlet_json_iter {
  const char *_p, *_end;
  int _object, _first;
} flowlet_json_iter;
flowlet_json_iter flowlet_json_iterate(flowlet_json container);
bool flowlet_json_next(flowlet_json_iter *it, flowlet_json *name, flowlet_json *value);

static inline bool flowlet_json_ok(flowlet_json v) { return v.type >= FLOWLET_JSON_NULL; }
static inline bool flowlet_json_is_null(flowlet_json v) { return v.type == FLOWLET_JSON_NULL; }

// Scalars: false (and *out untouched) when `v` is not of that kind.
bool flowlet_json_number(flowlet_json v, double *out);
// Integers written without fraction or exponent that fit.
bool flowlet_json_int64(flowlet_json v, int64_t *out);
bool flowlet_json_uint64(flowlet_json v, uint64_t *out);
bool flowlet_json_bool(flowlet_json v, bool *out);
static inline double flowlet_json_number_or(flowlet_json v, double otherwise) {
  double x;
  return flowlet_json_number(v, &x) ? x : otherwise;
}
// Strings, decoded to UTF-8. flowlet_json_string writes at most `cap` bytes including a NUL and
// returns the decoded length (as snprintf); (size_t)-1 when `v` is not a string. A decoded string
// may contain NUL bytes (\u0000): use the returned length.
size_t flowlet_json_string(flowlet_json v, char *buf, size_t cap);
char *flowlet_json_string_dup(flowlet_json v);  // malloc'd and NUL-terminated; NULL: not a string
bool flowlet_json_string_append(flowlet_json v, flowlet_buf *out);
bool flowlet_json_string_eq(flowlet_json v, const char *s);  // the decoded string equals `s`

// ---------------------------------------------------------------------------------------------
// JSON writer: compact JSON into a flowlet_buf, as serde_json writes it (strings escaped the same
// way; doubles in the shortest form that reads back, `1.0`, `1e20`, `1.5e-7`; non-finite
// doubles as null). Commas are placed for you.

typedef struct flowlet_json_writer {
  flowlet_buf *buf;
  // Private.
  uint32_t _depth;
  uint32_t _after_key;
  uint64_t _nonempty[2];  // bit per depth: something was written at that level
  uint64_t _array[2];     // bit per depth: an array (else an object)
} flowlet_json_writer;

void flowlet_jw_init(flowlet_json_writer *w, flowlet_buf *buf);
void flowlet_jw_object(flowlet_json_writer *w);  // {
void flowlet_jw_array(flowlet_json_writer *w);   // [
void flowlet_jw_end(flowlet_json_writer *w);     // } or ]
void flowlet_jw_key(flowlet_json_writer *w, const char *name);
void flowlet_jw_key_n(flowlet_json_writer *w, const void *name, size_t len);
void flowlet_jw_string(flowlet_json_writer *w, const char *s);
// Bytes as a string: invalid UTF-8 becomes U+FFFD (as Rust's String::from_utf8_lossy).
void flowlet_jw_string_n(flowlet_json_writer *w, const void *s, size_t len);
void flowlet_jw_number(flowlet_json_writer *w, double x);
void flowlet_jw_int(flowlet_json_writer *w, int64_t x);
void flowlet_jw_uint(flowlet_json_writer *w, uint64_t x);
void flowlet_jw_bool(flowlet_json_writer *w, bool b);
void flowlet_jw_null(flowlet_json_writer *w);
// A value read with the reader, written compactly (whitespace dropped, strings re-escaped the
// serde_json way; numbers keep their text). Writes null for ABSENT/INVALID.
void flowlet_jw_json(flowlet_json_writer *w, flowlet_json v);
// Trusted JSON text, as is.
void flowlet_jw_raw(flowlet_json_writer *w, const char *text, size_t len);

// Setting members of an existing object: flowlet_jw_object_with writes `obj` (compactly, as
// flowlet_jw_json) with each field set: a member of that name is replaced where it stands,
// otherwise the field is appended, in the order given (what serde_json's Map::insert,
// JavaScript and Python dicts do). A member whose name appears twice is written once, at its
// first position, with its last value.
typedef enum flowlet_field_kind {
  FLOWLET_FIELD_STRING,
  FLOWLET_FIELD_NUMBER,
  FLOWLET_FIELD_INT,
  FLOWLET_FIELD_BOOL,
  FLOWLET_FIELD_NULL,
  FLOWLET_FIELD_JSON,    // a value from the reader
  FLOWLET_FIELD_RAW,     // trusted JSON text (NUL-terminated)
  FLOWLET_FIELD_REMOVE,  // drop the member
} flowlet_field_kind;

typedef struct flowlet_field {
  const char *name;
  flowlet_field_kind kind;
  union {
    const char *s;
    double d;
    int64_t i;
    bool b;
    flowlet_json j;
  } as;
} flowlet_field;

#define FLOWLET_STRING(n_, v_) ((flowlet_field){(n_), FLOWLET_FIELD_STRING, {.s = (v_)}})
#define FLOWLET_NUMBER(n_, v_) ((flowlet_field){(n_), FLOWLET_FIELD_NUMBER, {.d = (v_)}})
#define FLOWLET_INT(n_, v_) ((flowlet_field){(n_), FLOWLET_FIELD_INT, {.i = (v_)}})
#define FLOWLET_BOOL(n_, v_) ((flowlet_field){(n_), FLOWLET_FIELD_BOOL, {.b = (v_)}})
#define FLOWLET_NULL(n_) ((flowlet_field){(n_), FLOWLET_FIELD_NULL, {.i = 0}})
#define FLOWLET_JSON(n_, v_) ((flowlet_field){(n_), FLOWLET_FIELD_JSON, {.j = (v_)}})
#define FLOWLET_RAW(n_, v_) ((flowlet_field){(n_), FLOWLET_FIELD_RAW, {.s = (v_)}})
#define FLOWLET_REMOVE(n_) ((flowlet_field){(n_), FLOWLET_FIELD_REMOVE, {.i = 0}})
// FLOWLET_FIELDS(a, b, …) -> the array and its length, for the `fields, n` parameters.
#define FLOWLET_FIELDS(...) \
  ((const flowlet_field[]){__VA_ARGS__}), (sizeof((flowlet_field[]){__VA_ARGS__}) / sizeof(flowlet_field))

// False (nothing written) when `obj` is not an object.
bool flowlet_jw_object_with(flowlet_json_writer *w, flowlet_json obj, const flowlet_field *fields, size_t n);

// ---------------------------------------------------------------------------------------------
// Events

typedef struct flowlet_event {
  const uint8_t *value;  // the value's bytes, usually JSON (not NUL-terminated)
  size_t value_len;
  const uint8_t *key;    // the key from the operator's `key-by:`; key_len 0: no key
  size_t key_len;
  flowlet_timestamp timestamp;
  uint32_t index;        // in the batch
  // Private.
  struct flowlet__ctx *_ctx;
  uint32_t _header_first, _header_count;
  int _json_done, _text_ok;
  flowlet_json _json;
  char *_reason;
} flowlet_event;

// The value parsed as JSON (on first use, then cached): INVALID when it is not JSON
// (flowlet_event_json_error says why).
flowlet_json flowlet_event_json(const flowlet_event *e);
const char *flowlet_event_json_error(const flowlet_event *e);
// flowlet_json_pointer(flowlet_event_json(e), pointer).
flowlet_json flowlet_event_field(const flowlet_event *e, const char *pointer);
// The value as NUL-terminated text (a copy, made on first use): NULL when it is not UTF-8.
// *len: its length (the text may hold NUL bytes).
const char *flowlet_event_text(const flowlet_event *e, size_t *len);
// The input the event came from, as the manifest's `inputs:` names it (NUL-terminated).
const char *flowlet_event_input(const flowlet_event *e);
// Headers of this event, in order.
size_t flowlet_event_header_count(const flowlet_event *e);
bool flowlet_event_header(const flowlet_event *e, size_t i, flowlet_bytes *name, flowlet_bytes *value);
bool flowlet_event_header_get(const flowlet_event *e, const char *name, flowlet_bytes *value);

// ---------------------------------------------------------------------------------------------
// Output

typedef struct flowlet_output flowlet_output;

// A new event with the current input event's key and timestamp (in flowlet_finish: the window's
// key and end - 1; in flowlet_on_timer: the timer's key and time).
void flowlet_emit(flowlet_output *out, const void *value, size_t len);
void flowlet_emit_str(flowlet_output *out, const char *value);
// An explicit key (NULL/0: no key) and timestamp.
void flowlet_emit_with(flowlet_output *out, const void *key, size_t key_len, const void *value, size_t len,
                       flowlet_timestamp timestamp);
// The input event unchanged: value, key, timestamp and headers.
void flowlet_forward(flowlet_output *out);
// A header on the event emitted last.
void flowlet_emit_header(flowlet_output *out, const char *name, const void *value, size_t len);

// Routing (contract 0.2): an operator's named outputs are its manifest's `outputs:`. A port is a
// bit mask: FLOWLET_MAIN, or flowlet_output_port("invalid") (resolve it in flowlet_init; 0 when
// the operator has no such output), or several OR'ed together (the event goes to each).
#define FLOWLET_MAIN 1u
uint32_t flowlet_output_port(const char *name);
// Send the event emitted last to `port` instead of the main output.
void flowlet_route(flowlet_output *out, uint32_t port);
// flowlet_forward, then flowlet_route.
void flowlet_forward_to(flowlet_output *out, uint32_t port);
// Where the operator sits in the topology: its name, its inputs and its named outputs.
const char *flowlet_operator_name(void);
size_t flowlet_input_count(void);
const char *flowlet_input_name(size_t i);  // NULL past the end
size_t flowlet_output_count(void);
const char *flowlet_output_name(size_t i);  // NULL past the end
// Write a value in place, then flowlet_emit_end (default key and timestamp) or flowlet_emit_end_with.
flowlet_buf *flowlet_emit_begin(flowlet_output *out);
flowlet_json_writer *flowlet_emit_json(flowlet_output *out);  // a writer on the same buffer
void flowlet_emit_end(flowlet_output *out);
void flowlet_emit_end_with(flowlet_output *out, const void *key, size_t key_len, flowlet_timestamp timestamp);
// Emit `obj` with `fields` set (flowlet_jw_object_with); false when `obj` is not an object.
bool flowlet_emit_object_with(flowlet_output *out, flowlet_json obj, const flowlet_field *fields, size_t n);

// `return flowlet_reject(out, "why %s", …);` — the current event is rejected with that reason, and
// what was emitted for it is discarded. flowlet_reject_event does the same where there is no
// output (flowlet_add).
int flowlet_reject(flowlet_output *out, const char *fmt, ...) FLOWLET_PRINTF(2, 3);
int flowlet_reject_event(const flowlet_event *e, const char *fmt, ...) FLOWLET_PRINTF(2, 3);
// `return flowlet_fail("…");`: the whole batch fails (the host handles it like a trap).
int flowlet_fail(const char *fmt, ...) FLOWLET_PRINTF(1, 2);
// `return flowlet_invalid_config("…");` from flowlet_init.
int flowlet_invalid_config(const char *fmt, ...) FLOWLET_PRINTF(1, 2);

// ---------------------------------------------------------------------------------------------
// Config: the manifest's `config:` as JSON (type NULL when the manifest has none).

typedef struct flowlet_config {
  flowlet_json json;
} flowlet_config;

// Read settings into variables, in one call:
//   return flowlet_config_read(c, FLOWLET_SETTINGS(FLOWLET_CONFIG_NUMBER("min", &min),
//                                                  FLOWLET_CONFIG_STRING("label", &label)));
// The config must be null (nothing is set) or an object of these settings; its members are read
// in order, absent ones leave their variable as it is. Otherwise FLOWLET_INVALID_CONFIG with
// "the config must be a map (min, label)", "unknown setting \"x\" (expected min, label)" or
// "`min` must be a number" (a string, a boolean, an integer, a JSON pointer).
typedef enum flowlet_setting_kind {
  FLOWLET_SETTING_NUMBER,   // double *
  FLOWLET_SETTING_INT,      // int64_t *
  FLOWLET_SETTING_BOOL,     // bool *
  FLOWLET_SETTING_STRING,   // char ** (malloc'd, NUL-terminated; the old value is not freed)
  FLOWLET_SETTING_POINTER,  // char ** (a string that is a JSON pointer)
  FLOWLET_SETTING_JSON,     // flowlet_json * (any value, null included)
} flowlet_setting_kind;

typedef struct flowlet_setting {
  const char *name;
  flowlet_setting_kind kind;
  void *target;
} flowlet_setting;

#define FLOWLET_CONFIG_NUMBER(n_, p_) ((flowlet_setting){(n_), FLOWLET_SETTING_NUMBER, (double *)(p_)})
#define FLOWLET_CONFIG_INT(n_, p_) ((flowlet_setting){(n_), FLOWLET_SETTING_INT, (int64_t *)(p_)})
#define FLOWLET_CONFIG_BOOL(n_, p_) ((flowlet_setting){(n_), FLOWLET_SETTING_BOOL, (bool *)(p_)})
#define FLOWLET_CONFIG_STRING(n_, p_) ((flowlet_setting){(n_), FLOWLET_SETTING_STRING, (char **)(p_)})
#define FLOWLET_CONFIG_POINTER(n_, p_) ((flowlet_setting){(n_), FLOWLET_SETTING_POINTER, (char **)(p_)})
#define FLOWLET_CONFIG_JSON(n_, p_) ((flowlet_setting){(n_), FLOWLET_SETTING_JSON, (flowlet_json *)(p_)})
#define FLOWLET_SETTINGS(...) \
  ((const flowlet_setting[]){__VA_ARGS__}), (sizeof((flowlet_setting[]){__VA_ARGS__}) / sizeof(flowlet_setting))

int flowlet_config_read(const flowlet_config *c, const flowlet_setting *settings, size_t n);

// The member `name` (ABSENT when missing or when the config is not an object).
flowlet_json flowlet_config_get(const flowlet_config *c, const char *name);
// The config is null or an object whose members are all in `names` (NULL-terminated);
// otherwise FLOWLET_INVALID_CONFIG with "the config must be a map (a, b)" or
// "unknown setting \"x\" (expected a, b)".
int flowlet_config_expect(const flowlet_config *c, const char *const names[]);
// Settings of a kind: FLOWLET_OK and *out set when present, FLOWLET_OK and *out untouched when
// absent, else FLOWLET_INVALID_CONFIG "`name` must be a number" (a string, a boolean, an integer);
// null is not a number (test flowlet_config_get(c, name) for null yourself if null means absent).
int flowlet_config_number(const flowlet_config *c, const char *name, double *out);
int flowlet_config_int(const flowlet_config *c, const char *name, int64_t *out);
int flowlet_config_bool(const flowlet_config *c, const char *name, bool *out);
// *out: malloc'd, NUL-terminated (the previous *out is not freed).
int flowlet_config_string(const flowlet_config *c, const char *name, char **out);

// ---------------------------------------------------------------------------------------------
// Logs and metrics

typedef enum flowlet_level {
  FLOWLET_TRACE = 0,
  FLOWLET_DEBUG,
  FLOWLET_INFO,
  FLOWLET_WARN,
  FLOWLET_ERROR,
} flowlet_level;

void flowlet_log(flowlet_level level, const char *fmt, ...) FLOWLET_PRINTF(2, 3);
#define flowlet_log_trace(...) flowlet_log(FLOWLET_TRACE, __VA_ARGS__)
#define flowlet_log_debug(...) flowlet_log(FLOWLET_DEBUG, __VA_ARGS__)
#define flowlet_log_info(...) flowlet_log(FLOWLET_INFO, __VA_ARGS__)
#define flowlet_log_warn(...) flowlet_log(FLOWLET_WARN, __VA_ARGS__)
#define flowlet_log_error(...) flowlet_log(FLOWLET_ERROR, __VA_ARGS__)
void flowlet_counter_add(const char *name, uint64_t delta);
void flowlet_gauge_set(const char *name, double value);

// ---------------------------------------------------------------------------------------------
// Keyed state and timers (the stateful-processor world; natively, flowlet_testing's store).
// State belongs to a key: flowlet_event_state(e) is that of the event's key (an unkeyed event has
// the empty key), flowlet_timer_state(t) that of a timer's key. `ttl_ms`: the entry reads as
// absent that long (processing time) after the write.

typedef struct flowlet_state {
  const uint8_t *key;
  size_t key_len;
} flowlet_state;

typedef enum flowlet_time_domain {
  FLOWLET_EVENT_TIME = 0,       // fires when the watermark reaches the time
  FLOWLET_PROCESSING_TIME = 1,  // fires when the operator's clock reaches the time
} flowlet_time_domain;

typedef struct flowlet_timer {
  const uint8_t *key;
  size_t key_len;
  flowlet_time_domain domain;
  flowlet_timestamp at;
} flowlet_timer;

typedef struct flowlet_entry {
  flowlet_bytes key, value;
} flowlet_entry;

flowlet_state flowlet_event_state(const flowlet_event *e);
flowlet_state flowlet_timer_state(const flowlet_timer *t);
flowlet_state flowlet_state_of(const void *key, size_t key_len);

// Value state `name`: true and *out (valid until your function returns) when present.
bool flowlet_state_get(flowlet_state s, const char *name, flowlet_bytes *out);
void flowlet_state_put(flowlet_state s, const char *name, const void *value, size_t len);
void flowlet_state_put_ttl(flowlet_state s, const char *name, const void *value, size_t len, uint64_t ttl_ms);
void flowlet_state_delete(flowlet_state s, const char *name);
// Conveniences: a little-endian u64 (0 when absent), JSON (get: ABSENT, INVALID or the value).
uint64_t flowlet_state_get_u64(flowlet_state s, const char *name);
void flowlet_state_put_u64(flowlet_state s, const char *name, uint64_t value);
flowlet_json flowlet_state_get_json(flowlet_state s, const char *name);
void flowlet_state_put_json(flowlet_state s, const char *name, flowlet_json value);  // compact text
// Map state `name`: ordered by the bytes of the map key.
bool flowlet_state_map_get(flowlet_state s, const char *name, const void *map_key, size_t map_key_len,
                           flowlet_bytes *out);
void flowlet_state_map_put(flowlet_state s, const char *name, const void *map_key, size_t map_key_len,
                           const void *value, size_t len);
void flowlet_state_map_put_ttl(flowlet_state s, const char *name, const void *map_key, size_t map_key_len,
                               const void *value, size_t len, uint64_t ttl_ms);
void flowlet_state_map_delete(flowlet_state s, const char *name, const void *map_key, size_t map_key_len);
// Entries with start <= map key < end (end_len 0: unbounded), in order, at most `limit`; *entries
// valid until your function returns. Returns their number.
size_t flowlet_state_map_range(flowlet_state s, const char *name, const void *start, size_t start_len,
                               const void *end, size_t end_len, uint32_t limit, const flowlet_entry **entries);

// Have flowlet_on_timer called for the key when `domain`'s time reaches `at` (once per
// key, domain and time).
void flowlet_timer_register(flowlet_state s, flowlet_time_domain domain, flowlet_timestamp at);
void flowlet_timer_cancel(flowlet_state s, flowlet_time_domain domain, flowlet_timestamp at);
flowlet_timestamp flowlet_watermark(void);  // the operator's watermark
flowlet_timestamp flowlet_now(void);        // the operator's processing time

// ---------------------------------------------------------------------------------------------
// Aggregates (the aggregator world): the host keeps one accumulator per (key, window) as bytes.
// Define `const size_t flowlet_accumulator_size = sizeof(struct your_acc);` for a fixed-size
// accumulator (the SDK checks sizes and hands you `data` aligned for any type), or 0 for one of
// varying size (then resize `data` with flowlet_acc_resize and set `len`; e.g. JSON text).

typedef struct flowlet_acc {
  void *data;  // aligned; len bytes
  size_t len;
  // Private.
  size_t _cap;
} flowlet_acc;

extern const size_t flowlet_accumulator_size;
void flowlet_acc_resize(flowlet_acc *acc, size_t len);  // new bytes are zero
void flowlet_acc_set(flowlet_acc *acc, const void *bytes, size_t len);

typedef struct flowlet_window {
  flowlet_timestamp start, end;  // [start, end)
  const uint8_t *key;            // empty for a window over all events
  size_t key_len;
  uint32_t firing;               // 0 on time; 1, 2, … for updates by late events
} flowlet_window;

// ---------------------------------------------------------------------------------------------
// Your functions.
//
// Every world:
//   int flowlet_init(const flowlet_config *config);     // FLOWLET_OK or flowlet_invalid_config(…)
// processor and stateful-processor:
//   int flowlet_process(const flowlet_event *e, flowlet_output *out);
// stateful-processor (-DFLOWLET_WORLD_STATEFUL):
//   int flowlet_on_timer(const flowlet_timer *t, flowlet_output *out);
// aggregator (-DFLOWLET_WORLD_AGGREGATOR), plus flowlet_accumulator_size:
//   int flowlet_create(flowlet_acc *acc);  // the empty accumulator (acc: zeroed, fixed size or 0)
//   int flowlet_add(flowlet_acc *acc, const flowlet_event *e);  // fold in place; a rejected event
//                                                 // leaves the accumulator as it was (the SDK restores it)
//   int flowlet_merge(flowlet_acc *a, const flowlet_acc *b);   // a := a + b
//   int flowlet_finish(const flowlet_window *w, const flowlet_acc *acc, flowlet_output *out);

int flowlet_init(const flowlet_config *config);
int flowlet_process(const flowlet_event *e, flowlet_output *out);
int flowlet_on_timer(const flowlet_timer *t, flowlet_output *out);
int flowlet_create(flowlet_acc *acc);
int flowlet_add(flowlet_acc *acc, const flowlet_event *e);
int flowlet_merge(flowlet_acc *a, const flowlet_acc *b);
int flowlet_finish(const flowlet_window *w, const flowlet_acc *acc, flowlet_output *out);

// ---------------------------------------------------------------------------------------------
// Internals shared by flowlet.c, its Wasm glue and flowlet_testing.c. Not API.

// Same layout as the bindings' string/list<u8> records (checked in the glue).
typedef struct flowlet__str {
  uint8_t *ptr;
  size_t len;
} flowlet__str;
typedef struct flowlet__header {
  uint32_t event;
  flowlet__str name, value;
} flowlet__header;
typedef struct flowlet__rejection {
  uint32_t event;
  flowlet__str reason;
} flowlet__rejection;

// An input batch, column-wise (borrowed).
typedef struct flowlet__batch {
  const uint8_t *values;
  size_t values_len;
  const uint32_t *value_ends;
  const uint8_t *keys;
  size_t keys_len;
  const uint32_t *key_ends;
  const int64_t *timestamps;
  size_t n;
  const flowlet__header *headers;
  size_t headers_len;
} flowlet__batch;

struct flowlet_output {
  flowlet_buf values, keys;
  uint32_t *value_ends, *key_ends;
  int64_t *timestamps;
  size_t n, cap;
  flowlet__header *headers;
  size_t headers_len, headers_cap;
  flowlet__rejection *rejected;
  size_t rejected_len, rejected_cap;
  // Route masks up to the last event routed elsewhere than the main output (none: all main).
  uint32_t *routes;
  size_t routes_len, routes_cap;
  // The event (or window, timer) being handled: defaults and what a rejection discards.
  const flowlet_event *current;
  const uint8_t *default_key;
  size_t default_key_len;
  int64_t default_timestamp;
  size_t mark_n, mark_values, mark_keys, mark_headers;
  char *reason;
  int emitting;
  size_t emit_start;
  flowlet_json_writer writer;
  const flowlet__batch *input;
};

void flowlet__output_init(flowlet_output *out, size_t events_hint, size_t bytes_hint);
void flowlet__output_free(flowlet_output *out);
const char *flowlet__error(void);  // message of the last FAILED/INVALID_CONFIG
int flowlet__init(const char *config, size_t len);  // takes a copy of the config text
// The setup, before flowlet__init: copies of the operator's name and its inputs' and outputs'.
void flowlet__setup(const flowlet__str *operator_name, const flowlet__str *inputs, size_t n_inputs,
                    const flowlet__str *outputs, size_t n_outputs);
// The routes of `out` for its n events (padded with FLOWLET_MAIN; none when all go there).
void flowlet__finish_routes(flowlet_output *out);
// `origin`: the index of the input the batch came from.
int flowlet__process(const flowlet__batch *in, flowlet_output *out, uint32_t origin);
int flowlet__timers(const flowlet_timer *timers, size_t n, flowlet_output *out);
int flowlet__agg_create(flowlet_buf *acc);
// Fold `in` into packed accumulators; out_bytes/out_ends: malloc'd; rejections into `rej`.
int flowlet__agg_add(const uint8_t *accs, size_t accs_len, const uint32_t *ends, size_t slots_n,
                     const flowlet__batch *in, const uint32_t *slots, size_t slots_len, flowlet_buf *out_bytes,
                     uint32_t **out_ends, flowlet_output *rej);
int flowlet__agg_merge(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len, flowlet_buf *out);
int flowlet__agg_finish(const int64_t *starts, const int64_t *ends, const uint8_t *keys, size_t keys_len,
                        const uint32_t *key_ends, const uint8_t *accs, size_t accs_len, const uint32_t *acc_ends,
                        const uint32_t *firings, size_t n, flowlet_output *out);

// The host: WIT imports in a component, an in-memory store natively (flowlet_testing.c).
void flowlet__host_log(flowlet_level level, const char *msg, size_t len);
void flowlet__host_counter_add(const char *name, uint64_t delta);
void flowlet__host_gauge_set(const char *name, double value);
bool flowlet__host_value_get(flowlet_state s, const char *name, flowlet__str *out);  // out malloc'd
void flowlet__host_value_put(flowlet_state s, const char *name, const void *v, size_t len, const uint64_t *ttl);
void flowlet__host_value_delete(flowlet_state s, const char *name);
bool flowlet__host_map_get(flowlet_state s, const char *name, const void *k, size_t klen, flowlet__str *out);
void flowlet__host_map_put(flowlet_state s, const char *name, const void *k, size_t klen, const void *v, size_t len,
                           const uint64_t *ttl);
void flowlet__host_map_delete(flowlet_state s, const char *name, const void *k, size_t klen);
// Entries malloc'd as an array of (key, value) flowlet__str pairs, each malloc'd.
size_t flowlet__host_map_range(flowlet_state s, const char *name, const void *start, size_t slen, const void *end,
                               size_t elen, uint32_t limit, flowlet__str **pairs);
void flowlet__host_timer(flowlet_state s, flowlet_time_domain d, flowlet_timestamp at, bool cancel);
flowlet_timestamp flowlet__host_watermark(void);
flowlet_timestamp flowlet__host_now(void);

#ifdef __cplusplus
}
#endif

#endif  // FLOWLET_H
