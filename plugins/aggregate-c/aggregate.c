// aggregate (C): keyed window statistics — count, sum, avg, min or max of a numeric field per key
// and window — the same operator as plugins/aggregate (Rust) and plugins/aggregate-python, with
// the same config, output and messages, on the flowlet C SDK (sdk/c):
//
//   window: {kind: tumbling, size: 1m}
//   config: {function: sum, field: /amount}   # count needs no field; `output` renames the result
//
// Output per (key, window): {"key": …, "start": …, "end": …, "sum": 12.5, "count": 3} (with
// "firing" when late events update a window); events without a numeric field are rejected. The
// accumulator is 32 bytes: count (u64), then sum, min, max (f64), little-endian.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flowlet.h"

typedef struct {
  uint64_t count;
  double sum, min, max;
} stats;

const size_t flowlet_accumulator_size = sizeof(stats);

static const char *const FUNCTIONS[] = {"count", "sum", "avg", "min", "max"};
static const char *const NAMES[] = {"Count", "Sum", "Avg", "Min", "Max"};  // as Rust's {:?}
enum { COUNT, SUM, AVG, MIN, MAX };
static int function;
static char *field;   // a JSON pointer, or NULL for count
static char *output;  // the result's name

// What a JSON value is, in serde's words ("invalid type: <this>, expected …").
static void describe(flowlet_json v, char *out, size_t cap) {
  static const char *const kinds[] = {"", "", "unit value", "boolean", "", "string", "sequence", "map"};
  int64_t i;
  uint64_t u;
  double x = flowlet_json_number_or(v, 0);
  if (v.type == FLOWLET_JSON_BOOL || v.type == FLOWLET_JSON_STRING)
    snprintf(out, cap, v.type == FLOWLET_JSON_BOOL ? "%s `%.*s`" : "%s %.*s", kinds[v.type], (int)v.len, v.text);
  else if (v.type != FLOWLET_JSON_NUMBER) snprintf(out, cap, "%s", kinds[v.type]);
  else if (flowlet_json_uint64(v, &u) || flowlet_json_int64(v, &i)) snprintf(out, cap, "integer `%.*s`", (int)v.len, v.text);
  else snprintf(out, cap, x == (int64_t)x ? "floating point `%.1f`" : "floating point `%.17g`", x);
}

int flowlet_init(const flowlet_config *c) {
  char what[96];
  if (c->json.type != FLOWLET_JSON_OBJECT) {
    describe(c->json, what, sizeof what);
    return flowlet_invalid_config("invalid type: %s, expected struct Settings", what);
  }
  flowlet_json name, v, f = {0}, fld = {0}, out = {0};
  flowlet_json_iter it = flowlet_json_iterate(c->json);
  while (flowlet_json_next(&it, &name, &v)) {
    if (flowlet_json_string_eq(name, "function")) f = v;
    else if (flowlet_json_string_eq(name, "field")) fld = v;
    else if (flowlet_json_string_eq(name, "output")) out = v;
    else if (flowlet_json_string(name, what, sizeof what) != (size_t)-1)
      return flowlet_invalid_config("unknown field `%s`, expected one of `function`, `field`, `output`", what);
    if (v.type != FLOWLET_JSON_STRING && (v.type != FLOWLET_JSON_NULL || flowlet_json_string_eq(name, "function"))) {
      describe(v, what, sizeof what);
      return flowlet_invalid_config("invalid type: %s, expected %s", what,
                                    flowlet_json_string_eq(name, "function") ? "string or map" : "a string");
    }
  }
  if (!f.type) return flowlet_invalid_config("missing field `function`");
  for (function = 0; function < 5 && !flowlet_json_string_eq(f, FUNCTIONS[function]); function++) continue;
  if (function == 5 && flowlet_json_string(f, what, sizeof what) != (size_t)-1)
    return flowlet_invalid_config("unknown variant `%s`, expected one of `count`, `sum`, `avg`, `min`, `max`", what);
  free(field);
  field = flowlet_json_string_dup(fld);  // NULL when absent or null
  if (field && !flowlet_json_pointer_valid(field))
    return flowlet_invalid_config(
        "`field`: `%s` is not a JSON pointer: it must be empty or start with `/` (e.g. `/user/id`), and `~` may only "
        "be followed by 0 or 1",
        field);
  if (!field && function != COUNT)
    return flowlet_invalid_config("`%s` needs a `field` (a JSON pointer to a number, e.g. /amount)", NAMES[function]);
  free(output);
  output = out.type == FLOWLET_JSON_STRING ? flowlet_json_string_dup(out) : strdup(FUNCTIONS[function]);
  const char *taken[] = {"key", "start", "end", "firing"};
  bool collides = !strcmp(output, "count") && function != COUNT;
  for (int i = 0; i < 4; i++) collides |= !strcmp(output, taken[i]);
  if (collides)
    return flowlet_invalid_config(
        "`output: %s` would collide with the `%s` field every result carries; choose another name", output, output);
  return FLOWLET_OK;
}

int flowlet_create(flowlet_acc *acc) {
  *(stats *)acc->data = (stats){0, 0, INFINITY, -INFINITY};
  return FLOWLET_OK;
}

int flowlet_add(flowlet_acc *acc, const flowlet_event *e) {
  stats *s = acc->data;
  if (!field) {
    s->count++;
    return FLOWLET_OK;
  }
  flowlet_json v = flowlet_event_field(e, field);
  double x;
  if (v.type == FLOWLET_JSON_INVALID)
    return flowlet_reject_event(e, "event is not the expected JSON: %s", flowlet_event_json_error(e));
  if (v.type == FLOWLET_JSON_ABSENT) return flowlet_reject_event(e, "no field %s", field);
  if (!flowlet_json_number(v, &x)) return flowlet_reject_event(e, "%s is not a number: %.*s", field, (int)v.len, v.text);
  s->count++;
  s->sum += x;
  s->min = fmin(s->min, x);
  s->max = fmax(s->max, x);
  return FLOWLET_OK;
}

int flowlet_merge(flowlet_acc *a, const flowlet_acc *b) {
  stats *x = a->data;
  const stats *y = b->data;
  *x = (stats){x->count + y->count, x->sum + y->sum, fmin(x->min, y->min), fmax(x->max, y->max)};
  return FLOWLET_OK;
}

int flowlet_finish(const flowlet_window *w, const flowlet_acc *acc, flowlet_output *out) {
  const stats *s = acc->data;
  flowlet_json_writer *j = flowlet_emit_json(out);
  flowlet_jw_object(j);
  flowlet_jw_key(j, "key");
  flowlet_jw_string_n(j, w->key, w->key_len);
  flowlet_jw_key(j, "start");
  flowlet_jw_int(j, w->start);
  flowlet_jw_key(j, "end");
  flowlet_jw_int(j, w->end);
  flowlet_jw_key(j, output);
  double avg = s->sum / (double)(s->count ? s->count : 1), results[] = {0, s->sum, avg, s->min, s->max};
  if (function == COUNT) flowlet_jw_uint(j, s->count);
  else flowlet_jw_number(j, results[function]);  // non-finite: null
  if (strcmp(output, "count")) {
    flowlet_jw_key(j, "count");
    flowlet_jw_uint(j, s->count);
  }
  if (w->firing > 0) {
    flowlet_jw_key(j, "firing");
    flowlet_jw_uint(j, w->firing);
  }
  flowlet_jw_end(j);
  flowlet_emit_end(out);  // the window's key, its last millisecond
  return FLOWLET_OK;
}
