// The JSON reader and writer of the C SDK: every JSON form, the edges, serde_json's output.
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flowlet_testing.h"

static flowlet_json parse(const char *s) { return flowlet_json_parse_str(s); }

static bool valid(const char *s) { return flowlet_json_ok(parse(s)); }

static void refused(const char *s, const char *error) {
  flowlet_json v = parse(s);
  if (!FLOWLET_CHECK(v.type == FLOWLET_JSON_INVALID)) fprintf(stderr, "    accepted: %s\n", s);
  if (error) FLOWLET_CHECK_STR(flowlet_json_error(), error);
}

// What the writer makes of one double.
static const char *number(double x) {
  static char out[64];
  flowlet_buf b = {0};
  flowlet_json_writer w;
  flowlet_jw_init(&w, &b);
  flowlet_jw_number(&w, x);
  snprintf(out, sizeof out, "%.*s", (int)b.len, (char *)b.ptr);
  flowlet_buf_free(&b);
  return out;
}

static void forms(void) {
  const char *ok[] = {"null", "true", "false", "0", "-0", "1.5", "-1.25e+3", "1E-5", "1e308", "1e-400", "\"\"", "[]",
                      "{}", " [ 1 , [ ] , { } ] ", "\t\n\r{\"a\" : [null,true,false]}\n", "\"\\u0000\"",
                      "18446744073709551616", "0.000000000000000000000000001e330", "\"\\ud83d\\ude00\"", "\"\xf0\x9f\x98\x80\"",
                      "\"\xed\x9f\xbf\"", "\"\xef\xbf\xbf\""};
  for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
    if (!FLOWLET_CHECK(valid(ok[i]))) fprintf(stderr, "    refused: %s (%s)\n", ok[i], flowlet_json_error());
  FLOWLET_CHECK_INT(parse("null").type, FLOWLET_JSON_NULL);
  FLOWLET_CHECK_INT(parse(" true").type, FLOWLET_JSON_BOOL);
  FLOWLET_CHECK_INT(parse("-3").type, FLOWLET_JSON_NUMBER);
  FLOWLET_CHECK_INT(parse("\"x\"").type, FLOWLET_JSON_STRING);
  FLOWLET_CHECK_INT(parse("[1]").type, FLOWLET_JSON_ARRAY);
  FLOWLET_CHECK_INT(parse("{}").type, FLOWLET_JSON_OBJECT);
  flowlet_json v = parse("  {\"a\": 1}  ");
  FLOWLET_CHECK_INT(v.len, 8);  // the value's text, without the whitespace around it

  // Not JSON, with serde_json's messages.
  refused("", "EOF while parsing a value at line 1 column 0");
  refused("   ", "EOF while parsing a value at line 1 column 3");
  refused("NaN", "expected value at line 1 column 1");
  refused("Infinity", "expected value at line 1 column 1");
  refused("-Infinity", "invalid number at line 1 column 2");
  refused("[1, NaN]", "expected value at line 1 column 5");
  refused("1e309", "number out of range at line 1 column 5");
  refused("-1e400", NULL);
  refused("1 2", "trailing characters at line 1 column 3");
  refused("{} x", "trailing characters at line 1 column 4");
  refused("{\"a\":1,}", "trailing comma at line 1 column 8");
  refused("[1,]", "trailing comma at line 1 column 4");
  refused("{\"a\" 1}", "expected `:` at line 1 column 6");
  refused("{\"a\":1 \"b\":2}", "expected `,` or `}` at line 1 column 8");
  refused("[1 2]", "expected `,` or `]` at line 1 column 4");
  refused("{1:2}", "key must be a string at line 1 column 2");
  refused("{\"a\":", "EOF while parsing a value at line 1 column 5");
  refused("{\"a\":1", "EOF while parsing an object at line 1 column 6");
  refused("[1", "EOF while parsing a list at line 1 column 2");
  refused("\"abc", "EOF while parsing a string at line 1 column 4");
  refused("01", "invalid number at line 1 column 2");
  refused("1.", "EOF while parsing a value at line 1 column 2");
  refused("1.x", "invalid number at line 1 column 3");
  refused(".5", "expected value at line 1 column 1");
  refused("+1", "expected value at line 1 column 1");
  refused("1e", "EOF while parsing a value at line 1 column 2");
  refused("tru", "EOF while parsing a value at line 1 column 3");
  refused("trux", "expected ident at line 1 column 4");
  refused("nul", NULL);
  refused("\"a\\x\"", "invalid escape at line 1 column 4");
  refused("\"\\u12g4\"", "invalid escape at line 1 column 6");
  refused("\"\\ud800\"", "unexpected end of hex escape at line 1 column 8");
  refused("\"\\udc00\"", "lone leading surrogate in hex escape at line 1 column 7");
  refused("\"\\ud800\\u0041\"", NULL);
  refused("\"a\tb\"", "control character (\\u0000-\\u001F) found while parsing a string at line 1 column 3");
  refused("\"\xff\"", "invalid unicode code point at line 1 column 2");
  refused("\"\xc0\x80\"", NULL);          // overlong
  refused("\"\xed\xa0\x80\"", NULL);      // a surrogate in UTF-8
  refused("\"\xf4\x90\x80\x80\"", NULL);  // beyond U+10FFFF
  refused("\"\xe2\x82\"", NULL);          // truncated
  refused("{\n\"a\": 1,\n\"b\" 2}", "expected `:` at line 3 column 5");

  // Nesting: serde_json's limit, 127 levels.
  char deep[1200];
  for (int depth = 126; depth <= 129; depth++) {
    memset(deep, '[', (size_t)depth);
    memset(deep + depth, ']', (size_t)depth);
    deep[2 * depth] = 0;
    FLOWLET_CHECK(valid(deep) == (depth <= 127));
  }
  refused(deep, "recursion limit exceeded at line 1 column 128");
  memset(deep, 0, sizeof deep);
  for (int i = 0; i < 200; i++) strcat(deep, "{\"a\":");
  refused(deep, "recursion limit exceeded at line 1 column 636");
}

static void numbers(void) {
  double x = 0;
  int64_t i = 0;
  uint64_t u = 0;
  FLOWLET_CHECK(flowlet_json_number(parse("1.5"), &x) && x == 1.5);
  FLOWLET_CHECK(flowlet_json_number(parse("-0"), &x) && x == 0 && signbit(x));
  FLOWLET_CHECK(flowlet_json_number(parse("0.1"), &x) && x == 0.1);
  FLOWLET_CHECK(flowlet_json_number(parse("123456789012345.6"), &x) && x == 123456789012345.6);
  FLOWLET_CHECK(flowlet_json_number(parse("9007199254740993"), &x) && x == 9007199254740992.0);
  FLOWLET_CHECK(flowlet_json_number(parse("1.7976931348623157e308"), &x) && x == DBL_MAX);
  FLOWLET_CHECK(flowlet_json_number(parse("4.9e-324"), &x) && x > 0 && x < 1e-323);
  FLOWLET_CHECK(flowlet_json_number(parse("1e-400"), &x) && x == 0);
  FLOWLET_CHECK(flowlet_json_number(parse("-2.5E+2"), &x) && x == -250);
  FLOWLET_CHECK(!flowlet_json_number(parse("\"1\""), &x));
  FLOWLET_CHECK(!flowlet_json_number(parse("null"), &x));
  FLOWLET_CHECK(flowlet_json_int64(parse("9223372036854775807"), &i) && i == INT64_MAX);
  FLOWLET_CHECK(flowlet_json_int64(parse("-9223372036854775808"), &i) && i == INT64_MIN);
  FLOWLET_CHECK(!flowlet_json_int64(parse("9223372036854775808"), &i));
  FLOWLET_CHECK(!flowlet_json_int64(parse("-9223372036854775809"), &i));
  FLOWLET_CHECK(!flowlet_json_int64(parse("1.0"), &i));
  FLOWLET_CHECK(!flowlet_json_int64(parse("1e2"), &i));
  FLOWLET_CHECK(flowlet_json_uint64(parse("18446744073709551615"), &u) && u == UINT64_MAX);
  FLOWLET_CHECK(!flowlet_json_uint64(parse("18446744073709551616"), &u));
  FLOWLET_CHECK(!flowlet_json_uint64(parse("-1"), &u));
  FLOWLET_CHECK(flowlet_json_number_or(parse("\"x\""), 7) == 7);

  // Doubles as serde_json (ryu) writes them.
  struct {
    double x;
    const char *text;
  } d[] = {{0, "0.0"},
           {-0.0, "-0.0"},
           {1, "1.0"},
           {-1.5, "-1.5"},
           {0.1, "0.1"},
           {0.3, "0.3"},
           {0.1 + 0.2, "0.30000000000000004"},
           {100, "100.0"},
           {123456.789, "123456.789"},
           {1e15, "1000000000000000.0"},
           {1e16, "1e16"},
           {1.5e16, "1.5e16"},
           {1e20, "1e20"},
           {123e20, "1.23e22"},
           {0.001, "0.001"},
           {0.0001, "0.0001"},
           {0.00001, "0.00001"},
           {0.000001, "1e-6"},
           {1.5e-7, "1.5e-7"},
           {5e-324, "5e-324"},
           {DBL_MAX, "1.7976931348623157e308"},
           {9007199254740993.0, "9007199254740992.0"},
           {2.5, "2.5"},
           {NAN, "null"},
           {INFINITY, "null"},
           {-INFINITY, "null"}};
  for (size_t k = 0; k < sizeof d / sizeof *d; k++) FLOWLET_CHECK_STR(number(d[k].x), d[k].text);
  // Every shortest form reads back to the same double.
  srand(7);
  for (int k = 0; k < 20000; k++) {
    uint64_t bits = ((uint64_t)rand() << 40) ^ ((uint64_t)rand() << 20) ^ (uint64_t)rand();
    double y;
    memcpy(&y, &bits, sizeof y);
    if (!isfinite(y)) continue;
    double back = 0;
    if (!flowlet_json_number(parse(number(y)), &back) || back != y) {
      FLOWLET_CHECK_STR(number(back), number(y));
      break;
    }
  }
  FLOWLET_CHECK(true);
}

static void strings(void) {
  char buf[64];
  flowlet_json s = parse("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u00e9\\u0000\\ud83d\\ude00\"");
  size_t n = flowlet_json_string(s, buf, sizeof buf);
  const char want[] = "a\"b\\c/d\b\f\n\r\t\xc3\xa9\0\xf0\x9f\x98\x80";
  FLOWLET_CHECK_INT(n, sizeof want - 1);
  FLOWLET_CHECK(memcmp(buf, want, sizeof want - 1) == 0);
  FLOWLET_CHECK_INT(flowlet_json_string(s, buf, 4), n);  // the length needed, as snprintf
  FLOWLET_CHECK_STR(buf, "a\"b");
  FLOWLET_CHECK_INT(flowlet_json_string(parse("1"), buf, sizeof buf), (size_t)-1);
  char *dup = flowlet_json_string_dup(parse("\"caf\\u00E9\""));
  FLOWLET_CHECK_STR(dup, "caf\xc3\xa9");
  free(dup);
  FLOWLET_CHECK(flowlet_json_string_dup(parse("[]")) == NULL);
  FLOWLET_CHECK(flowlet_json_string_eq(parse("\"\\u0061b\""), "ab"));
  FLOWLET_CHECK(!flowlet_json_string_eq(parse("\"ab\""), "abc"));
  flowlet_buf b = {0};
  FLOWLET_CHECK(flowlet_json_string_append(parse("\"x\\ny\""), &b) && b.len == 3 && memcmp(b.ptr, "x\ny", 3) == 0);
  flowlet_buf_free(&b);
  bool t = false;
  FLOWLET_CHECK(flowlet_json_bool(parse("true"), &t) && t);
  FLOWLET_CHECK(flowlet_json_bool(parse("false"), &t) && !t);
  FLOWLET_CHECK(!flowlet_json_bool(parse("0"), &t));
}

static void lookups(void) {
  flowlet_json doc = parse(
      "{\"a\": {\"b\": [10, {\"c\": \"x\"}], \"d\": null}, \"e/f\": 1, \"g~h\": 2, \"s\": \"t\", \"dup\": 1, "
      "\"d\\u0075p\": 2, \"\": 3}");
  const char *found[][2] = {{"/a/b/0", "10"},       {"/a/b/1/c", "\"x\""}, {"/a/d", "null"}, {"/e~1f", "1"},
                            {"/g~0h", "2"},         {"/dup", "2"},         {"/", "3"},        {"/a/b/01", "{\"c\": \"x\"}"}};
  for (size_t i = 0; i < sizeof found / sizeof *found; i++) {
    flowlet_json v = flowlet_json_pointer(doc, found[i][0]);
    char text[64];
    snprintf(text, sizeof text, "%.*s", (int)v.len, v.text ? v.text : "");
    FLOWLET_CHECK_STR(text, found[i][1]);
  }
  FLOWLET_CHECK(flowlet_json_pointer(doc, "").len == doc.len);
  const char *absent[] = {"/missing", "/a/b/7", "/s/x", "/a/b/x", "/a/b/-", "/a/b/+1", "a", "/x~2"};
  for (size_t i = 0; i < sizeof absent / sizeof *absent; i++)
    FLOWLET_CHECK_INT(flowlet_json_pointer(doc, absent[i]).type, FLOWLET_JSON_ABSENT);
  FLOWLET_CHECK(flowlet_json_pointer_valid("") && flowlet_json_pointer_valid("/a~0~1") && !flowlet_json_pointer_valid("a") &&
                !flowlet_json_pointer_valid("/a~") && !flowlet_json_pointer_valid("/~2"));
  // Duplicate names: the last one (as JSON.parse, json.loads, serde_json).
  FLOWLET_CHECK_INT(flowlet_json_get(doc, "dup").text[0], '2');
  FLOWLET_CHECK_INT(flowlet_json_count(doc), 7);
  FLOWLET_CHECK_INT(flowlet_json_count(flowlet_json_get(doc, "a")), 2);
  FLOWLET_CHECK_INT(flowlet_json_count(parse("[1, [2, 3], {}]")), 3);
  FLOWLET_CHECK_INT(flowlet_json_count(parse("7")), 0);
  FLOWLET_CHECK_INT(flowlet_json_get(parse("[1]"), "a").type, FLOWLET_JSON_ABSENT);
  FLOWLET_CHECK_INT(flowlet_json_at(parse("[1, 2]"), 2).type, FLOWLET_JSON_ABSENT);
  FLOWLET_CHECK_INT(flowlet_json_at(parse("[1, \"two\"]"), 1).type, FLOWLET_JSON_STRING);
  // An invalid document stays invalid down a chain.
  flowlet_json bad = parse("{\"a\":");
  FLOWLET_CHECK_INT(flowlet_json_get(flowlet_json_get(bad, "a"), "b").type, FLOWLET_JSON_INVALID);
  FLOWLET_CHECK_INT(flowlet_json_pointer(bad, "/a").type, FLOWLET_JSON_INVALID);

  flowlet_json_iter it = flowlet_json_iterate(parse(" { \"x\" : 1 , \"y\" : [ 2 ] } "));
  flowlet_json k, v;
  int members = 0;
  while (flowlet_json_next(&it, &k, &v)) {
    members++;
    FLOWLET_CHECK(k.type == FLOWLET_JSON_STRING);
    if (members == 2) FLOWLET_CHECK(flowlet_json_string_eq(k, "y") && v.type == FLOWLET_JSON_ARRAY && v.len == 5);
  }
  FLOWLET_CHECK_INT(members, 2);
  it = flowlet_json_iterate(parse("[]"));
  FLOWLET_CHECK(!flowlet_json_next(&it, &k, &v));
  it = flowlet_json_iterate(parse("[\"a,]\", 2]"));
  FLOWLET_CHECK(flowlet_json_next(&it, &k, &v) && k.type == FLOWLET_JSON_ABSENT && flowlet_json_string_eq(v, "a,]"));
  FLOWLET_CHECK(flowlet_json_next(&it, NULL, &v) && v.text[0] == '2' && !flowlet_json_next(&it, NULL, &v));
}

static char *written(void (*write)(flowlet_json_writer *)) {
  flowlet_buf b = {0};
  flowlet_json_writer w;
  flowlet_jw_init(&w, &b);
  write(&w);
  flowlet_buf_append(&b, "", 1);
  return (char *)b.ptr;
}

static void write_all(flowlet_json_writer *w) {
  flowlet_jw_object(w);
  flowlet_jw_key(w, "s");
  flowlet_jw_string(w, "q\" b\\ \x01\x1f\x7f \n\t\r\b\f / \xe2\x80\xa8 \xc3\xa9");
  flowlet_jw_key(w, "lossy");
  flowlet_jw_string_n(w, "a\xff" "b\xe2\x82" "c\xf0\x9f\x98" "d\xc0\x80" "e", 13);
  flowlet_jw_key(w, "n");
  flowlet_jw_number(w, 2.5);
  flowlet_jw_key(w, "i");
  flowlet_jw_int(w, INT64_MIN);
  flowlet_jw_key(w, "u");
  flowlet_jw_uint(w, UINT64_MAX);
  flowlet_jw_key(w, "b");
  flowlet_jw_bool(w, false);
  flowlet_jw_key(w, "z");
  flowlet_jw_null(w);
  flowlet_jw_key(w, "a");
  flowlet_jw_array(w);
  flowlet_jw_array(w);
  flowlet_jw_end(w);
  flowlet_jw_object(w);
  flowlet_jw_end(w);
  flowlet_jw_json(w, parse(" { \"k\" : [ 1 , \"\\u00e9\\/\\u001F\" ] } "));
  flowlet_jw_raw(w, "[true]", 6);
  flowlet_jw_json(w, parse("nope"));
  flowlet_jw_end(w);
  flowlet_jw_key_n(w, "k\"ey", 4);
  flowlet_jw_number(w, NAN);
  flowlet_jw_end(w);
}

static void writer(void) {
  char *text = written(write_all);
  FLOWLET_CHECK_STR(text,
                    "{\"s\":\"q\\\" b\\\\ \\u0001\\u001f\x7f \\n\\t\\r\\b\\f / \xe2\x80\xa8 \xc3\xa9\","
                    "\"lossy\":\"a\xef\xbf\xbd"
                    "b\xef\xbf\xbd"
                    "c\xef\xbf\xbd"
                    "d\xef\xbf\xbd\xef\xbf\xbd"
                    "e\",\"n\":2.5,\"i\":-9223372036854775808,\"u\":18446744073709551615,\"b\":false,\"z\":null,"
                    "\"a\":[[],{},{\"k\":[1,\"\xc3\xa9/\\u001f\"]},[true],null],\"k\\\"ey\":null}");
  FLOWLET_CHECK(valid(text));
  free(text);

  // Setting members of an object.
  flowlet_buf b = {0};
  flowlet_json_writer w;
  struct {
    const char *in, *out;
  } cases[] = {
      {"{\"a\":1,\"tier\":\"x\",\"b\":2}", "{\"a\":1,\"tier\":\"high\",\"b\":2,\"n\":1.5,\"gone\":null}"},
      {"{}", "{\"tier\":\"high\",\"n\":1.5,\"gone\":null}"},
      {" { \"a\" : [ 1, 2 ] , \"s\" : \"\\u00e9\" , \"c\" : 1.0E2 } ",
       "{\"a\":[1,2],\"s\":\"\xc3\xa9\",\"c\":1.0E2,\"tier\":\"high\",\"n\":1.5,\"gone\":null}"},
      {"{\"x\":1,\"y\":2,\"x\":3,\"drop\":0}", "{\"x\":3,\"y\":2,\"tier\":\"high\",\"n\":1.5,\"gone\":null}"},
      {"{\"t\\u0069er\":0}", "{\"tier\":\"high\",\"n\":1.5,\"gone\":null}"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    b.len = 0;
    flowlet_jw_init(&w, &b);
    flowlet_json obj = parse(cases[i].in);
    FLOWLET_CHECK(flowlet_jw_object_with(&w, obj,
                                         FLOWLET_FIELDS(FLOWLET_STRING("tier", "low"), FLOWLET_NUMBER("n", 1.5),
                                                        FLOWLET_NULL("gone"), FLOWLET_REMOVE("drop"),
                                                        FLOWLET_STRING("tier", "high"))));
    flowlet_buf_append(&b, "", 1);
    FLOWLET_CHECK_STR((char *)b.ptr, cases[i].out);
    FLOWLET_CHECK(valid((char *)b.ptr));
  }
  b.len = 0;
  flowlet_jw_init(&w, &b);
  FLOWLET_CHECK(!flowlet_jw_object_with(&w, parse("[1]"), FLOWLET_FIELDS(FLOWLET_INT("a", 1))));
  FLOWLET_CHECK_INT(b.len, 0);
  flowlet_jw_array(&w);
  flowlet_jw_object_with(&w, parse("{\"a\":1}"), FLOWLET_FIELDS(FLOWLET_INT("b", -2), FLOWLET_BOOL("c", true),
                                                               FLOWLET_RAW("d", "[1]"), FLOWLET_JSON("e", parse("{ }"))));
  flowlet_jw_object_with(&w, parse("{}"), NULL, 0);
  flowlet_jw_end(&w);
  flowlet_buf_append(&b, "", 1);
  FLOWLET_CHECK_STR((char *)b.ptr, "[{\"a\":1,\"b\":-2,\"c\":true,\"d\":[1],\"e\":{}},{}]");
  flowlet_buf_free(&b);
}

static void buffers(void) {
  flowlet_buf b = {0};
  for (int i = 0; i < 100000; i++) flowlet_buf_append(&b, "0123456789", 10);
  FLOWLET_CHECK_INT(b.len, 1000000);
  FLOWLET_CHECK(b.cap >= b.len && memcmp(b.ptr + 999990, "0123456789", 10) == 0);
  flowlet_buf_printf(&b, "%d-%s", 42, "x");
  FLOWLET_CHECK(b.len == 1000004 && memcmp(b.ptr + 1000000, "42-x", 4) == 0);
  flowlet_buf_free(&b);
  FLOWLET_CHECK(b.ptr == NULL && b.len == 0);
  // A huge document: 4 MB of string in an object, parsed and written back.
  size_t n = 4 << 20;
  char *big = malloc(n + 16);
  memcpy(big, "{\"s\":\"", 6);
  memset(big + 6, 'x', n);
  memcpy(big + 6 + n, "\"}", 3);
  flowlet_json doc = parse(big);
  FLOWLET_CHECK(doc.type == FLOWLET_JSON_OBJECT && flowlet_json_get(doc, "s").len == n + 2);
  flowlet_json_writer w;
  flowlet_jw_init(&w, &b);
  flowlet_jw_object_with(&w, doc, FLOWLET_FIELDS(FLOWLET_INT("n", 1)));
  FLOWLET_CHECK_INT(b.len, n + 14);
  flowlet_buf_free(&b);
  free(big);
}

int main(void) {
  forms();
  numbers();
  strings();
  lookups();
  writer();
  buffers();
  return flowlet_test_summary();
}
