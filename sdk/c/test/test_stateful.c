// The stateful path of the C SDK with the harness's in-memory host: value and map state, TTLs,
// event-time and processing-time timers.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flowlet_testing.h"

// Counts events per key, keeps the last value per event time in map state, and reports the count
// when the watermark passes the event time + 10 (a timer per event, deduplicated by time).
int flowlet_init(const flowlet_config *c) { return flowlet_config_read(c, NULL, 0); }

int flowlet_process(const flowlet_event *e, flowlet_output *out) {
  flowlet_state s = flowlet_event_state(e);
  size_t len;
  const char *text = flowlet_event_text(e, &len);
  if (!text) return flowlet_reject(out, "not text");
  if (!strcmp(text, "forget")) {
    flowlet_state_delete(s, "count");
    flowlet_timer_cancel(s, FLOWLET_EVENT_TIME, e->timestamp + 10);
    return FLOWLET_OK;
  }
  if (!strcmp(text, "session")) {
    flowlet_state_put_ttl(s, "session", "open", 4, 100);
    flowlet_state_map_put_ttl(s, "recent", "m", 1, "1", 1, 50);
    flowlet_timer_register(s, FLOWLET_PROCESSING_TIME, flowlet_now() + 100);
    return FLOWLET_OK;
  }
  uint64_t n = flowlet_state_get_u64(s, "count") + 1;
  flowlet_state_put_u64(s, "count", n);
  char at[32];
  snprintf(at, sizeof at, "%020lld", (long long)e->timestamp);
  flowlet_state_map_put(s, "by-time", at, strlen(at), e->value, e->value_len);
  flowlet_state_put(s, "last", e->value, e->value_len);
  flowlet_timer_register(s, FLOWLET_EVENT_TIME, e->timestamp + 10);
  flowlet_json_writer *w = flowlet_emit_json(out);
  flowlet_jw_object(w);
  flowlet_jw_key(w, "n");
  flowlet_jw_uint(w, n);
  flowlet_jw_key(w, "watermark");
  flowlet_jw_int(w, flowlet_watermark());
  flowlet_jw_end(w);
  flowlet_emit_end(out);
  return FLOWLET_OK;
}

int flowlet_on_timer(const flowlet_timer *t, flowlet_output *out) {
  flowlet_state s = flowlet_timer_state(t);
  const flowlet_entry *entries;
  size_t n = flowlet_state_map_range(s, "by-time", "", 0, "", 0, 100, &entries);
  flowlet_bytes session;
  bool open = flowlet_state_get(s, "session", &session);
  flowlet_json_writer *w = flowlet_emit_json(out);
  flowlet_jw_object(w);
  flowlet_jw_key(w, "key");
  flowlet_jw_string_n(w, t->key, t->key_len);
  flowlet_jw_key(w, "domain");
  flowlet_jw_string(w, t->domain == FLOWLET_EVENT_TIME ? "event" : "processing");
  flowlet_jw_key(w, "count");
  flowlet_jw_uint(w, flowlet_state_get_u64(s, "count"));
  flowlet_jw_key(w, "entries");
  flowlet_jw_uint(w, n);
  flowlet_jw_key(w, "session");
  flowlet_jw_bool(w, open);
  flowlet_jw_end(w);
  flowlet_emit_end(out);
  return FLOWLET_OK;
}

int main(void) {
  flowlet_harness *h = flowlet_harness_new(NULL);
  FLOWLET_CHECK(flowlet_harness_init_error(h) == NULL);
  const flowlet_result *r = flowlet_harness_process_events(
      h, FLOWLET_EVENTS({"{\"v\":1}", "a", 100}, {"{\"v\":2}", "a", 105}, {"{\"v\":3}", "b", 100}, {"{\"v\":4}", NULL, 7}));
  FLOWLET_CHECK_INT(r->n, 4);
  FLOWLET_CHECK_STR(r->values[1], "{\"n\":2,\"watermark\":-9223372036854775808}");
  FLOWLET_CHECK_STR(r->values[2], "{\"n\":1,\"watermark\":-9223372036854775808}");
  FLOWLET_CHECK_STR(r->keys[1], "a");

  // State, as the operator left it.
  flowlet_bytes v;
  FLOWLET_CHECK(flowlet_harness_state(h, "a", "last", &v) && v.len == 7 && !memcmp(v.ptr, "{\"v\":2}", 7));
  FLOWLET_CHECK(flowlet_harness_state(h, NULL, "count", &v) && v.len == 8 && v.ptr[0] == 1);
  FLOWLET_CHECK(flowlet_harness_map_state(h, "b", "by-time", "00000000000000000100", 20, &v) && v.len == 7);
  FLOWLET_CHECK(!flowlet_harness_state(h, "c", "count", NULL));
  FLOWLET_CHECK_INT(flowlet_harness_timer_count(h), 4);  // a@110, a@115, b@110, ""@17

  // Event-time timers fire in time order (then key order) as the watermark passes them.
  r = flowlet_harness_advance_watermark(h, 110);
  FLOWLET_CHECK_INT(r->n, 3);
  FLOWLET_CHECK_STR(r->values[0], "{\"key\":\"\",\"domain\":\"event\",\"count\":1,\"entries\":1,\"session\":false}");
  FLOWLET_CHECK_STR(r->values[1], "{\"key\":\"a\",\"domain\":\"event\",\"count\":2,\"entries\":2,\"session\":false}");
  FLOWLET_CHECK_STR(r->values[2], "{\"key\":\"b\",\"domain\":\"event\",\"count\":1,\"entries\":1,\"session\":false}");
  FLOWLET_CHECK(r->timestamps[0] == 17 && r->timestamps[1] == 110 && r->timestamps[2] == 110);  // the timer's time
  FLOWLET_CHECK_STR(r->keys[1], "a");
  r = flowlet_harness_advance_watermark(h, 50);  // never backwards
  FLOWLET_CHECK_INT(r->n, 0);
  r = flowlet_harness_process_events(h, FLOWLET_EVENTS({"{\"v\":5}", "a", 200}));
  FLOWLET_CHECK_STR(r->values[0], "{\"n\":3,\"watermark\":110}");

  // Cancel and delete.
  flowlet_harness_process_events(h, FLOWLET_EVENTS({"forget", "a", 190}));
  FLOWLET_CHECK(!flowlet_harness_state(h, "a", "count", NULL));
  FLOWLET_CHECK_INT(flowlet_harness_timer_count(h), 2);  // a@115, a@210
  r = flowlet_harness_advance_watermark(h, 1000);
  FLOWLET_CHECK_INT(r->n, 2);
  FLOWLET_CHECK_STR(r->values[1], "{\"key\":\"a\",\"domain\":\"event\",\"count\":0,\"entries\":3,\"session\":false}");

  // TTL (processing time) and processing-time timers.
  flowlet_harness_set_processing_time(h, 1000);
  flowlet_harness_process_events(h, FLOWLET_EVENTS({"session", "s", 0}));
  FLOWLET_CHECK(flowlet_harness_state(h, "s", "session", NULL));
  FLOWLET_CHECK(flowlet_harness_map_state(h, "s", "recent", "m", 1, NULL));
  r = flowlet_harness_set_processing_time(h, 1049);
  FLOWLET_CHECK_INT(r->n, 0);
  FLOWLET_CHECK(flowlet_harness_map_state(h, "s", "recent", "m", 1, NULL));
  flowlet_harness_set_processing_time(h, 1050);
  FLOWLET_CHECK(!flowlet_harness_map_state(h, "s", "recent", "m", 1, NULL));
  FLOWLET_CHECK(flowlet_harness_state(h, "s", "session", NULL));
  r = flowlet_harness_set_processing_time(h, 1100);  // the session expires as its timer fires
  FLOWLET_CHECK_INT(r->n, 1);
  FLOWLET_CHECK_STR(r->values[0], "{\"key\":\"s\",\"domain\":\"processing\",\"count\":0,\"entries\":0,\"session\":false}");
  FLOWLET_CHECK(!flowlet_harness_state(h, "s", "session", NULL));
  FLOWLET_CHECK_INT(flowlet_harness_timer_count(h), 0);
  flowlet_harness_free(h);

  // Map ranges: ordered by the map key's bytes, bounded, limited; state JSON.
  h = flowlet_harness_new(NULL);
  flowlet_state s = flowlet_state_of("k", 1);
  const char *keys[] = {"b", "a", "ab", "c", "\xff", ""};
  for (int i = 0; i < 6; i++) flowlet_state_map_put(s, "m", keys[i], strlen(keys[i]), keys[i], strlen(keys[i]));
  const flowlet_entry *e;
  size_t n = flowlet_state_map_range(s, "m", "", 0, "", 0, 100, &e);
  FLOWLET_CHECK_INT(n, 6);
  const char *order[] = {"", "a", "ab", "b", "c", "\xff"};
  for (size_t i = 0; i < n && i < 6; i++)
    FLOWLET_CHECK(e[i].key.len == strlen(order[i]) && !memcmp(e[i].key.ptr, order[i], e[i].key.len));
  FLOWLET_CHECK_INT(flowlet_state_map_range(s, "m", "a", 1, "b", 1, 100, &e), 2);
  FLOWLET_CHECK_INT(flowlet_state_map_range(s, "m", "ab", 2, "", 0, 2, &e), 2);
  FLOWLET_CHECK(e[1].key.len == 1 && e[1].key.ptr[0] == 'b');
  flowlet_state_map_delete(s, "m", "a", 1);
  FLOWLET_CHECK(!flowlet_state_map_get(s, "m", "a", 1, NULL));
  flowlet_state_put_json(s, "j", flowlet_json_parse_str("{\"x\": [1]}"));
  FLOWLET_CHECK(flowlet_state_get(s, "j", &v) && v.len == 9 && !memcmp(v.ptr, "{\"x\":[1]}", 9));
  FLOWLET_CHECK(flowlet_json_pointer(flowlet_state_get_json(s, "j"), "/x/0").text[0] == '1');
  FLOWLET_CHECK_INT(flowlet_state_get_json(s, "none").type, FLOWLET_JSON_ABSENT);
  flowlet_state_put(s, "bad", "{", 1);
  FLOWLET_CHECK_INT(flowlet_state_get_json(s, "bad").type, FLOWLET_JSON_INVALID);
  FLOWLET_CHECK_INT(flowlet_state_get_u64(s, "bad"), 0);
  flowlet_harness_free(h);
  return flowlet_test_summary();
}
