// {{name}}: adds "label": <config.label> to every JSON object event; anything else is rejected
// (and meets the operator's `on-error` policy).
//
// processor.h comes from `flowlet sdk c-bindings --world processor` (see the Makefile). The input
// batch belongs to this code, which frees it; output lists are freed by the bindings once the
// host has copied them, so they must come from malloc. For real JSON work, link a JSON library
// (e.g. cJSON) — this template only splices text.

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "processor.h"

static char *label = NULL;

static bool is_space(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// A JSON string literal of the config's "label" value, or "hello". (Naive: the config is
// {"label": "..."} or null.)
bool exports_flowlet_operator_handler_init(processor_string_t *config,
                                           exports_flowlet_operator_handler_error_t *err) {
  const char *key = "\"label\"";
  const uint8_t *p = config->ptr, *end = config->ptr + config->len;
  free(label);
  label = strdup("\"hello\"");
  for (const uint8_t *q = p; q + strlen(key) <= end; q++) {
    if (memcmp(q, key, strlen(key)) != 0) continue;
    q += strlen(key);
    while (q < end && (is_space(*q) || *q == ':')) q++;
    if (q >= end || *q != '"') {
      processor_string_free(config);
      err->tag = FLOWLET_OPERATOR_TYPES_ERROR_INVALID_CONFIG;
      processor_string_dup(&err->val.invalid_config, "`label` must be a string");
      return false;
    }
    const uint8_t *s = q++;
    while (q < end && *q != '"') q += *q == '\\' ? 2 : 1;
    free(label);
    label = strndup((const char *)s, (size_t)(q + 1 - s));
    break;
  }
  processor_string_free(config);
  return true;
}

typedef struct {
  uint8_t *ptr;
  size_t len, cap;
} buf_t;

static void *grow(void *ptr, size_t *cap, size_t need, size_t size) {
  if (need <= *cap) return ptr;
  size_t n = *cap ? *cap * 2 : 256;
  while (n < need) n *= 2;
  ptr = realloc(ptr, n * size);
  if (!ptr) abort();
  *cap = n;
  return ptr;
}

static void put(buf_t *b, const void *data, size_t n) {
  b->ptr = grow(b->ptr, &b->cap, b->len + n, 1);
  memcpy(b->ptr + b->len, data, n);
  b->len += n;
}

bool exports_flowlet_operator_handler_process(exports_flowlet_operator_handler_batch_t *input,
                                              exports_flowlet_operator_handler_output_t *ret,
                                              exports_flowlet_operator_handler_error_t *err) {
  (void)err;
  buf_t values = {0}, keys = {0};
  uint32_t *value_ends = NULL, *key_ends = NULL;
  int64_t *timestamps = NULL;
  flowlet_operator_types_rejection_t *rejected = NULL;
  size_t n = 0, n_cap = 0, k_cap = 0, t_cap = 0, r = 0, r_cap = 0;
  uint32_t start = 0, kstart = 0;
  for (size_t i = 0; i < input->value_ends.len; i++) {
    const uint8_t *v = input->values.ptr + start;
    size_t len = input->value_ends.ptr[i] - start;
    const uint8_t *k = input->keys.ptr + kstart;
    size_t klen = input->key_ends.ptr[i] - kstart;
    start = input->value_ends.ptr[i];
    kstart = input->key_ends.ptr[i];
    while (len && is_space(v[len - 1])) len--;
    while (len && is_space(*v)) v++, len--;
    if (len < 2 || v[0] != '{' || v[len - 1] != '}') {
      rejected = grow(rejected, &r_cap, r + 1, sizeof *rejected);
      rejected[r].event = (uint32_t)i;
      processor_string_dup(&rejected[r].reason, "the value is not a JSON object");
      r++;
      continue;
    }
    // {...} -> {...,"label":LABEL}
    bool empty = true;
    for (size_t j = 1; j + 1 < len; j++)
      if (!is_space(v[j])) empty = false;
    put(&values, v, len - 1);
    if (!empty) put(&values, ",", 1);
    put(&values, "\"label\":", 8);
    put(&values, label, strlen(label));
    put(&values, "}", 1);
    put(&keys, k, klen);
    value_ends = grow(value_ends, &n_cap, n + 1, sizeof *value_ends);
    key_ends = grow(key_ends, &k_cap, n + 1, sizeof *key_ends);
    timestamps = grow(timestamps, &t_cap, n + 1, sizeof *timestamps);
    value_ends[n] = (uint32_t)values.len;
    key_ends[n] = (uint32_t)keys.len;
    timestamps[n] = input->timestamps.ptr[i];
    n++;
  }
  flowlet_operator_types_batch_free(input);
  *ret = (exports_flowlet_operator_handler_output_t){0};
  ret->events.values = (processor_list_u8_t){values.ptr, values.len};
  ret->events.value_ends = (processor_list_u32_t){value_ends, n};
  ret->events.keys = (processor_list_u8_t){keys.ptr, keys.len};
  ret->events.key_ends = (processor_list_u32_t){key_ends, n};
  ret->events.timestamps = (flowlet_operator_types_list_timestamp_t){timestamps, n};
  ret->rejected = (flowlet_operator_types_list_rejection_t){rejected, r};
  return true;
}
