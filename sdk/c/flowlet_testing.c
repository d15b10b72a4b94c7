// flowlet_testing.c: the native host of flowlet.c (in-memory state, timers and clocks; recorded
// logs and metrics) and the test harness. See flowlet_testing.h.

#include "flowlet_testing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *xalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) abort();
  return p;
}

static void *grow(void *p, size_t *cap, size_t need, size_t size) {
  if (need <= *cap) return p;
  size_t n = *cap ? *cap * 2 : 16;
  while (n < need) n *= 2;
  p = realloc(p, n * size);
  if (!p) abort();
  *cap = n;
  return p;
}

static uint8_t *copy(const void *p, size_t n) {
  uint8_t *c = xalloc(n + 1);
  if (n) memcpy(c, p, n);
  c[n] = 0;
  return c;
}

typedef struct entry {
  uint8_t *key;
  size_t key_len;
  char *name;
  int is_map;
  uint8_t *map_key;
  size_t map_key_len;
  uint8_t *value;
  size_t value_len;
  int expires;
  flowlet_timestamp expiry;
} entry;

typedef struct ttimer {
  flowlet_time_domain domain;
  flowlet_timestamp at;
  uint8_t *key;
  size_t key_len;
} ttimer;

typedef struct named {
  char *name;
  uint64_t count;
  double gauge;
} named;

struct flowlet_harness {
  int init_status;
  char *init_error;
  flowlet_timestamp next_timestamp, watermark, now;
  entry *entries;
  size_t entries_n, entries_cap;
  ttimer *timers;
  size_t timers_n, timers_cap;
  struct {
    flowlet_level level;
    char *message;
  } *logs;
  size_t logs_n, logs_cap;
  named *counters, *gauges;
  size_t counters_n, counters_cap, gauges_n, gauges_cap;
  flowlet_result **results;
  size_t results_n, results_cap;
};

// The harness whose operator runs (state, timers and logs go there).
static flowlet_harness *g_h;

// =============================================================================================
// The host

static int bytes_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen) {
  size_t n = alen < blen ? alen : blen;
  int c = n ? memcmp(a, b, n) : 0;
  if (c) return c;
  return alen < blen ? -1 : alen > blen;
}

static bool live(const entry *e) { return !e->expires || e->expiry > g_h->now; }

static entry *find(flowlet_state s, const char *name, int is_map, const void *mk, size_t mklen) {
  if (!g_h) return NULL;
  for (size_t i = 0; i < g_h->entries_n; i++) {
    entry *e = &g_h->entries[i];
    if (e->is_map == is_map && !bytes_cmp(e->key, e->key_len, s.key, s.key_len) && !strcmp(e->name, name) &&
        (!is_map || !bytes_cmp(e->map_key, e->map_key_len, mk, mklen)))
      return e;
  }
  return NULL;
}

static void drop(entry *e) {
  free(e->key);
  free(e->name);
  free(e->map_key);
  free(e->value);
  *e = g_h->entries[--g_h->entries_n];
}

static bool get(flowlet_state s, const char *name, int is_map, const void *mk, size_t mklen, flowlet__str *out) {
  entry *e = find(s, name, is_map, mk, mklen);
  if (!e || !live(e)) return false;
  *out = (flowlet__str){copy(e->value, e->value_len), e->value_len};
  return true;
}

static void put(flowlet_state s, const char *name, int is_map, const void *mk, size_t mklen, const void *v, size_t len,
                const uint64_t *ttl) {
  if (!g_h) return;
  entry *e = find(s, name, is_map, mk, mklen);
  if (!e) {
    g_h->entries = grow(g_h->entries, &g_h->entries_cap, g_h->entries_n + 1, sizeof *g_h->entries);
    e = &g_h->entries[g_h->entries_n++];
    *e = (entry){copy(s.key, s.key_len), s.key_len, (char *)copy(name, strlen(name)), is_map,
                 is_map ? copy(mk, mklen) : NULL, is_map ? mklen : 0, NULL, 0, 0, 0};
  }
  free(e->value);
  e->value = copy(v, len);
  e->value_len = len;
  e->expires = ttl != NULL;
  e->expiry = ttl ? g_h->now + (flowlet_timestamp)*ttl : 0;
}

static void del(flowlet_state s, const char *name, int is_map, const void *mk, size_t mklen) {
  entry *e = find(s, name, is_map, mk, mklen);
  if (e) drop(e);
}

bool flowlet__host_value_get(flowlet_state s, const char *name, flowlet__str *out) {
  return get(s, name, 0, NULL, 0, out);
}
void flowlet__host_value_put(flowlet_state s, const char *name, const void *v, size_t len, const uint64_t *ttl) {
  put(s, name, 0, NULL, 0, v, len, ttl);
}
void flowlet__host_value_delete(flowlet_state s, const char *name) { del(s, name, 0, NULL, 0); }
bool flowlet__host_map_get(flowlet_state s, const char *name, const void *k, size_t klen, flowlet__str *out) {
  return get(s, name, 1, k, klen, out);
}
void flowlet__host_map_put(flowlet_state s, const char *name, const void *k, size_t klen, const void *v, size_t len,
                           const uint64_t *ttl) {
  put(s, name, 1, k, klen, v, len, ttl);
}
void flowlet__host_map_delete(flowlet_state s, const char *name, const void *k, size_t klen) {
  del(s, name, 1, k, klen);
}

static int entry_order(const void *a, const void *b) {
  const entry *x = *(const entry *const *)a, *y = *(const entry *const *)b;
  return bytes_cmp(x->map_key, x->map_key_len, y->map_key, y->map_key_len);
}

size_t flowlet__host_map_range(flowlet_state s, const char *name, const void *start, size_t slen, const void *end,
                               size_t elen, uint32_t limit, flowlet__str **pairs) {
  *pairs = NULL;
  if (!g_h) return 0;
  entry **hits = xalloc(g_h->entries_n * sizeof *hits);
  size_t n = 0;
  for (size_t i = 0; i < g_h->entries_n; i++) {
    entry *e = &g_h->entries[i];
    if (e->is_map && live(e) && !bytes_cmp(e->key, e->key_len, s.key, s.key_len) && !strcmp(e->name, name) &&
        bytes_cmp(e->map_key, e->map_key_len, start, slen) >= 0 &&
        (elen == 0 || bytes_cmp(e->map_key, e->map_key_len, end, elen) < 0))
      hits[n++] = e;
  }
  qsort(hits, n, sizeof *hits, entry_order);
  if (n > limit) n = limit;
  *pairs = xalloc(2 * n * sizeof **pairs);
  for (size_t i = 0; i < n; i++) {
    (*pairs)[2 * i] = (flowlet__str){copy(hits[i]->map_key, hits[i]->map_key_len), hits[i]->map_key_len};
    (*pairs)[2 * i + 1] = (flowlet__str){copy(hits[i]->value, hits[i]->value_len), hits[i]->value_len};
  }
  free(hits);
  return n;
}

void flowlet__host_timer(flowlet_state s, flowlet_time_domain d, flowlet_timestamp at, bool cancel) {
  if (!g_h) return;
  for (size_t i = 0; i < g_h->timers_n; i++) {
    ttimer *t = &g_h->timers[i];
    if (t->domain == d && t->at == at && !bytes_cmp(t->key, t->key_len, s.key, s.key_len)) {
      if (cancel) {
        free(t->key);
        *t = g_h->timers[--g_h->timers_n];
      }
      return;  // registering twice fires once
    }
  }
  if (cancel) return;
  g_h->timers = grow(g_h->timers, &g_h->timers_cap, g_h->timers_n + 1, sizeof *g_h->timers);
  g_h->timers[g_h->timers_n++] = (ttimer){d, at, copy(s.key, s.key_len), s.key_len};
}

flowlet_timestamp flowlet__host_watermark(void) { return g_h ? g_h->watermark : INT64_MIN; }
flowlet_timestamp flowlet__host_now(void) { return g_h ? g_h->now : 0; }

void flowlet__host_log(flowlet_level level, const char *msg, size_t len) {
  if (getenv("FLOWLET_TEST_LOG")) fprintf(stderr, "[operator %d] %.*s\n", (int)level, (int)len, msg);
  if (!g_h) return;
  g_h->logs = grow(g_h->logs, &g_h->logs_cap, g_h->logs_n + 1, sizeof *g_h->logs);
  g_h->logs[g_h->logs_n].level = level;
  g_h->logs[g_h->logs_n++].message = (char *)copy(msg, len);
}

static named *metric(named **list, size_t *n, size_t *cap, const char *name) {
  for (size_t i = 0; i < *n; i++)
    if (!strcmp((*list)[i].name, name)) return &(*list)[i];
  *list = grow(*list, cap, *n + 1, sizeof **list);
  (*list)[*n] = (named){(char *)copy(name, strlen(name)), 0, 0};
  return &(*list)[(*n)++];
}

void flowlet__host_counter_add(const char *name, uint64_t delta) {
  if (g_h) metric(&g_h->counters, &g_h->counters_n, &g_h->counters_cap, name)->count += delta;
}

void flowlet__host_gauge_set(const char *name, double value) {
  if (g_h) metric(&g_h->gauges, &g_h->gauges_n, &g_h->gauges_cap, name)->gauge = value;
}

// =============================================================================================
// The harness

static flowlet__str str_of(const char *s) { return (flowlet__str){(uint8_t *)s, strlen(s)}; }

flowlet_harness *flowlet_harness_new(const char *config) { return flowlet_harness_with_setup(config, NULL, 0, NULL, 0); }

flowlet_harness *flowlet_harness_with_setup(const char *config, const char *const *inputs, size_t n_inputs,
                                            const char *const *outputs, size_t n_outputs) {
  flowlet_harness *h = calloc(1, sizeof *h);
  if (!h) abort();
  h->watermark = INT64_MIN;
  g_h = h;
  if (!config) config = "null";
  static const char *const one_input[] = {"input"};
  if (!inputs) inputs = one_input, n_inputs = 1;
  flowlet__str in[32], outs[32];
  if (n_inputs > 32) n_inputs = 32;
  if (n_outputs > 31) n_outputs = 31;
  for (size_t i = 0; i < n_inputs; i++) in[i] = str_of(inputs[i]);
  for (size_t i = 0; i < n_outputs; i++) outs[i] = str_of(outputs[i]);
  flowlet__str op = str_of("operator");
  flowlet__setup(&op, in, n_inputs, outs, n_outputs);
  h->init_status = flowlet__init(config, strlen(config));
  if (h->init_status != FLOWLET_OK) h->init_error = (char *)copy(flowlet__error(), strlen(flowlet__error()));
  return h;
}

const char *flowlet_harness_init_error(const flowlet_harness *h) { return h->init_error; }
int flowlet_harness_init_status(const flowlet_harness *h) { return h->init_status; }

static void free_result(flowlet_result *r) {
  for (size_t i = 0; i < r->n; i++) {
    free(r->values[i]);
    free(r->keys[i]);
  }
  for (size_t i = 0; i < r->headers_n; i++) {
    free(r->headers[i].name);
    free(r->headers[i].value);
  }
  for (size_t i = 0; i < r->rejected_n; i++) free(r->reasons[i]);
  free(r->values);
  free(r->value_lens);
  free(r->keys);
  free(r->key_lens);
  free(r->timestamps);
  free(r->headers);
  free(r->rejected);
  free(r->reasons);
  free(r->routes);
  free((char *)r->error);
  free(r);
}

void flowlet_harness_free(flowlet_harness *h) {
  if (!h) return;
  for (size_t i = 0; i < h->entries_n; i++) {
    free(h->entries[i].key);
    free(h->entries[i].name);
    free(h->entries[i].map_key);
    free(h->entries[i].value);
  }
  for (size_t i = 0; i < h->timers_n; i++) free(h->timers[i].key);
  for (size_t i = 0; i < h->logs_n; i++) free(h->logs[i].message);
  for (size_t i = 0; i < h->counters_n; i++) free(h->counters[i].name);
  for (size_t i = 0; i < h->gauges_n; i++) free(h->gauges[i].name);
  for (size_t i = 0; i < h->results_n; i++) free_result(h->results[i]);
  free(h->entries);
  free(h->timers);
  free(h->logs);
  free(h->counters);
  free(h->gauges);
  free(h->results);
  free(h->init_error);
  if (g_h == h) g_h = NULL;
  free(h);
}

// A result of what `out` holds (its events when rc is OK) and `rej`'s rejections.
static const flowlet_result *result(flowlet_harness *h, int rc, flowlet_output *out, flowlet_output *rej) {
  flowlet_result *r = calloc(1, sizeof *r);
  if (!r) abort();
  r->status = rc == FLOWLET_OK ? FLOWLET_OK : FLOWLET_FAILED;
  if (rc != FLOWLET_OK) r->error = (char *)copy(flowlet__error(), strlen(flowlet__error()));
  size_t n = rc == FLOWLET_OK && out ? out->n : 0;
  r->n = n;
  r->values = xalloc(n * sizeof *r->values);
  r->value_lens = xalloc(n * sizeof *r->value_lens);
  r->keys = xalloc(n * sizeof *r->keys);
  r->key_lens = xalloc(n * sizeof *r->key_lens);
  r->timestamps = xalloc(n * sizeof *r->timestamps);
  uint32_t vs = 0, ks = 0;
  const uint8_t *values = out && out->values.ptr ? out->values.ptr : (const uint8_t *)"";
  const uint8_t *keys = out && out->keys.ptr ? out->keys.ptr : (const uint8_t *)"";
  for (size_t i = 0; i < n; i++) {
    r->value_lens[i] = out->value_ends[i] - vs;
    r->values[i] = (char *)copy(values + vs, r->value_lens[i]);
    r->key_lens[i] = out->key_ends[i] - ks;
    r->keys[i] = (char *)copy(keys + ks, r->key_lens[i]);
    r->timestamps[i] = out->timestamps[i];
    vs = out->value_ends[i];
    ks = out->key_ends[i];
  }
  size_t hn = n ? out->headers_len : 0;
  r->headers_n = hn;
  r->headers = xalloc(hn * sizeof *r->headers);
  for (size_t i = 0; i < hn; i++) {
    const flowlet__header *x = &out->headers[i];
    r->headers[i] = (flowlet_test_header){x->event, (char *)copy(x->name.ptr, x->name.len),
                                          (char *)copy(x->value.ptr, x->value.len), x->value.len};
  }
  r->routes = xalloc(n * sizeof *r->routes);
  for (size_t i = 0; i < n; i++) r->routes[i] = i < out->routes_len ? out->routes[i] : FLOWLET_MAIN;
  size_t rn = rc == FLOWLET_OK && rej ? rej->rejected_len : 0;
  r->rejected_n = rn;
  r->rejected = xalloc(rn * sizeof *r->rejected);
  r->reasons = xalloc(rn * sizeof *r->reasons);
  for (size_t i = 0; i < rn; i++) {
    r->rejected[i] = rej->rejected[i].event;
    r->reasons[i] = (char *)copy(rej->rejected[i].reason.ptr, rej->rejected[i].reason.len);
  }
  h->results = grow(h->results, &h->results_cap, h->results_n + 1, sizeof *h->results);
  h->results[h->results_n++] = r;
  return r;
}

// A batch of test events (its columns malloc'd; free with batch_free); values[i] overrides the
// value of event i.
static flowlet__batch make_batch_of(const flowlet_test_event *ev, const flowlet_bytes *bytes, size_t n) {
  flowlet_buf values = {0}, keys = {0};
  uint32_t *vends = xalloc(n * sizeof *vends), *kends = xalloc(n * sizeof *kends);
  int64_t *ts = xalloc(n * sizeof *ts);
  for (size_t i = 0; i < n; i++) {
    if (bytes) {
      flowlet_buf_append(&values, bytes[i].ptr, bytes[i].len);
    } else {
      const char *v = ev[i].value ? ev[i].value : "";
      flowlet_buf_append(&values, v, strlen(v));
    }
    if (ev[i].key) flowlet_buf_append_str(&keys, ev[i].key);
    vends[i] = (uint32_t)values.len;
    kends[i] = (uint32_t)keys.len;
    ts[i] = ev[i].timestamp;
  }
  return (flowlet__batch){values.ptr ? values.ptr : (const uint8_t *)"", values.len, vends,
                          keys.ptr ? keys.ptr : (const uint8_t *)"", keys.len, kends, ts, n, NULL, 0};
}

static flowlet__batch make_batch(const flowlet_test_event *ev, size_t n) { return make_batch_of(ev, NULL, n); }

static void batch_free(flowlet__batch *b) {
  if (b->values_len) free((void *)b->values);
  if (b->keys_len) free((void *)b->keys);
  free((void *)b->value_ends);
  free((void *)b->key_ends);
  free((void *)b->timestamps);
}

static const flowlet_result *process_from(flowlet_harness *h, uint32_t origin, const flowlet_test_event *events,
                                          size_t n) {
  g_h = h;
  flowlet__batch b = make_batch(events, n);
  flowlet_output out;
  flowlet__output_init(&out, n, 0);
  int rc = flowlet__process(&b, &out, origin);
  const flowlet_result *r = result(h, rc, &out, &out);
  flowlet__output_free(&out);
  batch_free(&b);
  return r;
}

const flowlet_result *flowlet_harness_process_events(flowlet_harness *h, const flowlet_test_event *events, size_t n) {
  return process_from(h, 0, events, n);
}

static flowlet_test_event *unkeyed(flowlet_harness *h, const char *const *values, size_t n) {
  flowlet_test_event *ev = xalloc(n * sizeof *ev);
  for (size_t i = 0; i < n; i++) ev[i] = (flowlet_test_event){values ? values[i] : NULL, NULL, h ? h->next_timestamp++ : (int64_t)i};
  return ev;
}

const flowlet_result *flowlet_harness_process_from(flowlet_harness *h, uint32_t origin, const char *const *values,
                                                   size_t n) {
  flowlet_test_event *ev = unkeyed(h, values, n);
  const flowlet_result *r = process_from(h, origin, ev, n);
  free(ev);
  return r;
}

const flowlet_result *flowlet_harness_process_bytes(flowlet_harness *h, const flowlet_bytes *values, size_t n) {
  flowlet_test_event *ev = unkeyed(h, NULL, n);
  g_h = h;
  flowlet__batch b = make_batch_of(ev, values, n);
  flowlet_output out;
  flowlet__output_init(&out, n, 0);
  int rc = flowlet__process(&b, &out, 0);
  const flowlet_result *r = result(h, rc, &out, &out);
  flowlet__output_free(&out);
  batch_free(&b);
  free(ev);
  return r;
}

const flowlet_result *flowlet_harness_process(flowlet_harness *h, const char *const *values, size_t n) {
  flowlet_test_event *ev = unkeyed(h, values, n);
  const flowlet_result *r = flowlet_harness_process_events(h, ev, n);
  free(ev);
  return r;
}

static int timer_order(const void *a, const void *b) {
  const ttimer *x = a, *y = b;
  if (x->at != y->at) return x->at < y->at ? -1 : 1;
  return bytes_cmp(x->key, x->key_len, y->key, y->key_len);
}

static const flowlet_result *fire(flowlet_harness *h, flowlet_time_domain d, flowlet_timestamp until) {
  ttimer *due = xalloc(h->timers_n * sizeof *due);
  size_t n = 0;
  for (size_t i = 0; i < h->timers_n;) {
    if (h->timers[i].domain == d && h->timers[i].at <= until) {
      due[n++] = h->timers[i];
      h->timers[i] = h->timers[--h->timers_n];
    } else {
      i++;
    }
  }
  qsort(due, n, sizeof *due, timer_order);
  flowlet_timer *timers = xalloc(n * sizeof *timers);
  for (size_t i = 0; i < n; i++) timers[i] = (flowlet_timer){due[i].key, due[i].key_len, d, due[i].at};
  flowlet_output out;
  flowlet__output_init(&out, n, 0);
  int rc = flowlet__timers(timers, n, &out);
  const flowlet_result *r = result(h, rc, &out, NULL);
  flowlet__output_free(&out);
  for (size_t i = 0; i < n; i++) free(due[i].key);
  free(due);
  free(timers);
  return r;
}

const flowlet_result *flowlet_harness_advance_watermark(flowlet_harness *h, flowlet_timestamp watermark) {
  g_h = h;
  if (watermark > h->watermark) h->watermark = watermark;
  return fire(h, FLOWLET_EVENT_TIME, watermark);
}

const flowlet_result *flowlet_harness_set_processing_time(flowlet_harness *h, flowlet_timestamp now) {
  g_h = h;
  h->now = now;
  for (size_t i = 0; i < h->entries_n;) {
    if (!live(&h->entries[i])) drop(&h->entries[i]);
    else i++;
  }
  return fire(h, FLOWLET_PROCESSING_TIME, now);
}

bool flowlet_harness_state(flowlet_harness *h, const char *key, const char *name, flowlet_bytes *value) {
  g_h = h;
  entry *e = find(flowlet_state_of(key ? key : "", key ? strlen(key) : 0), name, 0, NULL, 0);
  if (!e || !live(e)) return false;
  if (value) *value = (flowlet_bytes){e->value, e->value_len};
  return true;
}

bool flowlet_harness_map_state(flowlet_harness *h, const char *key, const char *name, const void *map_key,
                               size_t map_key_len, flowlet_bytes *value) {
  g_h = h;
  entry *e = find(flowlet_state_of(key ? key : "", key ? strlen(key) : 0), name, 1, map_key, map_key_len);
  if (!e || !live(e)) return false;
  if (value) *value = (flowlet_bytes){e->value, e->value_len};
  return true;
}

size_t flowlet_harness_timer_count(const flowlet_harness *h) { return h->timers_n; }
size_t flowlet_harness_log_count(const flowlet_harness *h) { return h->logs_n; }

const char *flowlet_harness_log(const flowlet_harness *h, size_t i, flowlet_level *level) {
  if (i >= h->logs_n) return NULL;
  if (level) *level = h->logs[i].level;
  return h->logs[i].message;
}

uint64_t flowlet_harness_counter(const flowlet_harness *h, const char *name) {
  for (size_t i = 0; i < h->counters_n; i++)
    if (!strcmp(h->counters[i].name, name)) return h->counters[i].count;
  return 0;
}

bool flowlet_harness_gauge(const flowlet_harness *h, const char *name, double *value) {
  for (size_t i = 0; i < h->gauges_n; i++)
    if (!strcmp(h->gauges[i].name, name)) {
      if (value) *value = h->gauges[i].gauge;
      return true;
    }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Aggregates

// Fold `n` events into the packed accumulators (slot of event i: slots[i]).
static const flowlet_result *add_events(flowlet_harness *h, flowlet_buf *accs, uint32_t **ends, size_t slots_n,
                                        const flowlet_test_event *ev, size_t n, const uint32_t *slots) {
  g_h = h;
  flowlet__batch b = make_batch(ev, n);
  flowlet_output rej;
  flowlet__output_init(&rej, 0, 0);
  flowlet_buf out = {0};
  uint32_t *out_ends = NULL;
  int rc = flowlet__agg_add(accs->ptr, accs->len, *ends, slots_n, &b, slots, n, &out, &out_ends, &rej);
  const flowlet_result *r = result(h, rc, NULL, &rej);
  if (rc == FLOWLET_OK) {
    flowlet_buf_free(accs);
    *accs = out;
    free(*ends);
    *ends = out_ends;
  } else {
    flowlet_buf_free(&out);
    free(out_ends);
  }
  flowlet__output_free(&rej);
  batch_free(&b);
  return r;
}

const flowlet_result *flowlet_harness_add(flowlet_harness *h, flowlet_buf *acc, const char *const *values, size_t n) {
  flowlet_test_event *ev = unkeyed(NULL, values, n);
  uint32_t *slots = calloc(n ? n : 1, sizeof *slots), *ends = xalloc(sizeof *ends);
  if (!slots) abort();
  ends[0] = (uint32_t)acc->len;
  const flowlet_result *r = add_events(h, acc, &ends, 1, ev, n, slots);
  free(ends);
  free(slots);
  free(ev);
  return r;
}

const flowlet_result *flowlet_harness_fold(flowlet_harness *h, const char *const *values, size_t n, flowlet_buf *acc) {
  g_h = h;
  *acc = (flowlet_buf){0};
  int rc = flowlet__agg_create(acc);
  if (rc != FLOWLET_OK) return result(h, rc, NULL, NULL);
  return flowlet_harness_add(h, acc, values, n);
}

const flowlet_result *flowlet_harness_merge(flowlet_harness *h, const flowlet_buf *a, const flowlet_buf *b,
                                            flowlet_buf *out) {
  g_h = h;
  *out = (flowlet_buf){0};
  int rc = flowlet__agg_merge(a->ptr, a->len, b->ptr, b->len, out);
  return result(h, rc, NULL, NULL);
}

const flowlet_result *flowlet_harness_finish(flowlet_harness *h, const flowlet_buf *acc, flowlet_timestamp start,
                                             flowlet_timestamp end, const char *key, uint32_t firing) {
  g_h = h;
  uint32_t key_end = key ? (uint32_t)strlen(key) : 0, acc_end = (uint32_t)acc->len;
  flowlet_output out;
  flowlet__output_init(&out, 1, 0);
  int rc = flowlet__agg_finish(&start, &end, (const uint8_t *)(key ? key : ""), key_end, &key_end, acc->ptr, acc->len,
                               &acc_end, &firing, 1, &out);
  const flowlet_result *r = result(h, rc, &out, NULL);
  flowlet__output_free(&out);
  return r;
}

typedef struct window_slot {
  const char *key;
  flowlet_timestamp start;
} window_slot;

static flowlet_timestamp floor_to(flowlet_timestamp t, flowlet_timestamp size) {
  flowlet_timestamp q = t / size;
  if (t % size < 0) q--;
  return q * size;
}

const flowlet_result *flowlet_harness_tumbling(flowlet_harness *h, const flowlet_test_event *ev, size_t n,
                                               flowlet_timestamp size) {
  g_h = h;
  flowlet_buf empty = {0};
  int rc = flowlet__agg_create(&empty);
  if (rc != FLOWLET_OK) return result(h, rc, NULL, NULL);
  window_slot *w = xalloc(n * sizeof *w);
  uint32_t *slots = xalloc(n * sizeof *slots);
  size_t wn = 0;
  for (size_t i = 0; i < n; i++) {
    const char *key = ev[i].key ? ev[i].key : "";
    flowlet_timestamp start = floor_to(ev[i].timestamp, size);
    size_t s = 0;
    while (s < wn && !(w[s].start == start && !strcmp(w[s].key, key))) s++;
    if (s == wn) w[wn++] = (window_slot){key, start};
    slots[i] = (uint32_t)s;
  }
  flowlet_buf accs = {0};
  uint32_t *ends = xalloc((wn ? wn : 1) * sizeof *ends);
  for (size_t s = 0; s < wn; s++) {
    flowlet_buf_append(&accs, empty.ptr, empty.len);
    ends[s] = (uint32_t)accs.len;
  }
  const flowlet_result *added = add_events(h, &accs, &ends, wn, ev, n, slots);
  if (added->status != FLOWLET_OK) {
    free(w);
    free(slots);
    free(ends);
    flowlet_buf_free(&accs);
    flowlet_buf_free(&empty);
    return added;
  }
  // Fire in (end, key) order.
  size_t *order = xalloc((wn ? wn : 1) * sizeof *order);
  for (size_t s = 0; s < wn; s++) order[s] = s;
  for (size_t a = 1; a < wn; a++)
    for (size_t b = a; b > 0; b--) {
      window_slot *x = &w[order[b - 1]], *y = &w[order[b]];
      if (x->start < y->start || (x->start == y->start && strcmp(x->key, y->key) <= 0)) break;
      size_t t = order[b - 1];
      order[b - 1] = order[b];
      order[b] = t;
    }
  int64_t *starts = xalloc((wn ? wn : 1) * sizeof *starts), *wends = xalloc((wn ? wn : 1) * sizeof *wends);
  uint32_t *key_ends = xalloc((wn ? wn : 1) * sizeof *key_ends), *acc_ends = xalloc((wn ? wn : 1) * sizeof *acc_ends);
  uint32_t *firings = calloc(wn ? wn : 1, sizeof *firings);
  if (!firings) abort();
  flowlet_buf keys = {0}, fired_accs = {0};
  for (size_t k = 0; k < wn; k++) {
    size_t s = order[k];
    starts[k] = w[s].start;
    wends[k] = w[s].start + size;
    flowlet_buf_append_str(&keys, w[s].key);
    key_ends[k] = (uint32_t)keys.len;
    uint32_t as = s ? ends[s - 1] : 0;
    flowlet_buf_append(&fired_accs, accs.ptr + as, ends[s] - as);
    acc_ends[k] = (uint32_t)fired_accs.len;
  }
  flowlet_output out;
  flowlet__output_init(&out, wn, 0);
  rc = flowlet__agg_finish(starts, wends, keys.ptr ? keys.ptr : (const uint8_t *)"", keys.len, key_ends,
                           fired_accs.ptr ? fired_accs.ptr : (const uint8_t *)"", fired_accs.len, acc_ends, firings, wn,
                           &out);
  // The rejections of the fold, the events of the finish.
  flowlet_output rej;
  flowlet__output_init(&rej, 0, 0);
  for (size_t i = 0; i < added->rejected_n; i++) {
    rej.rejected = grow(rej.rejected, &rej.rejected_cap, rej.rejected_len + 1, sizeof *rej.rejected);
    rej.rejected[rej.rejected_len++] =
        (flowlet__rejection){added->rejected[i], {copy(added->reasons[i], strlen(added->reasons[i])), strlen(added->reasons[i])}};
  }
  const flowlet_result *r = result(h, rc, &out, &rej);
  flowlet__output_free(&rej);
  flowlet__output_free(&out);
  flowlet_buf_free(&keys);
  flowlet_buf_free(&fired_accs);
  flowlet_buf_free(&accs);
  flowlet_buf_free(&empty);
  free(starts);
  free(wends);
  free(key_ends);
  free(acc_ends);
  free(firings);
  free(order);
  free(w);
  free(slots);
  free(ends);
  return r;
}

// =============================================================================================
// Checks

static int g_passed, g_failed;

bool flowlet_check(bool ok, const char *what, const char *file, int line) {
  if (ok) {
    g_passed++;
  } else {
    g_failed++;
    fprintf(stderr, "%s:%d: FAILED: %s\n", file, line, what);
  }
  return ok;
}

bool flowlet_check_str(const char *got, const char *want, const char *what, const char *file, int line) {
  bool ok = got && want ? strcmp(got, want) == 0 : got == want;
  if (!flowlet_check(ok, what, file, line))
    fprintf(stderr, "    got:  %s\n    want: %s\n", got ? got : "(null)", want ? want : "(null)");
  return ok;
}

bool flowlet_check_int(long long got, long long want, const char *what, const char *file, int line) {
  bool ok = got == want;
  if (!flowlet_check(ok, what, file, line)) fprintf(stderr, "    got:  %lld\n    want: %lld\n", got, want);
  return ok;
}

int flowlet_test_summary(void) {
  printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed ? 1 : 0;
}
