// flowlet.c: the C SDK of flowlet operators. See flowlet.h and README.md.
//
// Compiled for wasm32 it also implements the WIT exports of one world (processor by default,
// -DFLOWLET_WORLD_STATEFUL or -DFLOWLET_WORLD_AGGREGATOR) on top of the bindings of
// `flowlet sdk c-bindings`; compiled natively it leaves the host to flowlet_testing.c.

#include "flowlet.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__wasm__)
#define FLOWLET__WASM 1
#else
#define FLOWLET__WASM 0
#endif

// Which parts a component needs (natively: all of them, for the harness).
#if !FLOWLET__WASM
#define FLOWLET__HAS_PROCESS 1
#define FLOWLET__HAS_TIMERS 1
#define FLOWLET__HAS_STATE 1
#define FLOWLET__HAS_AGGREGATE 1
#elif defined(FLOWLET_WORLD_STATEFUL)
#define FLOWLET__HAS_PROCESS 1
#define FLOWLET__HAS_TIMERS 1
#define FLOWLET__HAS_STATE 1
#define FLOWLET__HAS_AGGREGATE 0
#elif defined(FLOWLET_WORLD_AGGREGATOR)
#define FLOWLET__HAS_PROCESS 0
#define FLOWLET__HAS_TIMERS 0
#define FLOWLET__HAS_STATE 0
#define FLOWLET__HAS_AGGREGATE 1
#else
#define FLOWLET__HAS_PROCESS 1
#define FLOWLET__HAS_TIMERS 0
#define FLOWLET__HAS_STATE 0
#define FLOWLET__HAS_AGGREGATE 0
#endif

#if FLOWLET__WASM
#define DEFINED(f) 1  // a component links the functions of its world
#else
#define DEFINED(f) ((f) != NULL)
// Natively a test links only the functions of its operator's world.
#pragma weak flowlet_init
#pragma weak flowlet_process
#pragma weak flowlet_on_timer
#pragma weak flowlet_create
#pragma weak flowlet_add
#pragma weak flowlet_merge
#pragma weak flowlet_finish
#pragma weak flowlet_accumulator_size
#endif

// =============================================================================================
// Memory and buffers

static void *xrealloc(void *p, size_t n) {
  p = realloc(p, n ? n : 1);
  if (!p) abort();
  return p;
}

static void *xmalloc(size_t n) { return xrealloc(NULL, n); }

static char *xstrndup(const char *s, size_t n) {
  char *p = xmalloc(n + 1);
  memcpy(p, s, n);
  p[n] = 0;
  return p;
}

static char *vformat(const char *fmt, va_list ap) {
  va_list copy;
  va_copy(copy, ap);
  int n = vsnprintf(NULL, 0, fmt, copy);
  va_end(copy);
  if (n < 0) return xstrndup("(unformattable message)", 23);
  char *s = xmalloc((size_t)n + 1);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  return s;
}

void flowlet_buf_reserve(flowlet_buf *b, size_t extra) {
  if (b->cap - b->len >= extra) return;
  size_t need = b->len + extra;
  if (need < b->len) abort();
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need) cap = cap * 2 > cap ? cap * 2 : need;
  b->ptr = xrealloc(b->ptr, cap);
  b->cap = cap;
}

static inline void buf_put(flowlet_buf *b, const void *data, size_t n) {
  if (b->cap - b->len < n) flowlet_buf_reserve(b, n);
  if (n) memcpy(b->ptr + b->len, data, n);
  b->len += n;
}

static inline void buf_byte(flowlet_buf *b, uint8_t c) {
  if (b->cap == b->len) flowlet_buf_reserve(b, 1);
  b->ptr[b->len++] = c;
}

void flowlet_buf_append(flowlet_buf *b, const void *data, size_t n) { buf_put(b, data, n); }
void flowlet_buf_append_str(flowlet_buf *b, const char *s) { buf_put(b, s, strlen(s)); }

void flowlet_buf_printf(flowlet_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  va_list copy;
  va_copy(copy, ap);
  int n = vsnprintf(NULL, 0, fmt, copy);
  va_end(copy);
  if (n > 0) {
    flowlet_buf_reserve(b, (size_t)n + 1);
    vsnprintf((char *)b->ptr + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
  }
  va_end(ap);
}

void flowlet_buf_free(flowlet_buf *b) {
  free(b->ptr);
  *b = (flowlet_buf){0};
}

// Message of the last FAILED / INVALID_CONFIG.
static char *g_error;

static int set_error(int code, const char *fmt, va_list ap) {
  free(g_error);
  g_error = vformat(fmt, ap);
  return code;
}

const char *flowlet__error(void) { return g_error ? g_error : "failed"; }

int flowlet_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  set_error(FLOWLET_FAILED, fmt, ap);
  va_end(ap);
  return FLOWLET_FAILED;
}

int flowlet_invalid_config(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  set_error(FLOWLET_INVALID_CONFIG, fmt, ap);
  va_end(ap);
  return FLOWLET_INVALID_CONFIG;
}

// What the SDK allocated for the function being called (state values, ranges): freed when it
// returns.
static void **g_arena;
static size_t g_arena_len, g_arena_cap;

#if defined(__GNUC__) || defined(__clang__)
__attribute__((unused))
#endif
static void *arena_keep(void *p) {
  if (!p) return p;
  if (g_arena_len == g_arena_cap) {
    g_arena_cap = g_arena_cap ? g_arena_cap * 2 : 16;
    g_arena = xrealloc(g_arena, g_arena_cap * sizeof *g_arena);
  }
  g_arena[g_arena_len++] = p;
  return p;
}

static void arena_free(void) {
  for (size_t i = 0; i < g_arena_len; i++) free(g_arena[i]);
  g_arena_len = 0;
}

// =============================================================================================
// UTF-8

// Length of the valid UTF-8 sequence at p (p < end, *p >= 0x80), or 0.
static size_t utf8_seq(const uint8_t *p, const uint8_t *end) {
  uint8_t c = p[0];
  size_t avail = (size_t)(end - p);
  if (c < 0xC2) return 0;
  if (c < 0xE0) return avail >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
  uint8_t lo = 0x80, hi = 0xBF;
  if (c < 0xF0) {
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
    return avail >= 3 && p[1] >= lo && p[1] <= hi && (p[2] & 0xC0) == 0x80 ? 3 : 0;
  }
  if (c < 0xF5) {
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
    return avail >= 4 && p[1] >= lo && p[1] <= hi && (p[2] & 0xC0) == 0x80 && (p[3] & 0xC0) == 0x80 ? 4 : 0;
  }
  return 0;
}

// Length of the maximal invalid subpart at p (what one U+FFFD replaces, as Rust's from_utf8_lossy).
static size_t utf8_bad_len(const uint8_t *p, const uint8_t *end) {
  uint8_t c = p[0];
  size_t avail = (size_t)(end - p), need;
  uint8_t lo = 0x80, hi = 0xBF;
  if (c < 0xC2 || c > 0xF4) return 1;
  if (c < 0xE0) {
    need = 2;
  } else if (c < 0xF0) {
    need = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else {
    need = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  }
  size_t i = 1;
  if (i < avail && p[1] >= lo && p[1] <= hi) {
    i = 2;
    while (i < need && i < avail && (p[i] & 0xC0) == 0x80) i++;
  }
  return i;
}

static bool utf8_valid(const uint8_t *p, size_t n) {
  const uint8_t *end = p + n;
  while (p < end) {
    if (*p < 0x80) {
      p++;
      continue;
    }
    size_t k = utf8_seq(p, end);
    if (!k) return false;
    p += k;
  }
  return true;
}

static size_t utf8_put(uint8_t *out, uint32_t cp) {
  if (cp < 0x80) {
    out[0] = (uint8_t)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (uint8_t)(0xC0 | cp >> 6);
    out[1] = (uint8_t)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (uint8_t)(0xE0 | cp >> 12);
    out[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
    out[2] = (uint8_t)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (uint8_t)(0xF0 | cp >> 18);
  out[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
  out[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
  out[3] = (uint8_t)(0x80 | (cp & 0x3F));
  return 4;
}

// =============================================================================================
// JSON: validation (with an index of a top-level object's members)

#define JSON_MAX_DEPTH 127  // serde_json's recursion limit: the 128th nested container fails
#define FJ_CANON 1u         // _flags: the text is already compact, with serde_json's escapes

typedef struct flowlet__member {
  const char *name;  // the name token, quotes included
  size_t name_len;
  const char *value;
  size_t value_len;
  int name_plain;  // no escapes in the name
  int canon;       // name and value already canonical
} flowlet__member;

struct flowlet__index {
  const char *doc;
  flowlet__member *members;
  size_t n, cap;
};

// Characters of a string that need a look: quote, backslash, controls, non-ASCII.
static const uint8_t STR_SPECIAL[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

static inline bool is_ws(uint8_t c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }
static inline bool is_digit(uint8_t c) { return c >= '0' && c <= '9'; }

static int hexval(uint8_t c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

typedef struct {
  const uint8_t *start, *p, *end;
  unsigned irregular;  // things a compact, serde_json-escaped text would not have
  const char *err;
  const uint8_t *err_at;
} jparse;

static char g_json_error[192];

static bool jfail(jparse *j, const char *msg, const uint8_t *at) {
  j->err = msg;
  j->err_at = at;
  return false;
}

// serde_json's "… at line L column C" (C: 1-based byte column of the offending byte).
static void json_error_message(const jparse *j, char *out, size_t cap) {
  size_t len = (size_t)(j->end - j->start);
  size_t i = (size_t)(j->err_at - j->start) + 1;
  if (i > len) i = len;
  size_t line_start = 0, line = 1;
  for (size_t k = 0; k < i; k++)
    if (j->start[k] == '\n') line_start = k + 1;
  for (size_t k = 0; k < line_start; k++)
    if (j->start[k] == '\n') line++;
  snprintf(out, cap, "%s at line %zu column %zu", j->err, line, i - line_start);
}

static inline void jws(jparse *j) {
  if (j->p < j->end && *j->p > ' ') return;  // the usual case: no whitespace
  const uint8_t *p = j->p;
  while (p < j->end && is_ws(*p)) p++;
  if (p != j->p) j->irregular++;
  j->p = p;
}

static bool jhex4(jparse *j, const uint8_t *p, uint32_t *cp) {
  if (j->end - p < 4) return jfail(j, "EOF while parsing a string", j->end);
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) {
    int h = hexval(p[i]);
    if (h < 0) return jfail(j, "invalid escape", p + i);
    v = v << 4 | (uint32_t)h;
  }
  *cp = v;
  return true;
}

// A string at j->p (on its quote); *plain: no escapes.
static bool jstring(jparse *j, int *plain) {
  const uint8_t *p = j->p + 1, *end = j->end;
  *plain = 1;
  for (;;) {
    while (p < end && !STR_SPECIAL[*p]) p++;
    if (p >= end) return jfail(j, "EOF while parsing a string", end);
    uint8_t c = *p;
    if (c == '"') {
      j->p = p + 1;
      return true;
    }
    if (c == '\\') {
      *plain = 0;
      if (p + 1 >= end) return jfail(j, "EOF while parsing a string", end);
      uint8_t e = p[1];
      switch (e) {
        case '"':
        case '\\':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
          p += 2;
          break;
        case '/':
          j->irregular++;
          p += 2;
          break;
        case 'u': {
          uint32_t cp;
          if (!jhex4(j, p + 2, &cp)) return false;
          bool canon = cp < 0x20 && cp != 8 && cp != 9 && cp != 10 && cp != 12 && cp != 13 &&
                       !(p[5] >= 'A' && p[5] <= 'F');
          if (!canon) j->irregular++;
          if (cp >= 0xDC00 && cp <= 0xDFFF) return jfail(j, "lone leading surrogate in hex escape", p + 5);
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (end - p < 8 || p[6] != '\\' || p[7] != 'u')
              return jfail(j, "unexpected end of hex escape", p + 6 < end ? p + 6 : end);
            uint32_t lo;
            if (!jhex4(j, p + 8, &lo)) return false;
            if (lo < 0xDC00 || lo > 0xDFFF) return jfail(j, "lone leading surrogate in hex escape", p + 11);
            p += 12;
          } else {
            p += 6;
          }
          break;
        }
        default:
          return jfail(j, "invalid escape", p + 1);
      }
    } else if (c < 0x20) {
      return jfail(j, "control character (\\u0000-\\u001F) found while parsing a string", p);
    } else {
      size_t k = utf8_seq(p, end);
      if (!k) return jfail(j, "invalid unicode code point", p);
      p += k;
    }
  }
}

static bool jnumber(jparse *j) {
  const uint8_t *p = j->p, *end = j->end, *start = p;
  if (*p == '-') {
    p++;
    if (p >= end) return jfail(j, "EOF while parsing a value", end);
  }
  // Decimal magnitude, to refuse what overflows a double (serde_json: number out of range).
  long mag = LONG_MIN;
  if (*p == '0') {
    p++;
    if (p < end && is_digit(*p)) return jfail(j, "invalid number", p);
  } else if (*p >= '1' && *p <= '9') {
    const uint8_t *d = p;
    while (p < end && is_digit(*p)) p++;
    mag = (long)(p - d) - 1;
  } else {
    return jfail(j, "invalid number", p);
  }
  if (p < end && *p == '.') {
    p++;
    if (p >= end) return jfail(j, "EOF while parsing a value", end);
    if (!is_digit(*p)) return jfail(j, "invalid number", p);
    const uint8_t *d = p;
    while (p < end && is_digit(*p)) p++;
    if (mag == LONG_MIN) {
      const uint8_t *q = d;
      while (q < p && *q == '0') q++;
      if (q < p) mag = -(long)(q - d) - 1;
    }
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    p++;
    bool neg = false;
    if (p < end && (*p == '+' || *p == '-')) neg = *p++ == '-';
    if (p >= end) return jfail(j, "EOF while parsing a value", end);
    if (!is_digit(*p)) return jfail(j, "invalid number", p);
    long e = 0;
    while (p < end && is_digit(*p)) {
      if (e < 100000000) e = e * 10 + (*p - '0');
      p++;
    }
    if (mag != LONG_MIN) mag += neg ? -e : e;
  }
  if (mag != LONG_MIN && mag >= 308) {
    size_t n = (size_t)(p - start);
    char small[64], *text = n < sizeof small ? small : xmalloc(n + 1);
    memcpy(text, start, n);
    text[n] = 0;
    double x = strtod(text, NULL);
    if (text != small) free(text);
    if (isinf(x)) return jfail(j, "number out of range", p - 1);
  }
  j->p = p;
  return true;
}

static bool jliteral(jparse *j, const char *word) {
  const uint8_t *p = j->p;
  for (size_t i = 0; word[i]; i++) {
    if (p + i >= j->end) return jfail(j, "EOF while parsing a value", j->end);
    if (p[i] != (uint8_t)word[i]) return jfail(j, "expected ident", p + i);
  }
  j->p = p + strlen(word);
  return true;
}

static inline void index_add(struct flowlet__index *idx, const flowlet__member *m) {
  if (idx->n == idx->cap) {
    idx->cap = idx->cap ? idx->cap * 2 : 16;
    idx->members = xrealloc(idx->members, idx->cap * sizeof *idx->members);
  }
  idx->members[idx->n++] = *m;
}

// One JSON value at j->p (after whitespace). With `idx`, the members of a top-level object are
// recorded.
static bool jvalue(jparse *j, struct flowlet__index *idx) {
  uint8_t stack[JSON_MAX_DEPTH];
  int depth = 0;
  flowlet__member m = {0};
  unsigned member_irregular = 0;
  bool record = false;

value:
  jws(j);
  if (j->p >= j->end) return jfail(j, "EOF while parsing a value", j->end);
  if (record && depth == 1) m.value = (const char *)j->p;
  switch (*j->p) {
    case '{':
    case '[': {
      uint8_t open = *j->p;
      if (depth == JSON_MAX_DEPTH) return jfail(j, "recursion limit exceeded", j->p);
      stack[depth++] = open;
      if (depth == 1 && open == '{' && idx) record = true;
      j->p++;
      jws(j);
      if (j->p >= j->end)
        return jfail(j, open == '{' ? "EOF while parsing an object" : "EOF while parsing a list", j->end);
      if (*j->p == (open == '{' ? '}' : ']')) {
        j->p++;
        depth--;
        goto after_value;
      }
      if (open == '[') goto value;
      goto key;
    }
    case '"': {
      int plain;
      if (!jstring(j, &plain)) return false;
      break;
    }
    case 't':
      if (!jliteral(j, "true")) return false;
      break;
    case 'f':
      if (!jliteral(j, "false")) return false;
      break;
    case 'n':
      if (!jliteral(j, "null")) return false;
      break;
    default:
      if (*j->p == '-' || is_digit(*j->p)) {
        if (!jnumber(j)) return false;
        break;
      }
      return jfail(j, "expected value", j->p);
  }

after_value:
  if (depth == 0) return true;
  if (record && depth == 1) {
    m.value_len = (size_t)((const char *)j->p - m.value);
    m.canon = j->irregular == member_irregular;
    index_add(idx, &m);
  }
  jws(j);
  {
    bool object = stack[depth - 1] == '{';
    if (j->p >= j->end) return jfail(j, object ? "EOF while parsing an object" : "EOF while parsing a list", j->end);
    uint8_t c = *j->p;
    if (c == ',') {
      j->p++;
      jws(j);
      if (j->p >= j->end) return jfail(j, "EOF while parsing a value", j->end);
      if (*j->p == (object ? '}' : ']')) return jfail(j, "trailing comma", j->p);
      if (object) goto key;
      goto value;
    }
    if (c == (object ? '}' : ']')) {
      j->p++;
      depth--;
      goto after_value;
    }
    return jfail(j, object ? "expected `,` or `}`" : "expected `,` or `]`", j->p);
  }

key:
  // j->p is on a non-whitespace character inside an object.
  if (*j->p != '"') return jfail(j, "key must be a string", j->p);
  if (record && depth == 1) {
    member_irregular = j->irregular;
    m.name = (const char *)j->p;
  }
  {
    int plain;
    if (!jstring(j, &plain)) return false;
    if (record && depth == 1) {
      m.name_len = (size_t)((const char *)j->p - m.name);
      m.name_plain = plain;
    }
  }
  jws(j);
  if (j->p >= j->end) return jfail(j, "EOF while parsing an object", j->end);
  if (*j->p != ':') return jfail(j, "expected `:`", j->p);
  j->p++;
  goto value;
}

static flowlet_json_type type_of(char c) {
  switch (c) {
    case '"':
      return FLOWLET_JSON_STRING;
    case '{':
      return FLOWLET_JSON_OBJECT;
    case '[':
      return FLOWLET_JSON_ARRAY;
    case 't':
    case 'f':
      return FLOWLET_JSON_BOOL;
    case 'n':
      return FLOWLET_JSON_NULL;
    default:
      return FLOWLET_JSON_NUMBER;
  }
}

static const flowlet_json JSON_INVALID = {NULL, 0, FLOWLET_JSON_INVALID, 0, NULL};
static const flowlet_json JSON_ABSENT = {NULL, 0, FLOWLET_JSON_ABSENT, 0, NULL};

static flowlet_json json_parse(const void *text, size_t len, struct flowlet__index *idx, char *err, size_t err_cap) {
  const uint8_t *s = text ? text : (const uint8_t *)"";
  jparse j = {s, s, s + len, 0, NULL, NULL};
  if (idx) {
    idx->n = 0;
    idx->doc = NULL;
  }
  while (j.p < j.end && is_ws(*j.p)) j.p++;
  const uint8_t *begin = j.p;
  j.irregular = 0;
  bool ok = jvalue(&j, idx);
  if (ok) {
    const uint8_t *value_end = j.p;
    while (j.p < j.end && is_ws(*j.p)) j.p++;
    if (j.p < j.end) ok = jfail(&j, "trailing characters", j.p);
    if (ok) {
      flowlet_json v = {(const char *)begin, (size_t)(value_end - begin), type_of((char)*begin),
                        j.irregular ? 0u : FJ_CANON, NULL};
      if (idx && v.type == FLOWLET_JSON_OBJECT) {
        idx->doc = v.text;
        v._index = idx;
      }
      return v;
    }
  }
  json_error_message(&j, err, err_cap);
  return JSON_INVALID;
}

flowlet_json flowlet_json_parse(const void *text, size_t len) {
  return json_parse(text, len, NULL, g_json_error, sizeof g_json_error);
}

flowlet_json flowlet_json_parse_str(const char *text) { return flowlet_json_parse(text, text ? strlen(text) : 0); }

const char *flowlet_json_error(void) { return g_json_error; }

// =============================================================================================
// JSON: reading validated text

static const char *skip_ws(const char *p, const char *end) {
  while (p < end && is_ws((uint8_t)*p)) p++;
  return p;
}

// Past the string whose quote is at p.
static const char *skip_string(const char *p, const char *end) {
  p++;
  while (p < end) {
    char c = *p;
    if (c == '"') return p + 1;
    p += c == '\\' ? 2 : 1;
  }
  return end;
}

static const char *skip_value(const char *p, const char *end) {
  char c = *p;
  if (c == '"') return skip_string(p, end);
  if (c == '{' || c == '[') {
    int depth = 0;
    while (p < end) {
      c = *p;
      if (c == '"') {
        p = skip_string(p, end);
        continue;
      }
      if (c == '{' || c == '[') {
        depth++;
      } else if (c == '}' || c == ']') {
        if (--depth == 0) return p + 1;
      }
      p++;
    }
    return end;
  }
  while (p < end && *p != ',' && *p != ']' && *p != '}' && !is_ws((uint8_t)*p)) p++;
  return p;
}

static flowlet_json view(const char *p, size_t len, uint32_t flags) {
  return (flowlet_json){p, len, type_of(*p), flags, NULL};
}

flowlet_json_iter flowlet_json_iterate(flowlet_json c) {
  flowlet_json_iter it = {NULL, NULL, 0, 1};
  if (c.type == FLOWLET_JSON_OBJECT || c.type == FLOWLET_JSON_ARRAY) {
    it._p = c.text + 1;
    it._end = c.text + c.len - 1;
    it._object = c.type == FLOWLET_JSON_OBJECT;
  }
  return it;
}

bool flowlet_json_next(flowlet_json_iter *it, flowlet_json *name, flowlet_json *value) {
  if (!it->_p) return false;
  const char *p = skip_ws(it->_p, it->_end), *end = it->_end;
  if (p >= end) return false;
  if (!it->_first) p = skip_ws(p + 1, end);  // the comma
  it->_first = 0;
  if (it->_object) {
    const char *n = p;
    p = skip_string(p, end);
    if (name) *name = view(n, (size_t)(p - n), 0);
    p = skip_ws(p, end) + 1;  // the colon
    p = skip_ws(p, end);
  } else if (name) {
    *name = JSON_ABSENT;
  }
  const char *v = p;
  p = skip_value(p, end);
  if (value) *value = view(v, (size_t)(p - v), 0);
  it->_p = p;
  return true;
}

size_t flowlet_json_count(flowlet_json v) {
  if (v._index && v._index->doc == v.text) return v._index->n;
  flowlet_json_iter it = flowlet_json_iterate(v);
  size_t n = 0;
  while (flowlet_json_next(&it, NULL, NULL)) n++;
  return n;
}

// Decode the validated string token [tok, tok+len) (quotes included) into out (room for len
// bytes); the decoded length.
static size_t decode_string(const char *tok, size_t len, uint8_t *out) {
  const uint8_t *p = (const uint8_t *)tok + 1, *end = (const uint8_t *)tok + len - 1;
  uint8_t *o = out;
  while (p < end) {
    const uint8_t *q = p;
    while (q < end && *q != '\\') q++;
    memcpy(o, p, (size_t)(q - p));
    o += q - p;
    p = q;
    if (p >= end) break;
    uint8_t e = p[1];
    p += 2;
    switch (e) {
      case 'b':
        *o++ = '\b';
        break;
      case 'f':
        *o++ = '\f';
        break;
      case 'n':
        *o++ = '\n';
        break;
      case 'r':
        *o++ = '\r';
        break;
      case 't':
        *o++ = '\t';
        break;
      case 'u': {
        uint32_t cp = (uint32_t)(hexval(p[0]) << 12 | hexval(p[1]) << 8 | hexval(p[2]) << 4 | hexval(p[3]));
        p += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          uint32_t lo = (uint32_t)(hexval(p[2]) << 12 | hexval(p[3]) << 8 | hexval(p[4]) << 4 | hexval(p[5]));
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          p += 6;
        }
        o += utf8_put(o, cp);
        break;
      }
      default:  // " \ /
        *o++ = e;
        break;
    }
  }
  return (size_t)(o - out);
}

// Whether the string token equals the bytes name[0..n).
static bool token_eq(const char *tok, size_t len, int plain, const char *name, size_t n) {
  if (plain) return len - 2 == n && memcmp(tok + 1, name, n) == 0;
  if (n > len - 2) return false;  // escapes only shrink
  uint8_t small[256], *buf = len <= sizeof small ? small : xmalloc(len);
  size_t d = decode_string(tok, len, buf);
  bool eq = d == n && memcmp(buf, name, n) == 0;
  if (buf != small) free(buf);
  return eq;
}

static bool has_backslash(const char *tok, size_t len) { return memchr(tok, '\\', len) != NULL; }

flowlet_json flowlet_json_get_n(flowlet_json obj, const char *name, size_t n) {
  if (obj.type == FLOWLET_JSON_INVALID) return JSON_INVALID;
  if (obj.type != FLOWLET_JSON_OBJECT) return JSON_ABSENT;
  if (obj._index && obj._index->doc == obj.text) {
    const struct flowlet__index *idx = obj._index;
    for (size_t i = idx->n; i-- > 0;) {
      const flowlet__member *m = &idx->members[i];
      if (m->name_plain ? m->name_len - 2 == n && memcmp(m->name + 1, name, n) == 0
                        : token_eq(m->name, m->name_len, 0, name, n))
        return view(m->value, m->value_len, m->canon ? FJ_CANON : 0);
    }
    return JSON_ABSENT;
  }
  flowlet_json_iter it = flowlet_json_iterate(obj);
  flowlet_json k, v, found = JSON_ABSENT;
  while (flowlet_json_next(&it, &k, &v))
    if (token_eq(k.text, k.len, !has_backslash(k.text, k.len), name, n)) found = v;
  if (found.type && (obj._flags & FJ_CANON)) found._flags = FJ_CANON;
  return found;
}

flowlet_json flowlet_json_get(flowlet_json obj, const char *name) { return flowlet_json_get_n(obj, name, strlen(name)); }

flowlet_json flowlet_json_at(flowlet_json a, size_t i) {
  if (a.type == FLOWLET_JSON_INVALID) return JSON_INVALID;
  if (a.type != FLOWLET_JSON_ARRAY) return JSON_ABSENT;
  flowlet_json_iter it = flowlet_json_iterate(a);
  flowlet_json v;
  for (size_t k = 0; flowlet_json_next(&it, NULL, &v); k++)
    if (k == i) {
      if (a._flags & FJ_CANON) v._flags = FJ_CANON;
      return v;
    }
  return JSON_ABSENT;
}

bool flowlet_json_pointer_valid(const char *p) {
  if (!p) return false;
  if (!*p) return true;
  if (*p != '/') return false;
  for (; *p; p++)
    if (*p == '~' && p[1] != '0' && p[1] != '1') return false;
  return true;
}

flowlet_json flowlet_json_pointer(flowlet_json v, const char *pointer) {
  if (v.type == FLOWLET_JSON_INVALID) return JSON_INVALID;
  if (v.type == FLOWLET_JSON_ABSENT || !flowlet_json_pointer_valid(pointer)) return JSON_ABSENT;
  const char *p = pointer;
  char small[128];
  while (*p) {
    p++;  // the slash
    const char *seg = p;
    while (*p && *p != '/') p++;
    size_t raw = (size_t)(p - seg);
    char *tok = raw < sizeof small ? small : xmalloc(raw + 1);
    size_t n = 0;
    for (const char *q = seg; q < p; q++) {
      if (*q == '~') {
        tok[n++] = q[1] == '0' ? '~' : '/';
        q++;
      } else {
        tok[n++] = *q;
      }
    }
    if (v.type == FLOWLET_JSON_OBJECT) {
      v = flowlet_json_get_n(v, tok, n);
    } else if (v.type == FLOWLET_JSON_ARRAY && n > 0 && n <= 19) {
      // As serde_json's pointers and Rust's usize parsing: digits, leading zeros allowed.
      size_t i = 0;
      bool digits = true;
      for (size_t k = 0; k < n; k++) {
        if (!is_digit((uint8_t)tok[k])) digits = false;
        else i = i * 10 + (size_t)(tok[k] - '0');
      }
      v = digits ? flowlet_json_at(v, i) : JSON_ABSENT;
    } else {
      v = JSON_ABSENT;
    }
    if (tok != small) free(tok);
    if (v.type == FLOWLET_JSON_ABSENT) return v;
  }
  return v;
}

bool flowlet_json_number(flowlet_json v, double *out) {
  if (v.type != FLOWLET_JSON_NUMBER) return false;
  // Fast path (exact): at most 15 digits and a power of ten a double holds exactly, e.g. 1234.5.
  static const double POW10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
  const char *p = v.text, *end = v.text + v.len;
  bool neg = *p == '-';
  p += neg;
  uint64_t mant = 0;
  int digits = 0, frac = 0;
  for (; p < end && is_digit((uint8_t)*p); p++, digits++) mant = mant * 10 + (uint64_t)(*p - '0');
  if (p < end && *p == '.')
    for (p++; p < end && is_digit((uint8_t)*p); p++, digits++, frac++) mant = mant * 10 + (uint64_t)(*p - '0');
  if (p == end && digits <= 15) {
    double x = (double)mant / POW10[frac];
    *out = neg ? -x : x;
    return true;
  }
  char small[64], *text = v.len < sizeof small ? small : xmalloc(v.len + 1);
  memcpy(text, v.text, v.len);
  text[v.len] = 0;
  *out = strtod(text, NULL);
  if (text != small) free(text);
  return true;
}

static bool integer_text(flowlet_json v) {
  if (v.type != FLOWLET_JSON_NUMBER) return false;
  for (size_t i = 0; i < v.len; i++)
    if (v.text[i] == '.' || v.text[i] == 'e' || v.text[i] == 'E') return false;
  return true;
}

bool flowlet_json_uint64(flowlet_json v, uint64_t *out) {
  if (!integer_text(v) || v.text[0] == '-') return false;
  uint64_t x = 0;
  for (size_t i = 0; i < v.len; i++) {
    uint64_t d = (uint64_t)(v.text[i] - '0');
    if (x > (UINT64_MAX - d) / 10) return false;
    x = x * 10 + d;
  }
  *out = x;
  return true;
}

bool flowlet_json_int64(flowlet_json v, int64_t *out) {
  if (!integer_text(v)) return false;
  bool neg = v.text[0] == '-';
  uint64_t x = 0;
  for (size_t i = neg; i < v.len; i++) {
    uint64_t d = (uint64_t)(v.text[i] - '0');
    if (x > (UINT64_MAX - d) / 10) return false;
    x = x * 10 + d;
  }
  if (neg ? x > (uint64_t)INT64_MAX + 1 : x > (uint64_t)INT64_MAX) return false;
  *out = neg ? (int64_t)(0 - x) : (int64_t)x;
  return true;
}

bool flowlet_json_bool(flowlet_json v, bool *out) {
  if (v.type != FLOWLET_JSON_BOOL) return false;
  *out = v.text[0] == 't';
  return true;
}

size_t flowlet_json_string(flowlet_json v, char *buf, size_t cap) {
  if (v.type != FLOWLET_JSON_STRING) return (size_t)-1;
  uint8_t small[256], *tmp = v.len <= sizeof small ? small : xmalloc(v.len);
  size_t n = decode_string(v.text, v.len, tmp);
  if (cap) {
    size_t k = n < cap - 1 ? n : cap - 1;
    memcpy(buf, tmp, k);
    buf[k] = 0;
  }
  if (tmp != small) free(tmp);
  return n;
}

bool flowlet_json_string_append(flowlet_json v, flowlet_buf *out) {
  if (v.type != FLOWLET_JSON_STRING) return false;
  flowlet_buf_reserve(out, v.len);
  out->len += decode_string(v.text, v.len, out->ptr + out->len);
  return true;
}

char *flowlet_json_string_dup(flowlet_json v) {
  if (v.type != FLOWLET_JSON_STRING) return NULL;
  char *s = xmalloc(v.len);
  s[decode_string(v.text, v.len, (uint8_t *)s)] = 0;
  return s;
}

bool flowlet_json_string_eq(flowlet_json v, const char *s) {
  return v.type == FLOWLET_JSON_STRING && token_eq(v.text, v.len, !has_backslash(v.text, v.len), s, strlen(s));
}

// =============================================================================================
// JSON: writing

// A double as serde_json (ryu) writes it: the shortest digits that read back, then ryu's layout.
static size_t format_double(double x, char *out) {
  char *o = out;
  if (signbit(x)) *o++ = '-';
  x = fabs(x);
  if (x == 0) {
    memcpy(o, "0.0", 3);
    return (size_t)(o - out) + 3;
  }
  char tmp[40];
  for (int prec = 0; prec < 17; prec++) {
    snprintf(tmp, sizeof tmp, "%.*e", prec, x);
    if (strtod(tmp, NULL) == x) break;
  }
  // tmp: d[.ddd]e[+-]xx
  char digits[24];
  int nd = 0;
  const char *t = tmp;
  for (; *t && *t != 'e'; t++)
    if (is_digit((uint8_t)*t)) digits[nd++] = *t;
  while (nd > 1 && digits[nd - 1] == '0') nd--;
  int e = atoi(t + 1);
  int kk = e + 1;  // 10^(kk-1) <= x < 10^kk
  int k = kk - nd;
  if (0 <= k && kk <= 16) {
    memcpy(o, digits, (size_t)nd);
    o += nd;
    for (int i = nd; i < kk; i++) *o++ = '0';
    *o++ = '.';
    *o++ = '0';
  } else if (0 < kk && kk <= 16) {
    memcpy(o, digits, (size_t)kk);
    o += kk;
    *o++ = '.';
    memcpy(o, digits + kk, (size_t)(nd - kk));
    o += nd - kk;
  } else if (-5 < kk && kk <= 0) {
    *o++ = '0';
    *o++ = '.';
    for (int i = 0; i < -kk; i++) *o++ = '0';
    memcpy(o, digits, (size_t)nd);
    o += nd;
  } else {
    *o++ = digits[0];
    if (nd > 1) {
      *o++ = '.';
      memcpy(o, digits + 1, (size_t)(nd - 1));
      o += nd - 1;
    }
    o += sprintf(o, "e%d", kk - 1);
  }
  return (size_t)(o - out);
}

static const char HEX[] = "0123456789abcdef";

// `s` as a JSON string, escaped as serde_json does; invalid UTF-8 becomes U+FFFD.
static void write_string(flowlet_buf *b, const uint8_t *s, size_t n) {
  flowlet_buf_reserve(b, n + 2);
  b->ptr[b->len++] = '"';
  const uint8_t *p = s, *end = s + n, *run = s;
  while (p < end) {
    uint8_t c = *p;
    if (!STR_SPECIAL[c]) {
      p++;
      continue;
    }
    if (c >= 0x80) {
      size_t k = utf8_seq(p, end);
      if (k) {
        p += k;
        continue;
      }
      buf_put(b, run, (size_t)(p - run));
      buf_put(b, "\xEF\xBF\xBD", 3);
      p += utf8_bad_len(p, end);
      run = p;
      continue;
    }
    buf_put(b, run, (size_t)(p - run));
    char esc[6] = {'\\', 0, 0, 0, 0, 0};
    size_t len = 2;
    switch (c) {
      case '"':
        esc[1] = '"';
        break;
      case '\\':
        esc[1] = '\\';
        break;
      case '\b':
        esc[1] = 'b';
        break;
      case '\f':
        esc[1] = 'f';
        break;
      case '\n':
        esc[1] = 'n';
        break;
      case '\r':
        esc[1] = 'r';
        break;
      case '\t':
        esc[1] = 't';
        break;
      default:
        memcpy(esc + 1, "u00", 3);
        esc[4] = HEX[c >> 4];
        esc[5] = HEX[c & 15];
        len = 6;
    }
    buf_put(b, esc, len);
    p++;
    run = p;
  }
  buf_put(b, run, (size_t)(p - run));
  buf_byte(b, '"');
}

// A validated string token, re-escaped the serde_json way.
static void write_string_token(flowlet_buf *b, const char *tok, size_t len) {
  if (!has_backslash(tok, len)) {
    buf_put(b, tok, len);
    return;
  }
  uint8_t small[256], *tmp = len <= sizeof small ? small : xmalloc(len);
  size_t n = decode_string(tok, len, tmp);
  write_string(b, tmp, n);
  if (tmp != small) free(tmp);
}

// A validated value, compact and re-escaped.
static void write_canon(flowlet_buf *b, const char *text, size_t len, uint32_t flags) {
  if (flags & FJ_CANON) {
    buf_put(b, text, len);
    return;
  }
  const char *p = text, *end = text + len;
  flowlet_buf_reserve(b, len);
  while (p < end) {
    char c = *p;
    if (is_ws((uint8_t)c)) {
      p++;
    } else if (c == '"') {
      const char *q = skip_string(p, end);
      write_string_token(b, p, (size_t)(q - p));
      p = q;
    } else {
      const char *q = p + 1;
      while (q < end && *q != '"' && !is_ws((uint8_t)*q)) q++;
      buf_put(b, p, (size_t)(q - p));
      p = q;
    }
  }
}

void flowlet_jw_init(flowlet_json_writer *w, flowlet_buf *buf) { *w = (flowlet_json_writer){.buf = buf}; }

static inline bool bit_get(const uint64_t *bits, uint32_t i) { return bits[(i >> 6) & 1] >> (i & 63) & 1; }
static inline void bit_set(uint64_t *bits, uint32_t i, bool v) {
  uint64_t m = (uint64_t)1 << (i & 63);
  if (v) bits[(i >> 6) & 1] |= m;
  else bits[(i >> 6) & 1] &= ~m;
}

// Before a value (or key): the comma.
static void jw_sep(flowlet_json_writer *w) {
  if (w->_after_key) {
    w->_after_key = 0;
    return;
  }
  if (w->_depth == 0) return;
  if (bit_get(w->_nonempty, w->_depth)) buf_byte(w->buf, ',');
  else bit_set(w->_nonempty, w->_depth, true);
}

static void jw_open(flowlet_json_writer *w, char c) {
  jw_sep(w);
  buf_byte(w->buf, (uint8_t)c);
  w->_depth++;
  bit_set(w->_nonempty, w->_depth, false);
  bit_set(w->_array, w->_depth, c == '[');
}

void flowlet_jw_object(flowlet_json_writer *w) { jw_open(w, '{'); }
void flowlet_jw_array(flowlet_json_writer *w) { jw_open(w, '['); }

void flowlet_jw_end(flowlet_json_writer *w) {
  if (w->_depth == 0) return;
  buf_byte(w->buf, bit_get(w->_array, w->_depth) ? ']' : '}');
  w->_depth--;
}

void flowlet_jw_key_n(flowlet_json_writer *w, const void *name, size_t len) {
  jw_sep(w);
  write_string(w->buf, name, len);
  buf_byte(w->buf, ':');
  w->_after_key = 1;
}

void flowlet_jw_key(flowlet_json_writer *w, const char *name) { flowlet_jw_key_n(w, name, strlen(name)); }

void flowlet_jw_string_n(flowlet_json_writer *w, const void *s, size_t len) {
  jw_sep(w);
  write_string(w->buf, s, len);
}

void flowlet_jw_string(flowlet_json_writer *w, const char *s) { flowlet_jw_string_n(w, s, strlen(s)); }

void flowlet_jw_number(flowlet_json_writer *w, double x) {
  jw_sep(w);
  if (!isfinite(x)) {
    buf_put(w->buf, "null", 4);
    return;
  }
  char tmp[40];
  buf_put(w->buf, tmp, format_double(x, tmp));
}

void flowlet_jw_int(flowlet_json_writer *w, int64_t x) {
  jw_sep(w);
  char tmp[24];
  buf_put(w->buf, tmp, (size_t)snprintf(tmp, sizeof tmp, "%lld", (long long)x));
}

void flowlet_jw_uint(flowlet_json_writer *w, uint64_t x) {
  jw_sep(w);
  char tmp[24];
  buf_put(w->buf, tmp, (size_t)snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)x));
}

void flowlet_jw_bool(flowlet_json_writer *w, bool b) {
  jw_sep(w);
  if (b) buf_put(w->buf, "true", 4);
  else buf_put(w->buf, "false", 5);
}

void flowlet_jw_null(flowlet_json_writer *w) {
  jw_sep(w);
  buf_put(w->buf, "null", 4);
}

void flowlet_jw_json(flowlet_json_writer *w, flowlet_json v) {
  jw_sep(w);
  if (v.type < FLOWLET_JSON_NULL) buf_put(w->buf, "null", 4);
  else write_canon(w->buf, v.text, v.len, v._flags);
}

void flowlet_jw_raw(flowlet_json_writer *w, const char *text, size_t len) {
  jw_sep(w);
  buf_put(w->buf, text, len);
}

static void write_field_value(flowlet_json_writer *w, const flowlet_field *f) {
  switch (f->kind) {
    case FLOWLET_FIELD_STRING:
      flowlet_jw_string(w, f->as.s ? f->as.s : "");
      break;
    case FLOWLET_FIELD_NUMBER:
      flowlet_jw_number(w, f->as.d);
      break;
    case FLOWLET_FIELD_INT:
      flowlet_jw_int(w, f->as.i);
      break;
    case FLOWLET_FIELD_BOOL:
      flowlet_jw_bool(w, f->as.b);
      break;
    case FLOWLET_FIELD_JSON:
      flowlet_jw_json(w, f->as.j);
      break;
    case FLOWLET_FIELD_RAW:
      flowlet_jw_raw(w, f->as.s, strlen(f->as.s));
      break;
    default:
      flowlet_jw_null(w);
  }
}

// The members of an object: from its index, or scanned into `scratch`.
static const flowlet__member *members_of(flowlet_json obj, struct flowlet__index *scratch, size_t *n) {
  if (obj._index && obj._index->doc == obj.text) {
    *n = obj._index->n;
    return obj._index->members;
  }
  scratch->n = 0;
  flowlet_json_iter it = flowlet_json_iterate(obj);
  flowlet_json k, v;
  while (flowlet_json_next(&it, &k, &v)) {
    flowlet__member m = {k.text, k.len, v.text, v.len, !has_backslash(k.text, k.len), (obj._flags & FJ_CANON) != 0};
    index_add(scratch, &m);
  }
  *n = scratch->n;
  return scratch->members;
}

static bool member_names_eq(const flowlet__member *a, const flowlet__member *b) {
  if (a->name_plain && b->name_plain)
    return a->name_len == b->name_len && memcmp(a->name, b->name, a->name_len) == 0;
  uint8_t small[256], *tmp = b->name_len <= sizeof small ? small : xmalloc(b->name_len);
  size_t n = decode_string(b->name, b->name_len, tmp);
  bool eq = token_eq(a->name, a->name_len, a->name_plain, (const char *)tmp, n);
  if (tmp != small) free(tmp);
  return eq;
}

// A cheap fingerprint of a member's name (equal names, equal fingerprints): its decoded length
// and outer bytes.
static uint32_t name_print(const flowlet__member *m) {
  if (!m->name_plain) return 0;  // escaped names: compared in full
  size_t n = m->name_len - 2;
  return n ? (uint32_t)n << 16 | (uint32_t)(uint8_t)m->name[1] << 8 | (uint8_t)m->name[n] : 1;
}

static inline bool member_is(const flowlet__member *m, const char *name, size_t n) {
  if (m->name_plain) return m->name_len - 2 == n && memcmp(m->name + 1, name, n) == 0;
  return token_eq(m->name, m->name_len, 0, name, n);
}

bool flowlet_jw_object_with(flowlet_json_writer *w, flowlet_json obj, const flowlet_field *fields, size_t nf) {
  if (obj.type != FLOWLET_JSON_OBJECT) return false;
  struct flowlet__index scratch = {0};
  size_t n;
  const flowlet__member *m = members_of(obj, &scratch, &n);
  // Per field: its name's length, whether a member took it; per member: the hash of its name.
  size_t small_len[16], *flen = nf <= 16 ? small_len : xmalloc(nf * sizeof *flen);
  uint8_t small_used[16], *used = nf <= 16 ? small_used : xmalloc(nf);
  uint32_t small_hash[64], *hash = n <= 64 ? small_hash : xmalloc(n * sizeof *hash);
  for (size_t k = 0; k < nf; k++) {
    flen[k] = strlen(fields[k].name);
    used[k] = 0;
  }
  for (size_t i = 0; i < n; i++) hash[i] = name_print(&m[i]);
  flowlet_jw_object(w);
  for (size_t i = 0; i < n; i++) {
    // A name seen before was written at its first place; a name given again: its last value.
    bool seen = false;
    for (size_t k = 0; k < i && !seen; k++) seen = (hash[k] == hash[i] || !hash[k] || !hash[i]) && member_names_eq(&m[k], &m[i]);
    if (seen) continue;
    size_t last = i;
    for (size_t k = i + 1; k < n; k++)
      if ((hash[k] == hash[i] || !hash[k] || !hash[i]) && member_names_eq(&m[k], &m[i])) last = k;
    const flowlet_field *f = NULL;
    for (size_t k = 0; k < nf; k++)
      if (member_is(&m[i], fields[k].name, flen[k])) {
        f = &fields[k];
        used[k] = 1;
      }
    if (f && f->kind == FLOWLET_FIELD_REMOVE) continue;
    jw_sep(w);
    write_canon(w->buf, m[i].name, m[i].name_len, m[i].canon ? FJ_CANON : 0);
    buf_byte(w->buf, ':');
    if (f) {
      w->_after_key = 1;
      write_field_value(w, f);
    } else {
      write_canon(w->buf, m[last].value, m[last].value_len, m[last].canon ? FJ_CANON : 0);
    }
  }
  for (size_t k = 0; k < nf; k++) {
    if (used[k] || fields[k].kind == FLOWLET_FIELD_REMOVE) continue;
    // A field given twice: the first takes the place, the last gives the value.
    bool dup = false;
    for (size_t q = 0; q < k && !dup; q++) dup = flen[q] == flen[k] && memcmp(fields[q].name, fields[k].name, flen[k]) == 0;
    if (dup) continue;
    const flowlet_field *f = &fields[k];
    for (size_t q = k + 1; q < nf; q++)
      if (flen[q] == flen[k] && memcmp(fields[q].name, fields[k].name, flen[k]) == 0) f = &fields[q];
    if (f->kind == FLOWLET_FIELD_REMOVE) continue;
    flowlet_jw_key_n(w, f->name, flen[k]);
    write_field_value(w, f);
  }
  flowlet_jw_end(w);
  if (flen != small_len) free(flen);
  if (used != small_used) free(used);
  if (hash != small_hash) free(hash);
  free(scratch.members);
  return true;
}

// =============================================================================================
// Events

struct flowlet__ctx {
  const flowlet__batch *in;
  uint32_t *header_order;  // header indexes grouped by event
  uint32_t *header_start;  // per event, into header_order (n + 1 entries)
  struct flowlet__index index;
  char json_error[192];
  flowlet_buf text;
};

flowlet_json flowlet_event_json(const flowlet_event *ce) {
  flowlet_event *e = (flowlet_event *)ce;  // the SDK's own, never const: the cache
  if (!e->_json_done) {
    struct flowlet__ctx *ctx = e->_ctx;
    e->_json = ctx ? json_parse(e->value, e->value_len, &ctx->index, ctx->json_error, sizeof ctx->json_error)
                   : json_parse(e->value, e->value_len, NULL, g_json_error, sizeof g_json_error);
    e->_json_done = 1;
  }
  return e->_json;
}

const char *flowlet_event_json_error(const flowlet_event *e) {
  if (flowlet_event_json(e).type != FLOWLET_JSON_INVALID) return NULL;
  return e->_ctx ? e->_ctx->json_error : g_json_error;
}

flowlet_json flowlet_event_field(const flowlet_event *e, const char *pointer) {
  return flowlet_json_pointer(flowlet_event_json(e), pointer);
}

static flowlet_buf g_text;  // the text of an event made outside a batch

const char *flowlet_event_text(const flowlet_event *ce, size_t *len) {
  flowlet_event *e = (flowlet_event *)ce;
  flowlet_buf *text = e->_ctx ? &e->_ctx->text : &g_text;
  if (!e->_text_ok) {
    e->_text_ok = utf8_valid(e->value, e->value_len) ? 1 : -1;
    if (e->_text_ok > 0) {
      text->len = 0;
      buf_put(text, e->value, e->value_len);
      buf_byte(text, 0);
    }
  }
  if (len) *len = e->value_len;
  return e->_text_ok > 0 ? (const char *)text->ptr : NULL;
}

size_t flowlet_event_header_count(const flowlet_event *e) { return e->_header_count; }

bool flowlet_event_header(const flowlet_event *e, size_t i, flowlet_bytes *name, flowlet_bytes *value) {
  if (!e->_ctx || i >= e->_header_count) return false;
  const flowlet__header *h = &e->_ctx->in->headers[e->_ctx->header_order[e->_header_first + i]];
  if (name) *name = (flowlet_bytes){h->name.ptr, h->name.len};
  if (value) *value = (flowlet_bytes){h->value.ptr, h->value.len};
  return true;
}

bool flowlet_event_header_get(const flowlet_event *e, const char *name, flowlet_bytes *value) {
  size_t n = strlen(name);
  flowlet_bytes k, v;
  for (size_t i = 0; flowlet_event_header(e, i, &k, &v); i++)
    if (k.len == n && memcmp(k.ptr, name, n) == 0) {
      if (value) *value = v;
      return true;
    }
  return false;
}

// Check a batch's columns; set up the header index.
static int ctx_begin(struct flowlet__ctx *ctx, const flowlet__batch *in) {
  ctx->in = in;
  uint32_t prev = 0, kprev = 0;
  for (size_t i = 0; i < in->n; i++) {
    if (in->value_ends[i] < prev || in->value_ends[i] > in->values_len || in->key_ends[i] < kprev ||
        in->key_ends[i] > in->keys_len)
      return flowlet_fail("malformed batch: event %zu is out of its columns", i);
    prev = in->value_ends[i];
    kprev = in->key_ends[i];
  }
  if (in->headers_len) {
    ctx->header_start = calloc(in->n + 1, sizeof *ctx->header_start);
    ctx->header_order = xmalloc(in->headers_len * sizeof *ctx->header_order);
    if (!ctx->header_start) abort();
    for (size_t h = 0; h < in->headers_len; h++) {
      if (in->headers[h].event >= in->n) return flowlet_fail("malformed batch: a header of event %u", in->headers[h].event);
      ctx->header_start[in->headers[h].event + 1]++;
    }
    for (size_t i = 0; i < in->n; i++) ctx->header_start[i + 1] += ctx->header_start[i];
    uint32_t *fill = xmalloc((in->n + 1) * sizeof *fill);
    memcpy(fill, ctx->header_start, (in->n + 1) * sizeof *fill);
    for (size_t h = 0; h < in->headers_len; h++) ctx->header_order[fill[in->headers[h].event]++] = (uint32_t)h;
    free(fill);
  }
  return FLOWLET_OK;
}

static void ctx_end(struct flowlet__ctx *ctx) {
  free(ctx->header_order);
  free(ctx->header_start);
  free(ctx->index.members);
  flowlet_buf_free(&ctx->text);
  *ctx = (struct flowlet__ctx){0};
}

static void event_at(flowlet_event *e, struct flowlet__ctx *ctx, size_t i) {
  const flowlet__batch *in = ctx->in;
  uint32_t vs = i ? in->value_ends[i - 1] : 0, ks = i ? in->key_ends[i - 1] : 0;
  *e = (flowlet_event){0};
  e->value = in->values + vs;
  e->value_len = in->value_ends[i] - vs;
  e->key = in->keys + ks;
  e->key_len = in->key_ends[i] - ks;
  e->timestamp = in->timestamps[i];
  e->index = (uint32_t)i;
  e->_ctx = ctx;
  if (ctx->header_start) {
    e->_header_first = ctx->header_start[i];
    e->_header_count = ctx->header_start[i + 1] - ctx->header_start[i];
  }
}

// =============================================================================================
// Output

void flowlet__output_init(flowlet_output *out, size_t events_hint, size_t bytes_hint) {
  *out = (flowlet_output){0};
  if (events_hint) {
    out->cap = events_hint;
    out->value_ends = xmalloc(events_hint * sizeof *out->value_ends);
    out->key_ends = xmalloc(events_hint * sizeof *out->key_ends);
    out->timestamps = xmalloc(events_hint * sizeof *out->timestamps);
  }
  if (bytes_hint) flowlet_buf_reserve(&out->values, bytes_hint);
  flowlet_jw_init(&out->writer, &out->values);
}

static void free_header(flowlet__header *h) {
  free(h->name.ptr);
  free(h->value.ptr);
}

// The setup: the operator's name, its inputs and outputs (NUL-terminated copies).
static char *g_operator;
static char **g_inputs, **g_outputs;
static size_t g_n_inputs, g_n_outputs;
static const char *g_origin = "";

static char **copy_names(const flowlet__str *names, size_t n) {
  char **out = xmalloc((n ? n : 1) * sizeof *out);
  for (size_t i = 0; i < n; i++) out[i] = xstrndup((const char *)names[i].ptr, names[i].len);
  return out;
}

static void free_names(char **names, size_t n) {
  for (size_t i = 0; names && i < n; i++) free(names[i]);
  free(names);
}

void flowlet__setup(const flowlet__str *operator_name, const flowlet__str *inputs, size_t n_inputs,
                    const flowlet__str *outputs, size_t n_outputs) {
  free(g_operator);
  free_names(g_inputs, g_n_inputs);
  free_names(g_outputs, g_n_outputs);
  g_operator = xstrndup(operator_name ? (const char *)operator_name->ptr : "operator",
                        operator_name ? operator_name->len : 8);
  g_inputs = copy_names(inputs, n_inputs);
  g_n_inputs = n_inputs;
  g_outputs = copy_names(outputs, n_outputs > 31 ? 31 : n_outputs);
  g_n_outputs = n_outputs > 31 ? 31 : n_outputs;
}

const char *flowlet_operator_name(void) { return g_operator ? g_operator : "operator"; }
size_t flowlet_input_count(void) { return g_n_inputs; }
const char *flowlet_input_name(size_t i) { return i < g_n_inputs ? g_inputs[i] : NULL; }
size_t flowlet_output_count(void) { return g_n_outputs; }
const char *flowlet_output_name(size_t i) { return i < g_n_outputs ? g_outputs[i] : NULL; }
const char *flowlet_event_input(const flowlet_event *e) {
  (void)e;
  return g_origin;
}

uint32_t flowlet_output_port(const char *name) {
  if (strcmp(name, "main") == 0) return FLOWLET_MAIN;
  for (size_t i = 0; i < g_n_outputs; i++) {
    if (strcmp(g_outputs[i], name) == 0) return 1u << (i + 1);
  }
  return 0;
}

void flowlet_route(flowlet_output *out, uint32_t port) {
  if (out->n == 0 || out->n == out->mark_n) return;  // nothing emitted (for this event) yet
  size_t need = out->n;
  if (need > out->routes_cap) {
    out->routes_cap = need * 2;
    out->routes = xrealloc(out->routes, out->routes_cap * sizeof *out->routes);
  }
  while (out->routes_len < need - 1) out->routes[out->routes_len++] = FLOWLET_MAIN;
  out->routes[out->routes_len++] = port;
}

void flowlet__finish_routes(flowlet_output *out) {
  if (out->routes_len == 0) return;
  if (out->n > out->routes_cap) {
    out->routes_cap = out->n;
    out->routes = xrealloc(out->routes, out->routes_cap * sizeof *out->routes);
  }
  while (out->routes_len < out->n) out->routes[out->routes_len++] = FLOWLET_MAIN;
}

void flowlet__output_free(flowlet_output *out) {
  free(out->routes);
  flowlet_buf_free(&out->values);
  flowlet_buf_free(&out->keys);
  free(out->value_ends);
  free(out->key_ends);
  free(out->timestamps);
  for (size_t i = 0; i < out->headers_len; i++) free_header(&out->headers[i]);
  free(out->headers);
  for (size_t i = 0; i < out->rejected_len; i++) free(out->rejected[i].reason.ptr);
  free(out->rejected);
  free(out->reason);
  *out = (flowlet_output){0};
}

// What a rejection discards: everything after this.
static void out_mark(flowlet_output *out) {
  out->mark_n = out->n;
  out->mark_values = out->values.len;
  out->mark_keys = out->keys.len;
  out->mark_headers = out->headers_len;
  out->emitting = 0;
}

static void out_truncate(flowlet_output *out) {
  out->n = out->mark_n;
  if (out->routes_len > out->n) out->routes_len = out->n;
  out->values.len = out->mark_values;
  out->keys.len = out->mark_keys;
  while (out->headers_len > out->mark_headers) free_header(&out->headers[--out->headers_len]);
  out->emitting = 0;
}

// The value is in out->values: close the event.
static void out_push(flowlet_output *out, const void *key, size_t key_len, int64_t ts) {
  if (out->n == out->cap) {
    out->cap = out->cap ? out->cap * 2 : 64;
    out->value_ends = xrealloc(out->value_ends, out->cap * sizeof *out->value_ends);
    out->key_ends = xrealloc(out->key_ends, out->cap * sizeof *out->key_ends);
    out->timestamps = xrealloc(out->timestamps, out->cap * sizeof *out->timestamps);
  }
  if (out->values.len > UINT32_MAX || out->keys.len + key_len > UINT32_MAX) abort();
  buf_put(&out->keys, key, key_len);
  out->value_ends[out->n] = (uint32_t)out->values.len;
  out->key_ends[out->n] = (uint32_t)out->keys.len;
  out->timestamps[out->n] = ts;
  out->n++;
}

static void out_header(flowlet_output *out, uint32_t event, const void *name, size_t nlen, const void *v, size_t vlen) {
  if (out->headers_len == out->headers_cap) {
    out->headers_cap = out->headers_cap ? out->headers_cap * 2 : 8;
    out->headers = xrealloc(out->headers, out->headers_cap * sizeof *out->headers);
  }
  flowlet__header *h = &out->headers[out->headers_len++];
  h->event = event;
  h->name = (flowlet__str){nlen ? xmalloc(nlen) : NULL, nlen};
  h->value = (flowlet__str){vlen ? xmalloc(vlen) : NULL, vlen};
  if (nlen) memcpy(h->name.ptr, name, nlen);
  if (vlen) memcpy(h->value.ptr, v, vlen);
}

void flowlet_emit_with(flowlet_output *out, const void *key, size_t key_len, const void *value, size_t len,
                       flowlet_timestamp ts) {
  if (out->emitting) out->values.len = out->emit_start, out->emitting = 0;
  buf_put(&out->values, value, len);
  out_push(out, key, key ? key_len : 0, ts);
}

void flowlet_emit(flowlet_output *out, const void *value, size_t len) {
  flowlet_emit_with(out, out->default_key, out->default_key_len, value, len, out->default_timestamp);
}

void flowlet_emit_str(flowlet_output *out, const char *value) { flowlet_emit(out, value, strlen(value)); }

void flowlet_forward(flowlet_output *out) {
  const flowlet_event *e = out->current;
  if (!e) return;  // only while handling an input event
  flowlet_emit_with(out, e->key, e->key_len, e->value, e->value_len, e->timestamp);
  flowlet_bytes k, v;
  for (size_t i = 0; flowlet_event_header(e, i, &k, &v); i++) out_header(out, (uint32_t)(out->n - 1), k.ptr, k.len, v.ptr, v.len);
}

void flowlet_forward_to(flowlet_output *out, uint32_t port) {
  size_t before = out->n;
  flowlet_forward(out);
  if (out->n > before) flowlet_route(out, port);
}

void flowlet_emit_header(flowlet_output *out, const char *name, const void *value, size_t len) {
  if (out->n == 0 || out->n == out->mark_n) return;  // nothing emitted (for this event) yet
  out_header(out, (uint32_t)(out->n - 1), name, strlen(name), value, len);
}

flowlet_buf *flowlet_emit_begin(flowlet_output *out) {
  if (out->emitting) out->values.len = out->emit_start;
  out->emitting = 1;
  out->emit_start = out->values.len;
  return &out->values;
}

flowlet_json_writer *flowlet_emit_json(flowlet_output *out) {
  flowlet_emit_begin(out);
  flowlet_jw_init(&out->writer, &out->values);
  return &out->writer;
}

void flowlet_emit_end_with(flowlet_output *out, const void *key, size_t key_len, flowlet_timestamp ts) {
  if (!out->emitting) return;
  out->emitting = 0;
  out_push(out, key, key ? key_len : 0, ts);
}

void flowlet_emit_end(flowlet_output *out) {
  flowlet_emit_end_with(out, out->default_key, out->default_key_len, out->default_timestamp);
}

bool flowlet_emit_object_with(flowlet_output *out, flowlet_json obj, const flowlet_field *fields, size_t n) {
  if (obj.type != FLOWLET_JSON_OBJECT) return false;
  flowlet_json_writer *w = flowlet_emit_json(out);
  flowlet_jw_object_with(w, obj, fields, n);
  flowlet_emit_end(out);
  return true;
}

int flowlet_reject(flowlet_output *out, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  free(out->reason);
  out->reason = vformat(fmt, ap);
  va_end(ap);
  out_truncate(out);
  return FLOWLET_REJECTED;
}

int flowlet_reject_event(const flowlet_event *ce, const char *fmt, ...) {
  flowlet_event *e = (flowlet_event *)ce;
  va_list ap;
  va_start(ap, fmt);
  free(e->_reason);
  e->_reason = vformat(fmt, ap);
  va_end(ap);
  return FLOWLET_REJECTED;
}

static void out_reject(flowlet_output *out, uint32_t event, char *reason) {
  if (out->rejected_len == out->rejected_cap) {
    out->rejected_cap = out->rejected_cap ? out->rejected_cap * 2 : 8;
    out->rejected = xrealloc(out->rejected, out->rejected_cap * sizeof *out->rejected);
  }
  size_t len = strlen(reason);
  if (!len) {  // an empty list holds no memory (the bindings free only non-empty ones)
    free(reason);
    reason = NULL;
  }
  out->rejected[out->rejected_len++] = (flowlet__rejection){event, {(uint8_t *)reason, len}};
}

// The reason of a rejection (taken from wherever it was given).
static char *take_reason(flowlet_output *out, flowlet_event *e) {
  char *r = NULL;
  if (out && out->reason) {
    r = out->reason;
    out->reason = NULL;
  }
  if (e && e->_reason) {
    if (!r) r = e->_reason;
    else free(e->_reason);
    e->_reason = NULL;
  }
  return r ? r : xstrndup("rejected", 8);
}

// =============================================================================================
// Config

static char *g_config_text;

flowlet_json flowlet_config_get(const flowlet_config *c, const char *name) {
  flowlet_json v = flowlet_json_get(c->json, name);
  return v.type == FLOWLET_JSON_INVALID ? JSON_ABSENT : v;
}

static void join_names(flowlet_buf *b, const char *const names[]) {
  for (size_t i = 0; names[i]; i++) {
    if (i) flowlet_buf_append_str(b, ", ");
    flowlet_buf_append_str(b, names[i]);
  }
  buf_byte(b, 0);
}

int flowlet_config_expect(const flowlet_config *c, const char *const names[]) {
  if (c->json.type == FLOWLET_JSON_NULL) return FLOWLET_OK;
  flowlet_buf list = {0};
  join_names(&list, names);
  int rc = FLOWLET_OK;
  if (c->json.type != FLOWLET_JSON_OBJECT) {
    rc = flowlet_invalid_config("the config must be a map (%s)", (char *)list.ptr);
  } else {
    flowlet_json_iter it = flowlet_json_iterate(c->json);
    flowlet_json k;
    while (rc == FLOWLET_OK && flowlet_json_next(&it, &k, NULL)) {
      bool known = false;
      for (size_t i = 0; names[i] && !known; i++) known = flowlet_json_string_eq(k, names[i]);
      if (!known) {
        flowlet_buf quoted = {0};
        write_string_token(&quoted, k.text, k.len);
        rc = flowlet_invalid_config("unknown setting %.*s (expected %s)", (int)quoted.len, (char *)quoted.ptr,
                                    (char *)list.ptr);
        flowlet_buf_free(&quoted);
      }
    }
  }
  flowlet_buf_free(&list);
  return rc;
}

static int read_setting(const flowlet_setting *s, flowlet_json v) {
  switch (s->kind) {
    case FLOWLET_SETTING_NUMBER:
      return flowlet_json_number(v, s->target) ? FLOWLET_OK : flowlet_invalid_config("`%s` must be a number", s->name);
    case FLOWLET_SETTING_INT:
      return flowlet_json_int64(v, s->target) ? FLOWLET_OK : flowlet_invalid_config("`%s` must be an integer", s->name);
    case FLOWLET_SETTING_BOOL:
      return flowlet_json_bool(v, s->target) ? FLOWLET_OK : flowlet_invalid_config("`%s` must be a boolean", s->name);
    case FLOWLET_SETTING_STRING:
    case FLOWLET_SETTING_POINTER: {
      char *text = flowlet_json_string_dup(v);
      if (!text) return flowlet_invalid_config("`%s` must be a string", s->name);
      if (s->kind == FLOWLET_SETTING_POINTER && !flowlet_json_pointer_valid(text)) {
        int rc = flowlet_invalid_config(
            "`%s`: `%s` is not a JSON pointer: it must be empty or start with `/` (e.g. `/user/id`), and `~` may "
            "only be followed by 0 or 1",
            s->name, text);
        free(text);
        return rc;
      }
      *(char **)s->target = text;
      return FLOWLET_OK;
    }
    default:
      *(flowlet_json *)s->target = v;
      return FLOWLET_OK;
  }
}

int flowlet_config_read(const flowlet_config *c, const flowlet_setting *settings, size_t n) {
  if (c->json.type == FLOWLET_JSON_NULL) return FLOWLET_OK;
  flowlet_buf list = {0};
  for (size_t i = 0; i < n; i++) {
    if (i) flowlet_buf_append_str(&list, ", ");
    flowlet_buf_append_str(&list, settings[i].name);
  }
  buf_byte(&list, 0);
  int rc = FLOWLET_OK;
  if (c->json.type != FLOWLET_JSON_OBJECT) {
    rc = flowlet_invalid_config("the config must be a map (%s)", (char *)list.ptr);
  } else {
    flowlet_json_iter it = flowlet_json_iterate(c->json);
    flowlet_json k;
    while (rc == FLOWLET_OK && flowlet_json_next(&it, &k, NULL)) {
      const flowlet_setting *s = NULL;
      for (size_t i = 0; i < n && !s; i++)
        if (flowlet_json_string_eq(k, settings[i].name)) s = &settings[i];
      if (s) {
        rc = read_setting(s, flowlet_config_get(c, s->name));  // a name given twice: its last value
      } else {
        flowlet_buf quoted = {0};
        write_string_token(&quoted, k.text, k.len);
        rc = flowlet_invalid_config("unknown setting %.*s (expected %s)", (int)quoted.len, (char *)quoted.ptr,
                                    (char *)list.ptr);
        flowlet_buf_free(&quoted);
      }
    }
  }
  flowlet_buf_free(&list);
  return rc;
}

int flowlet_config_number(const flowlet_config *c, const char *name, double *out) {
  flowlet_json v = flowlet_config_get(c, name);
  if (v.type == FLOWLET_JSON_ABSENT) return FLOWLET_OK;
  return flowlet_json_number(v, out) ? FLOWLET_OK : flowlet_invalid_config("`%s` must be a number", name);
}

int flowlet_config_int(const flowlet_config *c, const char *name, int64_t *out) {
  flowlet_json v = flowlet_config_get(c, name);
  if (v.type == FLOWLET_JSON_ABSENT) return FLOWLET_OK;
  return flowlet_json_int64(v, out) ? FLOWLET_OK : flowlet_invalid_config("`%s` must be an integer", name);
}

int flowlet_config_bool(const flowlet_config *c, const char *name, bool *out) {
  flowlet_json v = flowlet_config_get(c, name);
  if (v.type == FLOWLET_JSON_ABSENT) return FLOWLET_OK;
  return flowlet_json_bool(v, out) ? FLOWLET_OK : flowlet_invalid_config("`%s` must be a boolean", name);
}

int flowlet_config_string(const flowlet_config *c, const char *name, char **out) {
  flowlet_json v = flowlet_config_get(c, name);
  if (v.type == FLOWLET_JSON_ABSENT) return FLOWLET_OK;
  if (v.type != FLOWLET_JSON_STRING) return flowlet_invalid_config("`%s` must be a string", name);
  *out = flowlet_json_string_dup(v);
  return FLOWLET_OK;
}

int flowlet__init(const char *config, size_t len) {
  free(g_config_text);
  g_config_text = xstrndup(config ? config : "", len);
  char err[192];
  flowlet_config c = {json_parse(g_config_text, len, NULL, err, sizeof err)};
  if (c.json.type == FLOWLET_JSON_INVALID) return flowlet_invalid_config("config is not JSON: %s", err);
  if (!DEFINED(flowlet_init)) return FLOWLET_OK;
  int rc = flowlet_init(&c);
  arena_free();
  if (rc == FLOWLET_OK || rc == FLOWLET_INVALID_CONFIG) return rc;
  if (rc != FLOWLET_FAILED) flowlet_fail("flowlet_init returned %d", rc);
  return FLOWLET_FAILED;
}

// =============================================================================================
// Logs and metrics

void flowlet_log(flowlet_level level, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *msg = vformat(fmt, ap);
  va_end(ap);
  flowlet__host_log(level, msg, strlen(msg));
  free(msg);
}

void flowlet_counter_add(const char *name, uint64_t delta) { flowlet__host_counter_add(name, delta); }
void flowlet_gauge_set(const char *name, double value) { flowlet__host_gauge_set(name, value); }

// =============================================================================================
// State and timers

flowlet_state flowlet_event_state(const flowlet_event *e) { return (flowlet_state){e->key, e->key_len}; }
flowlet_state flowlet_timer_state(const flowlet_timer *t) { return (flowlet_state){t->key, t->key_len}; }
flowlet_state flowlet_state_of(const void *key, size_t key_len) { return (flowlet_state){key, key_len}; }

#if FLOWLET__HAS_STATE
bool flowlet_state_get(flowlet_state s, const char *name, flowlet_bytes *out) {
  flowlet__str v = {0};
  if (!flowlet__host_value_get(s, name, &v)) return false;
  arena_keep(v.ptr);
  if (out) *out = (flowlet_bytes){v.ptr ? v.ptr : (const uint8_t *)"", v.len};
  return true;
}

void flowlet_state_put(flowlet_state s, const char *name, const void *value, size_t len) {
  flowlet__host_value_put(s, name, value, len, NULL);
}

void flowlet_state_put_ttl(flowlet_state s, const char *name, const void *value, size_t len, uint64_t ttl_ms) {
  uint64_t ttl = ttl_ms ? ttl_ms : 1;
  flowlet__host_value_put(s, name, value, len, &ttl);
}

void flowlet_state_delete(flowlet_state s, const char *name) { flowlet__host_value_delete(s, name); }

uint64_t flowlet_state_get_u64(flowlet_state s, const char *name) {
  flowlet_bytes b;
  if (!flowlet_state_get(s, name, &b) || b.len != 8) return 0;
  uint64_t x = 0;
  for (int i = 7; i >= 0; i--) x = x << 8 | b.ptr[i];
  return x;
}

void flowlet_state_put_u64(flowlet_state s, const char *name, uint64_t value) {
  uint8_t b[8];
  for (int i = 0; i < 8; i++) b[i] = (uint8_t)(value >> (8 * i));
  flowlet_state_put(s, name, b, 8);
}

flowlet_json flowlet_state_get_json(flowlet_state s, const char *name) {
  flowlet_bytes b;
  if (!flowlet_state_get(s, name, &b)) return JSON_ABSENT;
  return flowlet_json_parse(b.ptr, b.len);
}

void flowlet_state_put_json(flowlet_state s, const char *name, flowlet_json value) {
  flowlet_buf b = {0};
  flowlet_json_writer w;
  flowlet_jw_init(&w, &b);
  flowlet_jw_json(&w, value);
  flowlet_state_put(s, name, b.ptr, b.len);
  flowlet_buf_free(&b);
}

bool flowlet_state_map_get(flowlet_state s, const char *name, const void *k, size_t klen, flowlet_bytes *out) {
  flowlet__str v = {0};
  if (!flowlet__host_map_get(s, name, k, klen, &v)) return false;
  arena_keep(v.ptr);
  if (out) *out = (flowlet_bytes){v.ptr ? v.ptr : (const uint8_t *)"", v.len};
  return true;
}

void flowlet_state_map_put(flowlet_state s, const char *name, const void *k, size_t klen, const void *v, size_t len) {
  flowlet__host_map_put(s, name, k, klen, v, len, NULL);
}

void flowlet_state_map_put_ttl(flowlet_state s, const char *name, const void *k, size_t klen, const void *v, size_t len,
                               uint64_t ttl_ms) {
  uint64_t ttl = ttl_ms ? ttl_ms : 1;
  flowlet__host_map_put(s, name, k, klen, v, len, &ttl);
}

void flowlet_state_map_delete(flowlet_state s, const char *name, const void *k, size_t klen) {
  flowlet__host_map_delete(s, name, k, klen);
}

size_t flowlet_state_map_range(flowlet_state s, const char *name, const void *start, size_t slen, const void *end,
                               size_t elen, uint32_t limit, const flowlet_entry **entries) {
  flowlet__str *pairs = NULL;
  size_t n = flowlet__host_map_range(s, name, start, slen, end, elen, limit, &pairs);
  flowlet_entry *e = arena_keep(xmalloc(n * sizeof *e));
  for (size_t i = 0; i < n; i++) {
    arena_keep(pairs[2 * i].ptr);
    arena_keep(pairs[2 * i + 1].ptr);
    e[i].key = (flowlet_bytes){pairs[2 * i].ptr ? pairs[2 * i].ptr : (const uint8_t *)"", pairs[2 * i].len};
    e[i].value = (flowlet_bytes){pairs[2 * i + 1].ptr ? pairs[2 * i + 1].ptr : (const uint8_t *)"", pairs[2 * i + 1].len};
  }
  free(pairs);
  if (entries) *entries = e;
  return n;
}

void flowlet_timer_register(flowlet_state s, flowlet_time_domain d, flowlet_timestamp at) {
  flowlet__host_timer(s, d, at, false);
}

void flowlet_timer_cancel(flowlet_state s, flowlet_time_domain d, flowlet_timestamp at) {
  flowlet__host_timer(s, d, at, true);
}

flowlet_timestamp flowlet_watermark(void) { return flowlet__host_watermark(); }
flowlet_timestamp flowlet_now(void) { return flowlet__host_now(); }
#endif

// =============================================================================================
// Processing

// A failure from a user function that returned something else than FAILED with a message.
static int failed(int rc, flowlet_output *out, flowlet_event *e, const char *what) {
  if (rc == FLOWLET_REJECTED) {
    char *r = take_reason(out, e);
    flowlet_fail("%s", r);
    free(r);
  } else if (rc != FLOWLET_FAILED) {
    flowlet_fail("%s returned %d", what, rc);
  }
  return FLOWLET_FAILED;
}

#if FLOWLET__HAS_PROCESS
int flowlet__process(const flowlet__batch *in, flowlet_output *out, uint32_t origin) {
  if (!DEFINED(flowlet_process)) return flowlet_fail("the operator has no flowlet_process");
  g_origin = origin < g_n_inputs ? g_inputs[origin] : "";
  struct flowlet__ctx ctx = {0};
  int rc = ctx_begin(&ctx, in);
  out->input = in;
  for (size_t i = 0; rc == FLOWLET_OK && i < in->n; i++) {
    flowlet_event e;
    event_at(&e, &ctx, i);
    out->current = &e;
    out->default_key = e.key;
    out->default_key_len = e.key_len;
    out->default_timestamp = e.timestamp;
    out_mark(out);
    int r = flowlet_process(&e, out);
    if (out->emitting) out->values.len = out->emit_start, out->emitting = 0;
    if (r == FLOWLET_OK) {
      free(out->reason);
      out->reason = NULL;
    } else if (r == FLOWLET_REJECTED) {
      out_truncate(out);
      out_reject(out, (uint32_t)i, take_reason(out, &e));
    } else {
      rc = failed(r, out, &e, "flowlet_process");
    }
    free(e._reason);
    arena_free();
  }
  out->current = NULL;
  ctx_end(&ctx);
  flowlet__finish_routes(out);
  return rc;
}
#endif

#if FLOWLET__HAS_TIMERS
int flowlet__timers(const flowlet_timer *timers, size_t n, flowlet_output *out) {
  if (!DEFINED(flowlet_on_timer)) return FLOWLET_OK;
  int rc = FLOWLET_OK;
  for (size_t i = 0; rc == FLOWLET_OK && i < n; i++) {
    out->current = NULL;
    out->default_key = timers[i].key;
    out->default_key_len = timers[i].key_len;
    out->default_timestamp = timers[i].at;
    out_mark(out);
    int r = flowlet_on_timer(&timers[i], out);
    if (out->emitting) out->values.len = out->emit_start, out->emitting = 0;
    if (r != FLOWLET_OK) rc = failed(r, out, NULL, "flowlet_on_timer");
    arena_free();
  }
  flowlet__finish_routes(out);
  return rc;
}
#endif

#if FLOWLET__HAS_AGGREGATE
static size_t acc_size(void) {
#if FLOWLET__WASM
  return flowlet_accumulator_size;
#else
  return &flowlet_accumulator_size != NULL ? flowlet_accumulator_size : 0;
#endif
}

void flowlet_acc_resize(flowlet_acc *acc, size_t len) {
  if (len > acc->_cap) {
    acc->data = xrealloc(acc->data, len);
    acc->_cap = len;
  }
  if (len > acc->len) memset((uint8_t *)acc->data + acc->len, 0, len - acc->len);
  acc->len = len;
}

void flowlet_acc_set(flowlet_acc *acc, const void *bytes, size_t len) {
  acc->len = 0;
  flowlet_acc_resize(acc, len);
  if (len) memcpy(acc->data, bytes, len);
}

static int acc_load(flowlet_acc *acc, const uint8_t *bytes, size_t len) {
  size_t size = acc_size();
  if (size && len != size)
    return flowlet_fail("corrupt accumulator: %zu bytes, flowlet_accumulator_size is %zu", len, size);
  flowlet_acc_set(acc, bytes, len);
  return FLOWLET_OK;
}

static int acc_check(const flowlet_acc *acc, const char *what) {
  size_t size = acc_size();
  if (size && acc->len != size)
    return flowlet_fail("%s left %zu bytes in the accumulator, flowlet_accumulator_size is %zu", what, acc->len, size);
  return FLOWLET_OK;
}

int flowlet__agg_create(flowlet_buf *out) {
  if (!DEFINED(flowlet_create)) return flowlet_fail("the operator has no flowlet_create");
  flowlet_acc acc = {0};
  flowlet_acc_resize(&acc, acc_size());
  int rc = flowlet_create(&acc);
  arena_free();
  if (rc != FLOWLET_OK) rc = failed(rc, NULL, NULL, "flowlet_create");
  if (rc == FLOWLET_OK) rc = acc_check(&acc, "flowlet_create");
  if (rc == FLOWLET_OK) buf_put(out, acc.data, acc.len);
  free(acc.data);
  return rc;
}

int flowlet__agg_add(const uint8_t *bytes, size_t bytes_len, const uint32_t *ends, size_t slots_n,
                     const flowlet__batch *in, const uint32_t *slots, size_t slots_len, flowlet_buf *out_bytes,
                     uint32_t **out_ends, flowlet_output *rej) {
  if (!DEFINED(flowlet_add)) return flowlet_fail("the operator has no flowlet_add");
  if (slots_len != in->n) return flowlet_fail("%zu slots for %zu events", slots_len, in->n);
  if (slots_n && ends[slots_n - 1] != bytes_len) return flowlet_fail("malformed packed accumulators");
  if (!bytes) bytes = (const uint8_t *)"";
  flowlet_acc *accs = calloc(slots_n ? slots_n : 1, sizeof *accs);
  if (!accs) abort();
  int rc = FLOWLET_OK;
  for (size_t i = 0; rc == FLOWLET_OK && i < slots_n; i++) {
    uint32_t s = i ? ends[i - 1] : 0;
    if (ends[i] < s) rc = flowlet_fail("malformed packed accumulators");
    else rc = acc_load(&accs[i], bytes + s, ends[i] - s);
  }
  struct flowlet__ctx ctx = {0};
  if (rc == FLOWLET_OK) rc = ctx_begin(&ctx, in);
  flowlet_acc backup = {0};
  for (size_t i = 0; rc == FLOWLET_OK && i < in->n; i++) {
    if (slots[i] >= slots_n) {
      rc = flowlet_fail("slot %u of %zu", slots[i], slots_n);
      break;
    }
    flowlet_acc *acc = &accs[slots[i]];
    flowlet_event e;
    event_at(&e, &ctx, i);
    flowlet_acc_set(&backup, acc->data, acc->len);
    int r = flowlet_add(acc, &e);
    if (r == FLOWLET_OK) {
      rc = acc_check(acc, "flowlet_add");
    } else if (r == FLOWLET_REJECTED) {
      flowlet_acc_set(acc, backup.data, backup.len);  // as it was
      out_reject(rej, (uint32_t)i, take_reason(NULL, &e));
    } else {
      rc = failed(r, NULL, &e, "flowlet_add");
    }
    free(e._reason);
    arena_free();
  }
  ctx_end(&ctx);
  free(backup.data);
  if (rc == FLOWLET_OK) {
    *out_ends = xmalloc((slots_n ? slots_n : 1) * sizeof **out_ends);
    flowlet_buf_reserve(out_bytes, bytes_len);
    for (size_t i = 0; i < slots_n; i++) {
      buf_put(out_bytes, accs[i].data, accs[i].len);
      (*out_ends)[i] = (uint32_t)out_bytes->len;
    }
  }
  for (size_t i = 0; i < slots_n; i++) free(accs[i].data);
  free(accs);
  return rc;
}

int flowlet__agg_merge(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len, flowlet_buf *out) {
  if (!DEFINED(flowlet_merge)) return flowlet_fail("the operator has no flowlet_merge");
  flowlet_acc x = {0}, y = {0};
  int rc = acc_load(&x, a, a_len);
  if (rc == FLOWLET_OK) rc = acc_load(&y, b, b_len);
  if (rc == FLOWLET_OK) {
    rc = flowlet_merge(&x, &y);
    arena_free();
    if (rc != FLOWLET_OK) rc = failed(rc, NULL, NULL, "flowlet_merge");
  }
  if (rc == FLOWLET_OK) rc = acc_check(&x, "flowlet_merge");
  if (rc == FLOWLET_OK) buf_put(out, x.data, x.len);
  free(x.data);
  free(y.data);
  return rc;
}

int flowlet__agg_finish(const int64_t *starts, const int64_t *ends, const uint8_t *keys, size_t keys_len,
                        const uint32_t *key_ends, const uint8_t *accs, size_t accs_len, const uint32_t *acc_ends,
                        const uint32_t *firings, size_t n, flowlet_output *out) {
  if (!DEFINED(flowlet_finish)) return flowlet_fail("the operator has no flowlet_finish");
  int rc = FLOWLET_OK;
  flowlet_acc acc = {0};
  uint32_t ks = 0, as = 0;
  for (size_t i = 0; rc == FLOWLET_OK && i < n; i++) {
    if (key_ends[i] < ks || key_ends[i] > keys_len || acc_ends[i] < as || acc_ends[i] > accs_len) {
      rc = flowlet_fail("malformed fired windows");
      break;
    }
    flowlet_window w = {starts[i], ends[i], keys + ks, key_ends[i] - ks, firings[i]};
    rc = acc_load(&acc, accs + as, acc_ends[i] - as);
    ks = key_ends[i];
    as = acc_ends[i];
    if (rc != FLOWLET_OK) break;
    out->current = NULL;
    out->default_key = w.key;
    out->default_key_len = w.key_len;
    out->default_timestamp = w.end - 1;
    out_mark(out);
    int r = flowlet_finish(&w, &acc, out);
    if (out->emitting) out->values.len = out->emit_start, out->emitting = 0;
    if (r != FLOWLET_OK) rc = failed(r, out, NULL, "flowlet_finish");
    arena_free();
  }
  free(acc.data);
  return rc;
}
#endif

// =============================================================================================
// The component: WIT exports and imports, over the bindings of `flowlet sdk c-bindings`.

#if FLOWLET__WASM

#include <stddef.h>

#if defined(FLOWLET_WORLD_STATEFUL)
#include "stateful_processor.h"
typedef stateful_processor_string_t wit_string;
typedef stateful_processor_list_u8_t wit_bytes;
#define WIT_EXPORT(f) exports_flowlet_operator_stateful_handler_##f
#elif defined(FLOWLET_WORLD_AGGREGATOR)
#include "aggregator.h"
typedef aggregator_string_t wit_string;
typedef aggregator_list_u8_t wit_bytes;
#define WIT_EXPORT(f) exports_flowlet_operator_aggregate_##f
#else
#include "processor.h"
typedef processor_string_t wit_string;
typedef processor_list_u8_t wit_bytes;
#define WIT_EXPORT(f) exports_flowlet_operator_handler_##f
#endif

typedef flowlet_operator_types_batch_t wit_batch;
typedef flowlet_operator_types_error_t wit_error;

_Static_assert(sizeof(flowlet__header) == sizeof(flowlet_operator_types_header_t), "header layout");
_Static_assert(offsetof(flowlet__header, name) == offsetof(flowlet_operator_types_header_t, name), "header layout");
_Static_assert(offsetof(flowlet__header, value) == offsetof(flowlet_operator_types_header_t, value), "header layout");
_Static_assert(sizeof(flowlet__rejection) == sizeof(flowlet_operator_types_rejection_t), "rejection layout");
_Static_assert(offsetof(flowlet__rejection, reason) == offsetof(flowlet_operator_types_rejection_t, reason),
               "rejection layout");
_Static_assert(sizeof(flowlet__str) == sizeof(wit_string) && sizeof(flowlet__str) == sizeof(wit_bytes), "list layout");

// An empty list must not hold memory: the bindings free only non-empty lists.
static void *owned(void *p, size_t len) {
  if (len == 0) {
    free(p);
    return NULL;
  }
  return p;
}

static void wit_fail(wit_error *err, int rc) {
  const char *msg = flowlet__error();
  size_t n = strlen(msg);
  err->tag = rc == FLOWLET_INVALID_CONFIG ? FLOWLET_OPERATOR_TYPES_ERROR_INVALID_CONFIG : FLOWLET_OPERATOR_TYPES_ERROR_FAILED;
  uint8_t *p = n ? xmalloc(n) : NULL;
  if (n) memcpy(p, msg, n);
  err->val.failed.ptr = p;
  err->val.failed.len = n;
}

static flowlet__batch batch_view(const wit_batch *b) {
  size_t n = b->timestamps.len;
  if (b->value_ends.len < n) n = b->value_ends.len;
  if (b->key_ends.len < n) n = b->key_ends.len;
  return (flowlet__batch){b->values.ptr, b->values.len, b->value_ends.ptr, b->keys.ptr, b->keys.len, b->key_ends.ptr,
                          b->timestamps.ptr, n, (const flowlet__header *)b->headers.ptr, b->headers.len};
}

static bool batch_shape_ok(const wit_batch *b) {
  return b->value_ends.len == b->timestamps.len && b->key_ends.len == b->timestamps.len;
}

// The output's events, moved into a WIT batch.
static void move_events(flowlet_output *out, wit_batch *b) {
  size_t n = out->n;
  b->values.ptr = owned(out->values.ptr, out->values.len);
  b->values.len = out->values.len;
  b->value_ends.ptr = owned(out->value_ends, n);
  b->value_ends.len = n;
  b->keys.ptr = owned(out->keys.ptr, out->keys.len);
  b->keys.len = out->keys.len;
  b->key_ends.ptr = owned(out->key_ends, n);
  b->key_ends.len = n;
  b->timestamps.ptr = owned(out->timestamps, n);
  b->timestamps.len = n;
  b->headers.ptr = owned(out->headers, out->headers_len);
  b->headers.len = out->headers_len;
  out->values = out->keys = (flowlet_buf){0};
  out->value_ends = out->key_ends = NULL;
  out->timestamps = NULL;
  out->headers = NULL;
  out->n = out->headers_len = 0;
}

static flowlet_operator_types_rejection_t *take_rejected(flowlet_output *out, size_t *len) {
  *len = out->rejected_len;
  void *r = owned(out->rejected, out->rejected_len);
  out->rejected = NULL;
  out->rejected_len = 0;
  return r;
}

bool WIT_EXPORT(init)(wit_string *config, flowlet_operator_types_setup_t *setup, wit_error *err) {
  _Static_assert(sizeof(flowlet__str) == sizeof(*setup->inputs.ptr), "string layout");
  flowlet__setup((const flowlet__str *)&setup->operator_, (const flowlet__str *)setup->inputs.ptr, setup->inputs.len,
                 (const flowlet__str *)setup->outputs.ptr, setup->outputs.len);
  flowlet_operator_types_setup_free(setup);
  int rc = flowlet__init((const char *)config->ptr, config->len);
  free(config->ptr);
  if (rc == FLOWLET_OK) return true;
  wit_fail(err, rc);
  return false;
}

void flowlet__host_log(flowlet_level level, const char *msg, size_t len) {
  wit_string s = {(uint8_t *)msg, len};
  flowlet_operator_log_log((flowlet_operator_log_level_t)level, &s);
}

void flowlet__host_counter_add(const char *name, uint64_t delta) {
  wit_string s = {(uint8_t *)name, strlen(name)};
  flowlet_operator_metrics_counter_add(&s, delta);
}

void flowlet__host_gauge_set(const char *name, double value) {
  wit_string s = {(uint8_t *)name, strlen(name)};
  flowlet_operator_metrics_gauge_set(&s, value);
}

#if FLOWLET__HAS_PROCESS
// The output's routes, moved into the WIT output.
static void move_routes(flowlet_output *out, flowlet_operator_types_output_t *ret) {
  ret->routes.ptr = owned(out->routes, out->routes_len);
  ret->routes.len = out->routes_len;
  out->routes = NULL;
  out->routes_len = out->routes_cap = 0;
}

bool WIT_EXPORT(process)(wit_batch *input, uint32_t origin, flowlet_operator_types_output_t *ret, wit_error *err) {
  flowlet_output out;
  flowlet__output_init(&out, input->timestamps.len, input->values.len + input->values.len / 4 + 64);
  int rc = batch_shape_ok(input) ? FLOWLET_OK : flowlet_fail("malformed batch: columns of different lengths");
  if (rc == FLOWLET_OK) {
    flowlet__batch b = batch_view(input);
    rc = flowlet__process(&b, &out, origin);
  }
  flowlet_operator_types_batch_free(input);
  if (rc != FLOWLET_OK) {
    flowlet__output_free(&out);
    wit_fail(err, rc);
    return false;
  }
  *ret = (flowlet_operator_types_output_t){0};
  move_routes(&out, ret);
  move_events(&out, &ret->events);
  ret->rejected.ptr = take_rejected(&out, &ret->rejected.len);
  flowlet__output_free(&out);
  return true;
}
#endif

#if FLOWLET__HAS_STATE
static stateful_processor_list_u8_t wkey(flowlet_state s) {
  return (stateful_processor_list_u8_t){(uint8_t *)s.key, s.key_len};
}
static wit_string wname(const char *name) { return (wit_string){(uint8_t *)name, strlen(name)}; }

bool flowlet__host_value_get(flowlet_state s, const char *name, flowlet__str *out) {
  stateful_processor_list_u8_t k = wkey(s), v;
  wit_string n = wname(name);
  if (!flowlet_operator_state_value_get(&k, &n, &v)) return false;
  *out = (flowlet__str){v.ptr, v.len};
  return true;
}

void flowlet__host_value_put(flowlet_state s, const char *name, const void *value, size_t len, const uint64_t *ttl) {
  stateful_processor_list_u8_t k = wkey(s), v = {(uint8_t *)value, len};
  wit_string n = wname(name);
  uint64_t t = ttl ? *ttl : 0;
  flowlet_operator_state_value_put(&k, &n, &v, ttl ? &t : NULL);
}

void flowlet__host_value_delete(flowlet_state s, const char *name) {
  stateful_processor_list_u8_t k = wkey(s);
  wit_string n = wname(name);
  flowlet_operator_state_value_delete(&k, &n);
}

bool flowlet__host_map_get(flowlet_state s, const char *name, const void *mk, size_t mklen, flowlet__str *out) {
  stateful_processor_list_u8_t k = wkey(s), m = {(uint8_t *)mk, mklen}, v;
  wit_string n = wname(name);
  if (!flowlet_operator_state_map_get(&k, &n, &m, &v)) return false;
  *out = (flowlet__str){v.ptr, v.len};
  return true;
}

void flowlet__host_map_put(flowlet_state s, const char *name, const void *mk, size_t mklen, const void *value,
                           size_t len, const uint64_t *ttl) {
  stateful_processor_list_u8_t k = wkey(s), m = {(uint8_t *)mk, mklen}, v = {(uint8_t *)value, len};
  wit_string n = wname(name);
  uint64_t t = ttl ? *ttl : 0;
  flowlet_operator_state_map_put(&k, &n, &m, &v, ttl ? &t : NULL);
}

void flowlet__host_map_delete(flowlet_state s, const char *name, const void *mk, size_t mklen) {
  stateful_processor_list_u8_t k = wkey(s), m = {(uint8_t *)mk, mklen};
  wit_string n = wname(name);
  flowlet_operator_state_map_delete(&k, &n, &m);
}

size_t flowlet__host_map_range(flowlet_state s, const char *name, const void *start, size_t slen, const void *end,
                               size_t elen, uint32_t limit, flowlet__str **pairs) {
  stateful_processor_list_u8_t k = wkey(s), a = {(uint8_t *)start, slen}, b = {(uint8_t *)end, elen};
  wit_string n = wname(name);
  stateful_processor_list_tuple2_list_u8_list_u8_t r;
  flowlet_operator_state_map_range(&k, &n, &a, &b, limit, &r);
  _Static_assert(sizeof(stateful_processor_tuple2_list_u8_list_u8_t) == 2 * sizeof(flowlet__str), "tuple layout");
  *pairs = (flowlet__str *)r.ptr;
  return r.len;
}

void flowlet__host_timer(flowlet_state s, flowlet_time_domain d, flowlet_timestamp at, bool cancel) {
  stateful_processor_list_u8_t k = wkey(s);
  if (cancel) flowlet_operator_timers_cancel(&k, (flowlet_operator_timers_time_domain_t)d, at);
  else flowlet_operator_timers_register(&k, (flowlet_operator_timers_time_domain_t)d, at);
}

flowlet_timestamp flowlet__host_watermark(void) { return flowlet_operator_timers_current_watermark(); }
flowlet_timestamp flowlet__host_now(void) { return flowlet_operator_timers_current_processing_time(); }

bool WIT_EXPORT(on_timer)(exports_flowlet_operator_stateful_handler_list_timer_t *fired,
                          flowlet_operator_types_output_t *ret, wit_error *err) {
  size_t n = fired->len;
  flowlet_timer *timers = xmalloc((n ? n : 1) * sizeof *timers);
  for (size_t i = 0; i < n; i++) {
    const exports_flowlet_operator_stateful_handler_timer_t *t = &fired->ptr[i];
    timers[i] = (flowlet_timer){t->key.ptr, t->key.len, (flowlet_time_domain)t->domain, t->at};
  }
  flowlet_output out;
  flowlet__output_init(&out, n, 0);
  int rc = flowlet__timers(timers, n, &out);
  free(timers);
  exports_flowlet_operator_stateful_handler_list_timer_free(fired);
  if (rc != FLOWLET_OK) {
    flowlet__output_free(&out);
    wit_fail(err, rc);
    return false;
  }
  *ret = (flowlet_operator_types_output_t){0};
  move_routes(&out, ret);
  move_events(&out, &ret->events);
  flowlet__output_free(&out);
  return true;
}
#endif

#if FLOWLET__HAS_AGGREGATE
static void move_bytes(flowlet_buf *b, aggregator_list_u8_t *ret) {
  ret->ptr = owned(b->ptr, b->len);
  ret->len = b->len;
  *b = (flowlet_buf){0};
}

bool WIT_EXPORT(create_accumulator)(aggregator_list_u8_t *ret, wit_error *err) {
  flowlet_buf acc = {0};
  int rc = flowlet__agg_create(&acc);
  if (rc != FLOWLET_OK) {
    flowlet_buf_free(&acc);
    wit_fail(err, rc);
    return false;
  }
  move_bytes(&acc, ret);
  return true;
}

bool WIT_EXPORT(add)(exports_flowlet_operator_aggregate_accumulators_t *accumulators, wit_batch *input,
                     aggregator_list_u32_t *slots, exports_flowlet_operator_aggregate_added_t *ret, wit_error *err) {
  flowlet_buf bytes = {0};
  uint32_t *ends = NULL;
  flowlet_output rej;
  flowlet__output_init(&rej, 0, 0);
  int rc = batch_shape_ok(input) ? FLOWLET_OK : flowlet_fail("malformed batch: columns of different lengths");
  if (rc == FLOWLET_OK) {
    flowlet__batch b = batch_view(input);
    rc = flowlet__agg_add(accumulators->bytes.ptr, accumulators->bytes.len, accumulators->ends.ptr,
                          accumulators->ends.len, &b, slots->ptr, slots->len, &bytes, &ends, &rej);
  }
  size_t n = accumulators->ends.len;
  exports_flowlet_operator_aggregate_accumulators_free(accumulators);
  flowlet_operator_types_batch_free(input);
  aggregator_list_u32_free(slots);
  if (rc != FLOWLET_OK) {
    flowlet_buf_free(&bytes);
    free(ends);
    flowlet__output_free(&rej);
    wit_fail(err, rc);
    return false;
  }
  *ret = (exports_flowlet_operator_aggregate_added_t){0};
  move_bytes(&bytes, &ret->accumulators.bytes);
  ret->accumulators.ends = (aggregator_list_u32_t){owned(ends, n), n};
  ret->rejected.ptr = take_rejected(&rej, &ret->rejected.len);
  flowlet__output_free(&rej);
  return true;
}

bool WIT_EXPORT(merge)(aggregator_list_u8_t *a, aggregator_list_u8_t *b, aggregator_list_u8_t *ret, wit_error *err) {
  flowlet_buf acc = {0};
  int rc = flowlet__agg_merge(a->ptr, a->len, b->ptr, b->len, &acc);
  aggregator_list_u8_free(a);
  aggregator_list_u8_free(b);
  if (rc != FLOWLET_OK) {
    flowlet_buf_free(&acc);
    wit_fail(err, rc);
    return false;
  }
  move_bytes(&acc, ret);
  return true;
}

bool WIT_EXPORT(finish)(exports_flowlet_operator_aggregate_fired_t *f, wit_batch *ret, wit_error *err) {
  size_t n = f->starts.len;
  int rc = FLOWLET_OK;
  if (f->ends.len != n || f->key_ends.len != n || f->accumulator_ends.len != n || f->firings.len != n)
    rc = flowlet_fail("malformed fired windows");
  flowlet_output out;
  flowlet__output_init(&out, n, 64 * n);
  if (rc == FLOWLET_OK)
    rc = flowlet__agg_finish(f->starts.ptr, f->ends.ptr, f->keys.ptr, f->keys.len, f->key_ends.ptr, f->accumulators.ptr,
                             f->accumulators.len, f->accumulator_ends.ptr, f->firings.ptr, n, &out);
  exports_flowlet_operator_aggregate_fired_free(f);
  if (rc != FLOWLET_OK) {
    flowlet__output_free(&out);
    wit_fail(err, rc);
    return false;
  }
  *ret = (wit_batch){0};
  move_events(&out, ret);
  flowlet__output_free(&out);
  return true;
}
#endif

#endif  // FLOWLET__WASM
