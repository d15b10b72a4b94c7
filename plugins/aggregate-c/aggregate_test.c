// The aggregate operator natively, through the SDK's harness: `make test-native`. The same cases
// as plugins/aggregate's Rust tests, and the output byte for byte.
#include <math.h>
#include <string.h>

#include "flowlet_testing.h"

typedef struct {
  uint64_t count;
  double sum, min, max;
} stats;

int main(void) {
  flowlet_harness *h = flowlet_harness_new("{\"function\": \"avg\", \"field\": \"/amount\"}");
  FLOWLET_CHECK(flowlet_harness_init_error(h) == NULL);
  flowlet_buf acc, only_good;
  const flowlet_result *r =
      flowlet_harness_fold(h, FLOWLET_VALUES("{\"amount\": 1}", "{\"amount\": 2}", "{\"amount\": \"x\"}", "{}", "{\"amount\":",
                                             "{\"amount\": {\"a\": [1, 2]}}"),
                           &acc);
  FLOWLET_CHECK_INT(r->rejected_n, 4);
  FLOWLET_CHECK(r->rejected[0] == 2 && r->rejected[1] == 3 && r->rejected[2] == 4 && r->rejected[3] == 5);
  FLOWLET_CHECK_STR(r->reasons[0], "/amount is not a number: \"x\"");
  FLOWLET_CHECK_STR(r->reasons[1], "no field /amount");
  FLOWLET_CHECK_STR(r->reasons[2], "event is not the expected JSON: EOF while parsing a value at line 1 column 10");
  FLOWLET_CHECK_STR(r->reasons[3], "/amount is not a number: {\"a\": [1, 2]}");
  // A rejected event leaves the accumulator as it was.
  flowlet_harness_fold(h, FLOWLET_VALUES("{\"amount\": 1}", "{\"amount\": 2}"), &only_good);
  FLOWLET_CHECK(acc.len == 32 && only_good.len == 32 && memcmp(acc.ptr, only_good.ptr, 32) == 0);
  stats s;
  memcpy(&s, acc.ptr, sizeof s);
  FLOWLET_CHECK(s.count == 2 && s.sum == 3 && s.min == 1 && s.max == 2);
  r = flowlet_harness_finish(h, &acc, 0, 1000, "k", 0);
  FLOWLET_CHECK_STR(r->values[0], "{\"key\":\"k\",\"start\":0,\"end\":1000,\"avg\":1.5,\"count\":2}");
  FLOWLET_CHECK_INT(r->timestamps[0], 999);
  FLOWLET_CHECK_STR(r->keys[0], "k");
  r = flowlet_harness_finish(h, &acc, 0, 1000, "k", 3);
  FLOWLET_CHECK_STR(r->values[0], "{\"key\":\"k\",\"start\":0,\"end\":1000,\"avg\":1.5,\"count\":2,\"firing\":3}");
  flowlet_buf_free(&acc);
  flowlet_buf_free(&only_good);
  flowlet_harness_free(h);

  // The empty accumulator; non-finite results are null; count is written once.
  h = flowlet_harness_new("{\"function\": \"min\", \"field\": \"/x\", \"output\": \"lowest\"}");
  flowlet_harness_fold(h, NULL, 0, &acc);
  memcpy(&s, acc.ptr, sizeof s);
  FLOWLET_CHECK(s.count == 0 && s.sum == 0 && s.min == INFINITY && s.max == -INFINITY);
  r = flowlet_harness_finish(h, &acc, 10, 20, "", 0);
  FLOWLET_CHECK_STR(r->values[0], "{\"key\":\"\",\"start\":10,\"end\":20,\"lowest\":null,\"count\":0}");
  flowlet_buf_free(&acc);
  flowlet_harness_free(h);
  h = flowlet_harness_new("{\"function\": \"count\"}");
  flowlet_harness_fold(h, FLOWLET_VALUES("{}", "not even JSON"), &acc);
  r = flowlet_harness_finish(h, &acc, 0, 1000, "k", 0);
  FLOWLET_CHECK_STR(r->values[0], "{\"key\":\"k\",\"start\":0,\"end\":1000,\"count\":2}");
  flowlet_buf_free(&acc);
  flowlet_harness_free(h);

  // Merging sessions.
  h = flowlet_harness_new("{\"function\": \"max\", \"field\": \"/x\"}");
  flowlet_buf a, b, m;
  flowlet_harness_fold(h, FLOWLET_VALUES("{\"x\": 5}"), &a);
  flowlet_harness_fold(h, FLOWLET_VALUES("{\"x\": 9}", "{\"x\": 1e-3}"), &b);
  flowlet_harness_merge(h, &a, &b, &m);
  r = flowlet_harness_finish(h, &m, 0, 1000, "k", 0);
  FLOWLET_CHECK_STR(r->values[0], "{\"key\":\"k\",\"start\":0,\"end\":1000,\"max\":9.0,\"count\":3}");
  flowlet_buf_free(&a);
  flowlet_buf_free(&b);
  flowlet_buf_free(&m);
  flowlet_harness_free(h);

  // Sums over tumbling windows per key.
  h = flowlet_harness_new("{\"function\": \"sum\", \"field\": \"/amount\"}");
  r = flowlet_harness_tumbling(h,
                               FLOWLET_EVENTS({"{\"amount\": 0.1}", "u1", 5}, {"{\"amount\": 0.2}", "u1", 900},
                                              {"{\"amount\": 1}", "u2", 10}, {"{\"amount\": 2}", "u1", 1000}),
                               1000);
  FLOWLET_CHECK_INT(r->n, 3);
  FLOWLET_CHECK_STR(r->values[0], "{\"key\":\"u1\",\"start\":0,\"end\":1000,\"sum\":0.30000000000000004,\"count\":2}");
  FLOWLET_CHECK_STR(r->values[1], "{\"key\":\"u2\",\"start\":0,\"end\":1000,\"sum\":1.0,\"count\":1}");
  FLOWLET_CHECK_STR(r->values[2], "{\"key\":\"u1\",\"start\":1000,\"end\":2000,\"sum\":2.0,\"count\":1}");
  flowlet_harness_free(h);

  // Bad configs, with the Rust aggregate's messages.
  struct {
    const char *config, *error;
  } bad[] = {
      {"{\"function\": \"sum\"}", "`Sum` needs a `field` (a JSON pointer to a number, e.g. /amount)"},
      {"{\"function\": \"sum\", \"field\": \"/x\", \"output\": \"count\"}",
       "`output: count` would collide with the `count` field every result carries; choose another name"},
      {"{\"function\": \"count\", \"output\": \"key\"}",
       "`output: key` would collide with the `key` field every result carries; choose another name"},
      {"{\"function\": \"sum\", \"field\": \"/x\", \"output\": \"firing\"}",
       "`output: firing` would collide with the `firing` field every result carries; choose another name"},
      {"{\"function\": \"median\"}", "unknown variant `median`, expected one of `count`, `sum`, `avg`, `min`, `max`"},
      {"{\"function\": \"sum\", \"feld\": \"/x\"}", "unknown field `feld`, expected one of `function`, `field`, `output`"},
      {"{\"field\": \"/x\"}", "missing field `function`"},
      {"{\"function\": 5}", "invalid type: integer `5`, expected string or map"},
      {"{\"function\": \"sum\", \"field\": 1.5}", "invalid type: floating point `1.5`, expected a string"},
      {"{\"function\": \"sum\", \"field\": \"x\"}",
       "`field`: `x` is not a JSON pointer: it must be empty or start with `/` (e.g. `/user/id`), and `~` may only be "
       "followed by 0 or 1"},
      {"null", "invalid type: unit value, expected struct Settings"},
      {"[1]", "invalid type: sequence, expected struct Settings"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    h = flowlet_harness_new(bad[i].config);
    FLOWLET_CHECK_INT(flowlet_harness_init_status(h), FLOWLET_INVALID_CONFIG);
    FLOWLET_CHECK_STR(flowlet_harness_init_error(h), bad[i].error);
    flowlet_harness_free(h);
  }
  return flowlet_test_summary();
}
