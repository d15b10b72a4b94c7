// flowlet_testing.h: unit tests of a C operator without Wasm. Compile your operator, flowlet.c and
// flowlet_testing.c with the host compiler, plus a test file with main():
//
//   cc -g -Wall -Wextra -I<sdk> -o op_test op.c op_test.c <sdk>/flowlet.c <sdk>/flowlet_testing.c -lm
//
// The operator runs through the same SDK code as in a component; only the host differs: state,
// timers and clocks live in memory here, logs and metrics are recorded.
//
//   flowlet_harness *h = flowlet_harness_new("{\"label\": \"x\"}");
//   const flowlet_result *r = flowlet_harness_process(h, FLOWLET_VALUES("{\"a\":1}", "[1]"));
//   FLOWLET_CHECK_STR(r->values[0], "{\"a\":1,\"label\":\"x\"}");
//   FLOWLET_CHECK(r->rejected_n == 1 && r->rejected[0] == 1);
//   flowlet_harness_free(h);
//   return flowlet_test_summary();   // prints "N passed, N failed"

#ifndef FLOWLET_TESTING_H
#define FLOWLET_TESTING_H

#include "flowlet.h"

#ifdef __cplusplus
extern "C" {
#endif

// An input event: `value` (NUL-terminated), `key` (NULL: no key), timestamp.
typedef struct flowlet_test_event {
  const char *value;
  const char *key;
  flowlet_timestamp timestamp;
} flowlet_test_event;

typedef struct flowlet_test_header {
  uint32_t event;  // index of the output event
  char *name;
  char *value;     // NUL-terminated copy
  size_t value_len;
} flowlet_test_header;

// What one call produced (owned by the harness, valid until flowlet_harness_free).
typedef struct flowlet_result {
  int status;         // FLOWLET_OK, or FLOWLET_FAILED: the batch failed and `error` says why
  const char *error;  // NULL when OK
  size_t n;           // output events
  char **values;      // NUL-terminated copies
  size_t *value_lens;
  char **keys;        // "" when the event has no key
  size_t *key_lens;
  flowlet_timestamp *timestamps;
  size_t headers_n;
  flowlet_test_header *headers;
  size_t rejected_n;  // rejected input events: their indexes and reasons
  uint32_t *rejected;
  char **reasons;
  uint32_t *routes;   // one route mask per output event (FLOWLET_MAIN when not routed)
} flowlet_result;

typedef struct flowlet_harness flowlet_harness;

// Run flowlet_init with `config` (JSON text; NULL: null). Never NULL: check
// flowlet_harness_init_error (NULL when init succeeded) and flowlet_harness_init_status.
// The operator is one per process (its globals, the SDK's config): a new harness re-runs
// flowlet_init, and the calls of a harness run the operator as its last init left it.
flowlet_harness *flowlet_harness_new(const char *config);
// The same, for an operator with these inputs and named outputs (the manifest's names; NULL: one
// input named "input", no named outputs).
flowlet_harness *flowlet_harness_with_setup(const char *config, const char *const *inputs, size_t n_inputs,
                                            const char *const *outputs, size_t n_outputs);
// One batch of unkeyed events from input `origin` (an index into the inputs).
const flowlet_result *flowlet_harness_process_from(flowlet_harness *h, uint32_t origin, const char *const *values,
                                                   size_t n);
const char *flowlet_harness_init_error(const flowlet_harness *h);
int flowlet_harness_init_status(const flowlet_harness *h);
void flowlet_harness_free(flowlet_harness *h);

// One batch of unkeyed events with these values, timestamped 0, 1, 2, … across calls.
const flowlet_result *flowlet_harness_process(flowlet_harness *h, const char *const *values, size_t n);
// One batch of events.
const flowlet_result *flowlet_harness_process_events(flowlet_harness *h, const flowlet_test_event *events, size_t n);
// One batch of unkeyed events with these values as bytes (NUL bytes allowed), timestamped as above.
const flowlet_result *flowlet_harness_process_bytes(flowlet_harness *h, const flowlet_bytes *values, size_t n);
#define FLOWLET_VALUES(...) ((const char *const[]){__VA_ARGS__}), (sizeof((const char *[]){__VA_ARGS__}) / sizeof(char *))
#define FLOWLET_EVENTS(...) \
  ((const flowlet_test_event[]){__VA_ARGS__}), (sizeof((flowlet_test_event[]){__VA_ARGS__}) / sizeof(flowlet_test_event))

// Clocks (stateful operators): raise the watermark (it never goes back) and fire the event-time
// timers due, or set the processing time, expire state past its TTL and fire the processing-time
// timers due; in time order, as the host would. The result holds what flowlet_on_timer emitted.
const flowlet_result *flowlet_harness_advance_watermark(flowlet_harness *h, flowlet_timestamp watermark);
const flowlet_result *flowlet_harness_set_processing_time(flowlet_harness *h, flowlet_timestamp now);

// Inspect the state of a key (key NULL: the empty key), as the operator would read it now.
bool flowlet_harness_state(flowlet_harness *h, const char *key, const char *name, flowlet_bytes *value);
bool flowlet_harness_map_state(flowlet_harness *h, const char *key, const char *name, const void *map_key,
                               size_t map_key_len, flowlet_bytes *value);
// Timers registered and not fired yet.
size_t flowlet_harness_timer_count(const flowlet_harness *h);

// What the operator logged and counted so far.
size_t flowlet_harness_log_count(const flowlet_harness *h);
const char *flowlet_harness_log(const flowlet_harness *h, size_t i, flowlet_level *level);
uint64_t flowlet_harness_counter(const flowlet_harness *h, const char *name);
bool flowlet_harness_gauge(const flowlet_harness *h, const char *name, double *value);

// Aggregates. Fold unkeyed values (timestamps 0, 1, …) into one fresh accumulator (*acc: set,
// malloc'd; free with flowlet_buf_free); the result holds the rejections.
const flowlet_result *flowlet_harness_fold(flowlet_harness *h, const char *const *values, size_t n, flowlet_buf *acc);
// Fold more values into an existing accumulator.
const flowlet_result *flowlet_harness_add(flowlet_harness *h, flowlet_buf *acc, const char *const *values, size_t n);
const flowlet_result *flowlet_harness_merge(flowlet_harness *h, const flowlet_buf *a, const flowlet_buf *b,
                                            flowlet_buf *out);
// Finish one window (key: NUL-terminated, NULL for none).
const flowlet_result *flowlet_harness_finish(flowlet_harness *h, const flowlet_buf *acc, flowlet_timestamp start,
                                             flowlet_timestamp end, const char *key, uint32_t firing);
// Events through tumbling windows of `size` ms per key, all fired at the end in (end, key) order.
const flowlet_result *flowlet_harness_tumbling(flowlet_harness *h, const flowlet_test_event *events, size_t n,
                                               flowlet_timestamp size);

// Checks: count passes and failures, print failures; flowlet_test_summary prints
// "N passed, N failed" and returns the exit status for main.
#define FLOWLET_CHECK(cond) flowlet_check((cond), #cond, __FILE__, __LINE__)
#define FLOWLET_CHECK_STR(got, want) flowlet_check_str((got), (want), #got, __FILE__, __LINE__)
#define FLOWLET_CHECK_INT(got, want) flowlet_check_int((long long)(got), (long long)(want), #got, __FILE__, __LINE__)
bool flowlet_check(bool ok, const char *what, const char *file, int line);
bool flowlet_check_str(const char *got, const char *want, const char *what, const char *file, int line);
bool flowlet_check_int(long long got, long long want, const char *what, const char *file, int line);
int flowlet_test_summary(void);

#ifdef __cplusplus
}
#endif

#endif  // FLOWLET_TESTING_H
