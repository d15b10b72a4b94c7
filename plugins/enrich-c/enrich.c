// enrich (C): the sample JSON enrich-and-filter operator, the same as plugins/enrich (Rust),
// plugins/enrich-python and plugins/enrich-js. See plugins/enrich/README.md for what it does.
//
// Built against the bindings `flowlet sdk c-bindings --world processor` generates (processor.h,
// processor.c, processor_component_type.o); see the Makefile.
//
// The input batch belongs to this code (it frees it); the output lists are freed by the
// bindings after the host has copied them, so they are malloc'd.

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "processor.h"

typedef exports_flowlet_operator_handler_batch_t batch_t;
typedef exports_flowlet_operator_handler_output_t output_t;
typedef exports_flowlet_operator_handler_error_t error_t_;

// ---------------------------------------------------------------------------------------------
// Settings

static double min_amount = 0;
static double high_amount = 1000;

// ---------------------------------------------------------------------------------------------
// A small JSON scanner: enough to find top-level members of an object and validate the rest.

typedef struct {
  const uint8_t *p;
  const uint8_t *end;
} cursor_t;

static void skip_ws(cursor_t *c) {
  while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

static int hex(uint8_t ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

// Skip a string (the cursor on its opening quote); false when it is not a valid JSON string.
static bool skip_string(cursor_t *c) {
  c->p++;
  while (c->p < c->end) {
    uint8_t ch = *c->p++;
    if (ch == '"') return true;
    if (ch < 0x20) return false;
    if (ch == '\\') {
      if (c->p >= c->end) return false;
      uint8_t e = *c->p++;
      if (e == 'u') {
        for (int i = 0; i < 4; i++)
          if (c->p >= c->end || hex(*c->p++) < 0) return false;
      } else if (!strchr("\"\\/bfnrt", e)) {
        return false;
      }
    }
  }
  return false;
}

static bool skip_digits(cursor_t *c) {
  const uint8_t *start = c->p;
  while (c->p < c->end && *c->p >= '0' && *c->p <= '9') c->p++;
  return c->p > start;
}

static bool skip_number(cursor_t *c) {
  if (c->p < c->end && *c->p == '-') c->p++;
  if (c->p < c->end && *c->p == '0') {
    c->p++;
  } else if (!skip_digits(c)) {
    return false;
  }
  if (c->p < c->end && *c->p == '.') {
    c->p++;
    if (!skip_digits(c)) return false;
  }
  if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
    c->p++;
    if (c->p < c->end && (*c->p == '+' || *c->p == '-')) c->p++;
    if (!skip_digits(c)) return false;
  }
  return true;
}

static bool skip_literal(cursor_t *c, const char *word) {
  size_t n = strlen(word);
  if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0) return false;
  c->p += n;
  return true;
}

static bool skip_value(cursor_t *c, int depth) {
  if (depth > 64) return false;
  skip_ws(c);
  if (c->p >= c->end) return false;
  switch (*c->p) {
    case '"':
      return skip_string(c);
    case '{':
    case '[': {
      uint8_t close = *c->p == '{' ? '}' : ']';
      bool object = close == '}';
      c->p++;
      skip_ws(c);
      if (c->p < c->end && *c->p == close) {
        c->p++;
        return true;
      }
      for (;;) {
        if (object) {
          skip_ws(c);
          if (c->p >= c->end || *c->p != '"' || !skip_string(c)) return false;
          skip_ws(c);
          if (c->p >= c->end || *c->p++ != ':') return false;
        }
        if (!skip_value(c, depth + 1)) return false;
        skip_ws(c);
        if (c->p >= c->end) return false;
        uint8_t ch = *c->p++;
        if (ch == close) return true;
        if (ch != ',') return false;
      }
    }
    case 't':
      return skip_literal(c, "true");
    case 'f':
      return skip_literal(c, "false");
    case 'n':
      return skip_literal(c, "null");
    default:
      return skip_number(c);
  }
}

// Decode the JSON string at [p, end) (both quotes included) into `out` (UTF-8, at most `cap`
// bytes); the length, or -1 when it does not fit.
static long decode_string(const uint8_t *p, const uint8_t *end, char *out, size_t cap) {
  size_t n = 0;
  p++;
  end--;
  while (p < end) {
    uint32_t cp = *p++;
    if (cp == '\\') {
      uint8_t e = *p++;
      switch (e) {
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u':
          cp = (uint32_t)(hex(p[0]) << 12 | hex(p[1]) << 8 | hex(p[2]) << 4 | hex(p[3]));
          p += 4;
          if (cp >= 0xD800 && cp < 0xDC00 && end - p >= 6 && p[0] == '\\' && p[1] == 'u') {
            uint32_t lo = (uint32_t)(hex(p[2]) << 12 | hex(p[3]) << 8 | hex(p[4]) << 4 | hex(p[5]));
            if (lo >= 0xDC00 && lo < 0xE000) {
              cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
              p += 6;
            }
          }
          break;
        default: cp = e; break;
      }
      uint8_t buf[4];
      size_t len;
      if (cp < 0x80) {
        buf[0] = (uint8_t)cp;
        len = 1;
      } else if (cp < 0x800) {
        buf[0] = (uint8_t)(0xC0 | cp >> 6);
        buf[1] = (uint8_t)(0x80 | (cp & 0x3F));
        len = 2;
      } else if (cp < 0x10000) {
        buf[0] = (uint8_t)(0xE0 | cp >> 12);
        buf[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        buf[2] = (uint8_t)(0x80 | (cp & 0x3F));
        len = 3;
      } else {
        buf[0] = (uint8_t)(0xF0 | cp >> 18);
        buf[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
        buf[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        buf[3] = (uint8_t)(0x80 | (cp & 0x3F));
        len = 4;
      }
      if (n + len > cap) return -1;
      memcpy(out + n, buf, len);
      n += len;
    } else {
      if (n + 1 > cap) return -1;
      out[n++] = (char)cp;
    }
  }
  return (long)n;
}

// Whether the JSON string at [p, end) is `name`.
static bool string_is(const uint8_t *p, const uint8_t *end, const char *name) {
  char buf[64];
  long n = decode_string(p, end, buf, sizeof buf);
  return n >= 0 && (size_t)n == strlen(name) && memcmp(buf, name, (size_t)n) == 0;
}

// A member of an object: the raw bytes of its name (quoted) and value.
typedef struct {
  const uint8_t *name, *name_end, *value, *value_end;
} member_t;

#define MAX_MEMBERS 256

// The top-level members of the object in [p, end); -1 when it is not one JSON object, -2 when it
// has more than MAX_MEMBERS members.
static int members_of(const uint8_t *p, const uint8_t *end, member_t *out) {
  cursor_t c = {p, end};
  skip_ws(&c);
  if (c.p >= c.end || *c.p != '{') return -1;
  c.p++;
  int n = 0;
  skip_ws(&c);
  if (c.p < c.end && *c.p == '}') {
    c.p++;
  } else {
    for (;;) {
      skip_ws(&c);
      if (c.p >= c.end || *c.p != '"') return -1;
      const uint8_t *name = c.p;
      if (!skip_string(&c)) return -1;
      const uint8_t *name_end = c.p;
      skip_ws(&c);
      if (c.p >= c.end || *c.p++ != ':') return -1;
      skip_ws(&c);
      const uint8_t *value = c.p;
      if (!skip_value(&c, 1)) return -1;
      if (n == MAX_MEMBERS) return -2;
      out[n++] = (member_t){name, name_end, value, c.p};
      skip_ws(&c);
      if (c.p >= c.end) return -1;
      uint8_t ch = *c.p++;
      if (ch == '}') break;
      if (ch != ',') return -1;
    }
  }
  skip_ws(&c);
  return c.p == c.end ? n : -1;
}

// The number at [p, end), if the value is a JSON number.
static bool number_of(const uint8_t *p, const uint8_t *end, double *out) {
  if (p >= end || !(*p == '-' || (*p >= '0' && *p <= '9'))) return false;
  char buf[128];
  size_t n = (size_t)(end - p);
  if (n >= sizeof buf) return false;
  memcpy(buf, p, n);
  buf[n] = 0;
  *out = strtod(buf, NULL);
  return true;
}

// ---------------------------------------------------------------------------------------------
// Regions by country code (matched without regard to ASCII case).

static const char *const EU[] = {"at", "be", "de", "dk", "es", "fi", "fr", "ie", "it", "nl", "pl", "pt", "se", NULL};
static const char *const NA[] = {"ca", "mx", "us", NULL};
static const char *const APAC[] = {"au", "cn", "in", "jp", "kr", "sg", NULL};

static bool listed(const char *const *list, const char *code) {
  for (; *list; list++)
    if (strcmp(*list, code) == 0) return true;
  return false;
}

static const char *region_of(const member_t *country) {
  if (!country || *country->value != '"') return "other";
  char code[16];
  long n = decode_string(country->value, country->value_end, code, sizeof code - 1);
  if (n < 0) return "other";
  code[n] = 0;
  for (long i = 0; i < n; i++)
    if (code[i] >= 'A' && code[i] <= 'Z') code[i] = (char)(code[i] - 'A' + 'a');
  if (listed(EU, code)) return "eu";
  if (listed(NA, code)) return "na";
  if (listed(APAC, code)) return "apac";
  return "other";
}

// ---------------------------------------------------------------------------------------------
// Growable output lists.

typedef struct {
  uint8_t *ptr;
  size_t len, cap;
} bytes_t;

static void put(bytes_t *b, const void *data, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 4096;
    while (cap < b->len + n) cap *= 2;
    b->ptr = realloc(b->ptr, cap);
    if (!b->ptr) abort();
    b->cap = cap;
  }
  memcpy(b->ptr + b->len, data, n);
  b->len += n;
}

static void put_str(bytes_t *b, const char *s) { put(b, s, strlen(s)); }

static void *grow(void *ptr, size_t *cap, size_t need, size_t size) {
  if (need <= *cap) return ptr;
  size_t n = *cap ? *cap * 2 : 256;
  while (n < need) n *= 2;
  ptr = realloc(ptr, n * size);
  if (!ptr) abort();
  *cap = n;
  return ptr;
}

static void fail(error_t_ *err, uint8_t tag, const char *message) {
  err->tag = tag;
  processor_string_dup(&err->val.failed, message);
}

// ---------------------------------------------------------------------------------------------
// The exports.

bool exports_flowlet_operator_handler_init(processor_string_t *config, error_t_ *err) {
  const uint8_t *p = config->ptr, *end = config->ptr + config->len;
  member_t members[MAX_MEMBERS];
  bool ok = true;
  char message[256];
  cursor_t c = {p, end};
  skip_ws(&c);
  if (skip_literal(&c, "null")) {
    skip_ws(&c);
    ok = c.p == c.end;
    if (!ok) snprintf(message, sizeof message, "the config is not JSON");
  } else {
    int n = members_of(p, end, members);
    if (n < 0) {
      ok = false;
      snprintf(message, sizeof message, "the config must be a map (min-amount, high-amount)");
    }
    for (int i = 0; ok && i < n; i++) {
      double *target = NULL;
      const char *name = NULL;
      if (string_is(members[i].name, members[i].name_end, "min-amount")) {
        target = &min_amount;
        name = "min-amount";
      } else if (string_is(members[i].name, members[i].name_end, "high-amount")) {
        target = &high_amount;
        name = "high-amount";
      } else {
        int len = (int)(members[i].name_end - members[i].name);
        snprintf(message, sizeof message, "unknown setting %.*s (expected min-amount, high-amount)", len > 64 ? 64 : len,
                 (const char *)members[i].name);
        ok = false;
      }
      if (ok && !number_of(members[i].value, members[i].value_end, target)) {
        snprintf(message, sizeof message, "`%s` must be a number", name);
        ok = false;
      }
    }
  }
  processor_string_free(config);
  if (!ok) fail(err, FLOWLET_OPERATOR_TYPES_ERROR_INVALID_CONFIG, message);
  return ok;
}

bool exports_flowlet_operator_handler_process(batch_t *input, output_t *ret, error_t_ *err) {
  (void)err;
  bytes_t values = {0}, keys = {0};
  uint32_t *value_ends = NULL, *key_ends = NULL;
  int64_t *timestamps = NULL;
  size_t ends_cap = 0, kends_cap = 0, ts_cap = 0, out = 0;
  flowlet_operator_types_rejection_t *rejected = NULL;
  size_t rejected_len = 0, rejected_cap = 0;
  member_t members[MAX_MEMBERS];

  uint32_t start = 0, kstart = 0;
  for (size_t i = 0; i < input->value_ends.len; i++) {
    const uint8_t *v = input->values.ptr + start, *v_end = input->values.ptr + input->value_ends.ptr[i];
    const uint8_t *k = input->keys.ptr + kstart;
    size_t klen = input->key_ends.ptr[i] - kstart;
    start = input->value_ends.ptr[i];
    kstart = input->key_ends.ptr[i];

    const char *reason = NULL;
    int n = members_of(v, v_end, members);
    const member_t *amount = NULL, *country = NULL;
    double x = 0;
    if (n == -2) {
      reason = "the object has too many members for this operator";
    } else if (n < 0) {
      reason = "the value is not a JSON object";
    } else {
      for (int m = 0; m < n; m++) {
        if (string_is(members[m].name, members[m].name_end, "amount")) amount = &members[m];
        if (string_is(members[m].name, members[m].name_end, "country")) country = &members[m];
      }
      if (!amount || !number_of(amount->value, amount->value_end, &x)) reason = "`amount` is missing or not a number";
    }
    if (reason) {
      rejected = grow(rejected, &rejected_cap, rejected_len + 1, sizeof *rejected);
      rejected[rejected_len].event = (uint32_t)i;
      processor_string_dup(&rejected[rejected_len].reason, reason);
      rejected_len++;
      continue;
    }
    if (x < min_amount) continue;

    // The object again, without `tier` and `region`, then the two new members.
    put_str(&values, "{");
    for (int m = 0; m < n; m++) {
      if (string_is(members[m].name, members[m].name_end, "tier") ||
          string_is(members[m].name, members[m].name_end, "region"))
        continue;
      put(&values, members[m].name, (size_t)(members[m].name_end - members[m].name));
      put_str(&values, ":");
      put(&values, members[m].value, (size_t)(members[m].value_end - members[m].value));
      put_str(&values, ",");
    }
    put_str(&values, "\"tier\":\"");
    put_str(&values, x >= high_amount ? "high" : "low");
    put_str(&values, "\",\"region\":\"");
    put_str(&values, region_of(country));
    put_str(&values, "\"}");
    put(&keys, k, klen);

    value_ends = grow(value_ends, &ends_cap, out + 1, sizeof *value_ends);
    key_ends = grow(key_ends, &kends_cap, out + 1, sizeof *key_ends);
    timestamps = grow(timestamps, &ts_cap, out + 1, sizeof *timestamps);
    value_ends[out] = (uint32_t)values.len;
    key_ends[out] = (uint32_t)keys.len;
    timestamps[out] = input->timestamps.ptr[i];
    out++;
  }
  flowlet_operator_types_batch_free(input);

  *ret = (output_t){0};
  ret->events.values = (processor_list_u8_t){values.ptr, values.len};
  ret->events.value_ends = (processor_list_u32_t){value_ends, out};
  ret->events.keys = (processor_list_u8_t){keys.ptr, keys.len};
  ret->events.key_ends = (processor_list_u32_t){key_ends, out};
  ret->events.timestamps = (flowlet_operator_types_list_timestamp_t){timestamps, out};
  ret->rejected = (flowlet_operator_types_list_rejection_t){rejected, rejected_len};
  return true;
}
