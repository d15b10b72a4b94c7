// A stateful operator for `make check-host`: counts the events of each key (value state), keeps
// each key's last value (map state, with a TTL), and reports the count when the watermark passes
// the key's first event + 1 s (an event-time timer).
#include "flowlet.h"

int flowlet_init(const flowlet_config *c) { return flowlet_config_read(c, NULL, 0); }

int flowlet_process(const flowlet_event *e, flowlet_output *out) {
  flowlet_state s = flowlet_event_state(e);
  if (flowlet_json_ok(flowlet_event_field(e, "/bad"))) return flowlet_reject(out, "a bad event");
  uint64_t n = flowlet_state_get_u64(s, "count");
  if (n == 0) flowlet_timer_register(s, FLOWLET_EVENT_TIME, e->timestamp + 1000);
  flowlet_state_put_u64(s, "count", n + 1);
  flowlet_state_map_put_ttl(s, "last", "v", 1, e->value, e->value_len, 3600 * 1000);
  return FLOWLET_OK;
}

int flowlet_on_timer(const flowlet_timer *t, flowlet_output *out) {
  flowlet_state s = flowlet_timer_state(t);
  flowlet_bytes last = {0};
  flowlet_state_map_get(s, "last", "v", 1, &last);
  flowlet_json_writer *w = flowlet_emit_json(out);
  flowlet_jw_object(w);
  flowlet_jw_key(w, "key");
  flowlet_jw_string_n(w, t->key, t->key_len);
  flowlet_jw_key(w, "count");
  flowlet_jw_uint(w, flowlet_state_get_u64(s, "count"));
  flowlet_jw_key(w, "last");
  flowlet_jw_json(w, flowlet_json_parse(last.ptr, last.len));
  flowlet_jw_end(w);
  flowlet_emit_end(out);
  flowlet_state_delete(s, "count");
  return FLOWLET_OK;
}
