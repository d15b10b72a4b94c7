// The aggregate path of the C SDK: create/add/merge/finish, packed accumulators, and a rejected
// event leaving its accumulator as it was.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flowlet_testing.h"

typedef struct {
  uint64_t count;
  double sum, max;
} stats;

const size_t flowlet_accumulator_size = sizeof(stats);

int flowlet_init(const flowlet_config *c) { return flowlet_config_read(c, NULL, 0); }

int flowlet_create(flowlet_acc *acc) {
  stats *s = acc->data;
  s->max = -INFINITY;
  return FLOWLET_OK;
}

int flowlet_add(flowlet_acc *acc, const flowlet_event *e) {
  stats *s = acc->data;
  s->count++;  // before the check on purpose: a rejection must undo it
  s->sum += 1000;
  double x;
  if (!flowlet_json_number(flowlet_event_field(e, "/x"), &x)) return flowlet_reject_event(e, "no number at /x");
  if (x < 0) return flowlet_fail("negative: %g", x);
  s->sum += x - 1000;
  if (x > s->max) s->max = x;
  return FLOWLET_OK;
}

int flowlet_merge(flowlet_acc *a, const flowlet_acc *b) {
  stats *x = a->data;
  const stats *y = b->data;
  x->count += y->count;
  x->sum += y->sum;
  x->max = fmax(x->max, y->max);
  return FLOWLET_OK;
}

int flowlet_finish(const flowlet_window *w, const flowlet_acc *acc, flowlet_output *out) {
  const stats *s = acc->data;
  if (s->count == 99) return flowlet_reject(out, "finish cannot reject");
  flowlet_json_writer *j = flowlet_emit_json(out);
  flowlet_jw_object(j);
  flowlet_jw_key(j, "key");
  flowlet_jw_string_n(j, w->key, w->key_len);
  flowlet_jw_key(j, "start");
  flowlet_jw_int(j, w->start);
  flowlet_jw_key(j, "count");
  flowlet_jw_uint(j, s->count);
  flowlet_jw_key(j, "sum");
  flowlet_jw_number(j, s->sum);
  flowlet_jw_key(j, "max");
  flowlet_jw_number(j, s->max);
  if (w->firing) {
    flowlet_jw_key(j, "firing");
    flowlet_jw_uint(j, w->firing);
  }
  flowlet_jw_end(j);
  flowlet_emit_end(out);
  return FLOWLET_OK;
}

int main(void) {
  flowlet_harness *h = flowlet_harness_new(NULL);
  FLOWLET_CHECK(flowlet_harness_init_error(h) == NULL);
  flowlet_buf good, mixed, merged;
  const flowlet_result *r = flowlet_harness_fold(h, FLOWLET_VALUES("{\"x\":1}", "{\"x\":2.5}"), &good);
  FLOWLET_CHECK(r->status == FLOWLET_OK && r->rejected_n == 0 && good.len == sizeof(stats));
  // The same events with bad ones between: the same bytes.
  r = flowlet_harness_fold(h, FLOWLET_VALUES("{\"y\":1}", "{\"x\":1}", "not json", "{\"x\":\"2\"}", "{\"x\":2.5}", "[]"),
                           &mixed);
  FLOWLET_CHECK_INT(r->rejected_n, 4);
  FLOWLET_CHECK(r->rejected[0] == 0 && r->rejected[1] == 2 && r->rejected[2] == 3 && r->rejected[3] == 5);
  FLOWLET_CHECK_STR(r->reasons[0], "no number at /x");
  FLOWLET_CHECK(mixed.len == good.len && memcmp(mixed.ptr, good.ptr, good.len) == 0);

  r = flowlet_harness_merge(h, &good, &mixed, &merged);
  FLOWLET_CHECK(r->status == FLOWLET_OK);
  r = flowlet_harness_finish(h, &merged, 1000, 2000, "u1", 2);
  FLOWLET_CHECK_INT(r->n, 1);
  FLOWLET_CHECK_STR(r->values[0], "{\"key\":\"u1\",\"start\":1000,\"count\":4,\"sum\":7.0,\"max\":2.5,\"firing\":2}");
  FLOWLET_CHECK_INT(r->timestamps[0], 1999);  // end - 1
  FLOWLET_CHECK_STR(r->keys[0], "u1");

  // An empty window; a key that is not UTF-8 is written lossily.
  flowlet_buf empty;
  flowlet_harness_fold(h, NULL, 0, &empty);
  r = flowlet_harness_finish(h, &empty, 0, 10, "\xff", 0);
  FLOWLET_CHECK_STR(r->values[0], "{\"key\":\"\xef\xbf\xbd\",\"start\":0,\"count\":0,\"sum\":0.0,\"max\":null}");

  // A failure in add fails the batch; a corrupt accumulator too.
  flowlet_buf acc = {0};
  flowlet_buf_append(&acc, good.ptr, good.len);
  r = flowlet_harness_add(h, &acc, FLOWLET_VALUES("{\"x\":-1}"));
  FLOWLET_CHECK(r->status == FLOWLET_FAILED);
  FLOWLET_CHECK_STR(r->error, "negative: -1");
  acc.len = 5;
  r = flowlet_harness_add(h, &acc, FLOWLET_VALUES("{\"x\":1}"));
  FLOWLET_CHECK_STR(r->error, "corrupt accumulator: 5 bytes, flowlet_accumulator_size is 24");
  r = flowlet_harness_finish(h, &acc, 0, 10, NULL, 0);
  FLOWLET_CHECK(r->status == FLOWLET_FAILED);
  // finish cannot reject a window: the batch fails with the reason.
  stats ninety_nine = {99, 0, 0};
  flowlet_buf odd = {0};
  flowlet_buf_append(&odd, &ninety_nine, sizeof ninety_nine);
  r = flowlet_harness_finish(h, &odd, 0, 10, NULL, 0);
  FLOWLET_CHECK(r->status == FLOWLET_FAILED);
  FLOWLET_CHECK_STR(r->error, "finish cannot reject");

  // Tumbling windows of 10 ms per key, fired in (end, key) order.
  r = flowlet_harness_tumbling(
      h, FLOWLET_EVENTS({"{\"x\":1}", "b", 3}, {"{\"x\":2}", "a", 5}, {"{\"x\":3}", "b", 12}, {"oops", "a", 7}, {"{\"x\":4}", "a", -1}),
      10);
  FLOWLET_CHECK_INT(r->n, 4);
  FLOWLET_CHECK_STR(r->values[0], "{\"key\":\"a\",\"start\":-10,\"count\":1,\"sum\":4.0,\"max\":4.0}");
  FLOWLET_CHECK_STR(r->values[1], "{\"key\":\"a\",\"start\":0,\"count\":1,\"sum\":2.0,\"max\":2.0}");
  FLOWLET_CHECK_STR(r->values[2], "{\"key\":\"b\",\"start\":0,\"count\":1,\"sum\":1.0,\"max\":1.0}");
  FLOWLET_CHECK_STR(r->values[3], "{\"key\":\"b\",\"start\":10,\"count\":1,\"sum\":3.0,\"max\":3.0}");
  FLOWLET_CHECK(r->rejected_n == 1 && r->rejected[0] == 3);

  // The packed batch entry point: several slots, a slot out of range.
  uint32_t ends[] = {24, 48}, slots[] = {1, 0, 1}, vends[] = {7, 14, 21}, kends[] = {0, 0, 0};
  int64_t ts[] = {0, 0, 0};
  uint8_t packed[48];
  memcpy(packed, empty.ptr, 24);
  memcpy(packed + 24, empty.ptr, 24);
  flowlet__batch b = {(const uint8_t *)"{\"x\":1}{\"x\":2}{\"x\":4}", 21, vends, (const uint8_t *)"", 0, kends, ts, 3, NULL, 0};
  flowlet_buf out = {0};
  uint32_t *out_ends = NULL;
  flowlet_output rej;
  flowlet__output_init(&rej, 0, 0);
  FLOWLET_CHECK_INT(flowlet__agg_add(packed, 48, ends, 2, &b, slots, 3, &out, &out_ends, &rej), FLOWLET_OK);
  stats s0, s1;
  memcpy(&s0, out.ptr, sizeof s0);
  memcpy(&s1, out.ptr + 24, sizeof s1);
  FLOWLET_CHECK(out_ends[0] == 24 && out_ends[1] == 48 && s0.count == 1 && s0.sum == 2 && s1.count == 2 && s1.sum == 5);
  flowlet_buf_free(&out);
  free(out_ends);
  slots[2] = 2;
  FLOWLET_CHECK_INT(flowlet__agg_add(packed, 48, ends, 2, &b, slots, 3, &out, &out_ends, &rej), FLOWLET_FAILED);
  FLOWLET_CHECK_INT(flowlet__agg_add(packed, 48, ends, 2, &b, slots, 2, &out, &out_ends, &rej), FLOWLET_FAILED);
  flowlet__output_free(&rej);
  flowlet_buf_free(&out);

  flowlet_buf_free(&good);
  flowlet_buf_free(&mixed);
  flowlet_buf_free(&merged);
  flowlet_buf_free(&empty);
  flowlet_buf_free(&acc);
  flowlet_buf_free(&odd);
  flowlet_harness_free(h);
  return flowlet_test_summary();
}
