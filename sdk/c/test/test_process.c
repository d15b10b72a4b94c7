// The processor path of the C SDK: the event iterator, the output builder, rejections, config,
// logs and metrics, through the harness (and the batch entry point for headers).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flowlet_testing.h"

// The operator under test: what it does depends on the value.
static double factor = 1;
static int64_t limit = 0;
static bool loud = false;
static char *label = NULL, *field = NULL;
static flowlet_json extra;

int flowlet_init(const flowlet_config *c) {
  free(label);
  label = NULL;
  return flowlet_config_read(c, FLOWLET_SETTINGS(FLOWLET_CONFIG_NUMBER("factor", &factor), FLOWLET_CONFIG_INT("limit", &limit),
                                                 FLOWLET_CONFIG_BOOL("loud", &loud), FLOWLET_CONFIG_STRING("label", &label),
                                                 FLOWLET_CONFIG_POINTER("field", &field), FLOWLET_CONFIG_JSON("extra", &extra)));
}

int flowlet_process(const flowlet_event *e, flowlet_output *out) {
  size_t len;
  const char *text = flowlet_event_text(e, &len);
  if (!text) return flowlet_reject(out, "not UTF-8 (event %u)", e->index);
  if (len == 0) {
    flowlet_emit_str(out, "empty");
    return FLOWLET_OK;
  }
  if (!strcmp(text, "forward")) {
    flowlet_forward(out);
    return FLOWLET_OK;
  }
  if (!strcmp(text, "emit-then-reject")) {
    flowlet_emit_str(out, "discarded");
    flowlet_emit_str(out, "discarded too");
    return flowlet_reject(out, "changed my mind");
  }
  if (!strcmp(text, "reject-event")) {
    flowlet_emit_str(out, "discarded");
    return flowlet_reject_event(e, "rejected through the event");
  }
  if (!strcmp(text, "bare-reject")) return FLOWLET_REJECTED;
  if (!strcmp(text, "fail")) return flowlet_fail("cannot go on at %u", e->index);
  if (!strncmp(text, "many ", 5)) {
    int n = atoi(text + 5);
    for (int i = 0; i < n; i++) {
      flowlet_json_writer *w = flowlet_emit_json(out);
      flowlet_jw_object(w);
      flowlet_jw_key(w, "i");
      flowlet_jw_int(w, i);
      flowlet_jw_end(w);
      flowlet_emit_end(out);
    }
    return FLOWLET_OK;
  }
  if (!strcmp(text, "explicit")) {
    flowlet_emit_with(out, "k2", 2, "v", 1, INT64_MIN);
    flowlet_emit_header(out, "h", "1", 1);
    flowlet_emit_with(out, NULL, 5, "w", 1, INT64_MAX);
    flowlet_buf *b = flowlet_emit_begin(out);
    flowlet_buf_append_str(b, "in place");
    flowlet_emit_end_with(out, "k3", 2, 3);
    flowlet_emit_begin(out);  // left open: dropped
    return FLOWLET_OK;
  }
  if (!strcmp(text, "log")) {
    flowlet_log_info("seen %u", e->index);
    flowlet_log_warn("careful");
    flowlet_counter_add("seen", 2);
    flowlet_gauge_set("level", 0.5);
    return FLOWLET_OK;
  }
  flowlet_json v = flowlet_event_json(e);
  if (v.type == FLOWLET_JSON_INVALID) return flowlet_reject(out, "not JSON: %s", flowlet_event_json_error(e));
  if (v.type == FLOWLET_JSON_OBJECT) {
    double x;
    if (!flowlet_json_number(flowlet_json_pointer(v, field ? field : "/x"), &x)) return flowlet_reject(out, "no number");
    flowlet_emit_object_with(out, v, FLOWLET_FIELDS(FLOWLET_NUMBER("y", x * factor), FLOWLET_STRING("label", label ? label : "")));
    return FLOWLET_OK;
  }
  flowlet_emit(out, e->value, e->value_len);  // as it is
  return FLOWLET_OK;
}

static void iterator(void) {
  flowlet_harness *h = flowlet_harness_new(NULL);
  FLOWLET_CHECK(flowlet_harness_init_error(h) == NULL);
  const flowlet_result *r = flowlet_harness_process(h, NULL, 0);
  FLOWLET_CHECK(r->status == FLOWLET_OK && r->n == 0 && r->rejected_n == 0);
  r = flowlet_harness_process(h, FLOWLET_VALUES("{\"x\": 2}"));
  FLOWLET_CHECK_INT(r->n, 1);
  FLOWLET_CHECK_STR(r->values[0], "{\"x\":2,\"y\":2.0,\"label\":\"\"}");
  FLOWLET_CHECK_STR(r->keys[0], "");
  FLOWLET_CHECK_INT(r->timestamps[0], 0);  // the first event
  // Many events, each at its index.
  enum { N = 20000 };
  flowlet_test_event *ev = malloc(N * sizeof *ev);
  char (*values)[32] = malloc(N * sizeof *values);
  for (int i = 0; i < N; i++) {
    snprintf(values[i], sizeof values[i], "{\"x\":%d}", i);
    ev[i] = (flowlet_test_event){values[i], i % 2 ? "odd" : NULL, (flowlet_timestamp)i * 1000};
  }
  r = flowlet_harness_process_events(h, ev, N);
  FLOWLET_CHECK_INT(r->n, N);
  bool all = true;
  for (int i = 0; i < N && all; i++) {
    char want[64];
    snprintf(want, sizeof want, "{\"x\":%d,\"y\":%d.0,\"label\":\"\"}", i, i);
    all = !strcmp(r->values[i], want) && r->timestamps[i] == (flowlet_timestamp)i * 1000 &&
          !strcmp(r->keys[i], i % 2 ? "odd" : "");
  }
  FLOWLET_CHECK(all);
  free(ev);
  free(values);
  flowlet_harness_free(h);
}

static void edges(void) {
  flowlet_harness *h = flowlet_harness_new("{\"factor\": 10, \"label\": \"caf\\u00e9\", \"field\": \"/a/0\"}");
  FLOWLET_CHECK(flowlet_harness_init_error(h) == NULL);
  // Empty values, invalid UTF-8, values that are not JSON.
  flowlet_bytes bytes[] = {{(const uint8_t *)"", 0},
                           {(const uint8_t *)"\xff\xfe", 2},
                           {(const uint8_t *)"{\"a\":[3]}", 9},
                           {(const uint8_t *)"{\"a\":\0}", 7},
                           {(const uint8_t *)"\"\xc3\xa9\"", 4}};
  const flowlet_result *r = flowlet_harness_process_bytes(h, bytes, 5);
  FLOWLET_CHECK_INT(r->n, 3);
  FLOWLET_CHECK_STR(r->values[0], "empty");
  FLOWLET_CHECK_STR(r->values[1], "{\"a\":[3],\"y\":30.0,\"label\":\"caf\xc3\xa9\"}");
  FLOWLET_CHECK_STR(r->values[2], "\"\xc3\xa9\"");
  FLOWLET_CHECK_INT(r->rejected_n, 2);
  FLOWLET_CHECK_INT(r->rejected[0], 1);
  FLOWLET_CHECK_STR(r->reasons[0], "not UTF-8 (event 1)");
  FLOWLET_CHECK_INT(r->rejected[1], 3);
  FLOWLET_CHECK_STR(r->reasons[1], "not JSON: expected value at line 1 column 6");

  // Huge values: 16 MB through parse and output.
  size_t n = 16 << 20;
  char *big = malloc(n + 32);
  strcpy(big, "{\"a\":[1],\"pad\":\"");
  size_t at = strlen(big);
  memset(big + at, 'p', n);
  strcpy(big + at + n, "\"}");
  r = flowlet_harness_process(h, (const char *const[]){big, "forward"}, 2);
  FLOWLET_CHECK_INT(r->n, 2);
  FLOWLET_CHECK_INT(r->value_lens[0], at + n + 2 + strlen(",\"y\":10.0,\"label\":\"caf\xc3\xa9\""));
  FLOWLET_CHECK_STR(r->values[1], "forward");
  free(big);

  // i64-bound timestamps are kept.
  r = flowlet_harness_process_events(h, FLOWLET_EVENTS({"forward", "k", INT64_MIN}, {"forward", NULL, INT64_MAX}, {"1", "k", -1}));
  FLOWLET_CHECK_INT(r->n, 3);
  FLOWLET_CHECK(r->timestamps[0] == INT64_MIN && r->timestamps[1] == INT64_MAX && r->timestamps[2] == -1);
  FLOWLET_CHECK_STR(r->keys[0], "k");
  FLOWLET_CHECK_STR(r->keys[1], "");
  flowlet_harness_free(h);
}

static void output(void) {
  flowlet_harness *h = flowlet_harness_new(NULL);
  // Rejections discard what the event emitted; the rest of the batch goes on.
  const flowlet_result *r = flowlet_harness_process(
      h, FLOWLET_VALUES("1", "emit-then-reject", "2", "reject-event", "bare-reject", "explicit", "many 3"));
  FLOWLET_CHECK_INT(r->rejected_n, 3);
  FLOWLET_CHECK(r->rejected[0] == 1 && r->rejected[1] == 3 && r->rejected[2] == 4);
  FLOWLET_CHECK_STR(r->reasons[0], "changed my mind");
  FLOWLET_CHECK_STR(r->reasons[1], "rejected through the event");
  FLOWLET_CHECK_STR(r->reasons[2], "rejected");
  FLOWLET_CHECK_INT(r->n, 8);
  const char *values[] = {"1", "2", "v", "w", "in place", "{\"i\":0}", "{\"i\":1}", "{\"i\":2}"};
  for (size_t i = 0; i < 8 && i < r->n; i++) FLOWLET_CHECK_STR(r->values[i], values[i]);
  FLOWLET_CHECK_STR(r->keys[2], "k2");
  FLOWLET_CHECK_STR(r->keys[3], "");
  FLOWLET_CHECK_STR(r->keys[4], "k3");
  FLOWLET_CHECK(r->timestamps[2] == INT64_MIN && r->timestamps[3] == INT64_MAX && r->timestamps[4] == 3);
  FLOWLET_CHECK(r->headers_n == 1 && r->headers[0].event == 2 && !strcmp(r->headers[0].name, "h") &&
                !strcmp(r->headers[0].value, "1"));

  // Output growth: many events and bytes from one input event.
  r = flowlet_harness_process(h, FLOWLET_VALUES("many 100000"));
  FLOWLET_CHECK_INT(r->n, 100000);
  FLOWLET_CHECK_STR(r->values[99999], "{\"i\":99999}");

  // A failure fails the whole batch.
  r = flowlet_harness_process(h, FLOWLET_VALUES("1", "fail", "2"));
  FLOWLET_CHECK(r->status == FLOWLET_FAILED && r->n == 0);
  FLOWLET_CHECK_STR(r->error, "cannot go on at 1");

  // Logs and metrics.
  flowlet_harness_process(h, FLOWLET_VALUES("log", "log"));
  flowlet_level level;
  FLOWLET_CHECK_INT(flowlet_harness_log_count(h), 4);
  FLOWLET_CHECK_STR(flowlet_harness_log(h, 2, &level), "seen 1");
  FLOWLET_CHECK_INT(level, FLOWLET_INFO);
  FLOWLET_CHECK_INT(flowlet_harness_counter(h, "seen"), 4);
  double g = 0;
  FLOWLET_CHECK(flowlet_harness_gauge(h, "level", &g) && g == 0.5);
  FLOWLET_CHECK(!flowlet_harness_gauge(h, "nothing", &g));
  flowlet_harness_free(h);
}

static void headers(void) {
  // Headers arrive in any order in the batch; an event sees its own, in order.
  const uint8_t values[] = "forwardforward";
  uint32_t value_ends[] = {7, 14}, key_ends[] = {0, 1};
  int64_t ts[] = {5, 6};
  flowlet__header hs[] = {{1, {(uint8_t *)"b", 1}, {(uint8_t *)"2", 1}},
                          {0, {(uint8_t *)"a", 1}, {(uint8_t *)"1", 1}},
                          {1, {(uint8_t *)"c", 1}, {(uint8_t *)"", 0}}};
  flowlet__batch b = {values, 14, value_ends, (const uint8_t *)"k", 1, key_ends, ts, 2, hs, 3};
  flowlet_harness *h = flowlet_harness_new(NULL);
  flowlet_output out;
  flowlet__output_init(&out, 0, 0);
  FLOWLET_CHECK_INT(flowlet__process(&b, &out, 0), FLOWLET_OK);
  FLOWLET_CHECK_INT(out.n, 2);
  FLOWLET_CHECK_INT(out.headers_len, 3);
  FLOWLET_CHECK(out.headers[0].event == 0 && out.headers[0].name.ptr[0] == 'a');
  FLOWLET_CHECK(out.headers[1].event == 1 && out.headers[1].name.ptr[0] == 'b' && out.headers[1].value.ptr[0] == '2');
  FLOWLET_CHECK(out.headers[2].event == 1 && out.headers[2].name.ptr[0] == 'c' && out.headers[2].value.len == 0);
  flowlet__output_free(&out);
  // A malformed batch fails.
  uint32_t bad_ends[] = {7, 99};
  b.value_ends = bad_ends;
  flowlet__output_init(&out, 0, 0);
  FLOWLET_CHECK_INT(flowlet__process(&b, &out, 0), FLOWLET_FAILED);
  flowlet__output_free(&out);
  flowlet_harness_free(h);
}

static void config(void) {
  struct {
    const char *config, *error;
  } cases[] = {
      {"{\"factor\": \"x\"}", "`factor` must be a number"},
      {"{\"limit\": 1.5}", "`limit` must be an integer"},
      {"{\"loud\": 1}", "`loud` must be a boolean"},
      {"{\"label\": 1}", "`label` must be a string"},
      {"{\"field\": \"a\"}",
       "`field`: `a` is not a JSON pointer: it must be empty or start with `/` (e.g. `/user/id`), and `~` may only be "
       "followed by 0 or 1"},
      {"{\"fator\": 1}", "unknown setting \"fator\" (expected factor, limit, loud, label, field, extra)"},
      {"[]", "the config must be a map (factor, limit, loud, label, field, extra)"},
      {"{", "config is not JSON: EOF while parsing an object at line 1 column 1"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    flowlet_harness *h = flowlet_harness_new(cases[i].config);
    FLOWLET_CHECK_INT(flowlet_harness_init_status(h), FLOWLET_INVALID_CONFIG);
    FLOWLET_CHECK_STR(flowlet_harness_init_error(h), cases[i].error);
    flowlet_harness_free(h);
  }
  flowlet_harness *h = flowlet_harness_new("{\"limit\": -9223372036854775808, \"loud\": true, \"extra\": {\"k\": [1]}}");
  FLOWLET_CHECK(flowlet_harness_init_error(h) == NULL);
  FLOWLET_CHECK(limit == INT64_MIN && loud && extra.type == FLOWLET_JSON_OBJECT &&
                flowlet_json_pointer(extra, "/k/0").text[0] == '1');
  flowlet_harness_free(h);
}

int main(void) {
  iterator();
  edges();
  output();
  headers();
  config();
  return flowlet_test_summary();
}
