// The enrich operator natively, through the SDK's harness: `make test-native`.
#include <string.h>

#include "flowlet_testing.h"

int main(void) {
  flowlet_harness *h = flowlet_harness_new("{\"min-amount\": 100, \"high-amount\": 500}");
  FLOWLET_CHECK(flowlet_harness_init_error(h) == NULL);
  const flowlet_result *r = flowlet_harness_process(
      h, FLOWLET_VALUES("{\"amount\":50,\"country\":\"DE\"}", "{\"amount\":100,\"country\":\"us\"}",
                        "{\"tier\":\"old\",\"amount\":750.5,\"country\":\"xx\"}", "{\"amount\":\"7\"}", "[1]",
                        "{ \"amount\" : 1e3 , \"note\" : \"caf\\u00e9 \\/ \\\"q\\\"\", \"country\": \"Jp\" }",
                        "{\"amount\":200,\"region\":1,\"amount\":300,\"country\":\"fr\"}", "{\"amount\":1", ""));
  if (!FLOWLET_CHECK_INT(r->n, 4)) return flowlet_test_summary();
  FLOWLET_CHECK_STR(r->values[0], "{\"amount\":100,\"country\":\"us\",\"tier\":\"low\",\"region\":\"na\"}");
  // An existing member is replaced where it stands (serde_json's Map::insert).
  FLOWLET_CHECK_STR(r->values[1], "{\"tier\":\"high\",\"amount\":750.5,\"country\":\"xx\",\"region\":\"other\"}");
  // Compact, strings re-escaped as serde_json writes them; numbers keep their text.
  FLOWLET_CHECK_STR(r->values[2],
                    "{\"amount\":1e3,\"note\":\"caf\xc3\xa9 / \\\"q\\\"\",\"country\":\"Jp\",\"tier\":\"high\",\"region\":"
                    "\"apac\"}");
  // A name given twice: once, at its first place, with its last value.
  FLOWLET_CHECK_STR(r->values[3], "{\"amount\":300,\"region\":\"eu\",\"country\":\"fr\",\"tier\":\"low\"}");
  FLOWLET_CHECK_INT(r->timestamps[0], 1);
  if (!FLOWLET_CHECK_INT(r->rejected_n, 4)) return flowlet_test_summary();
  uint32_t want[] = {3, 4, 7, 8};
  for (size_t i = 0; i < 4 && i < r->rejected_n; i++) FLOWLET_CHECK_INT(r->rejected[i], want[i]);
  FLOWLET_CHECK_STR(r->reasons[0], "`amount` is missing or not a number");
  FLOWLET_CHECK_STR(r->reasons[1], "the value is not a JSON object");
  FLOWLET_CHECK_STR(r->reasons[2], "the value is not a JSON object");
  flowlet_harness_free(h);

  // Keys and timestamps are kept. (The operator's globals outlive a harness: set every setting.)
  h = flowlet_harness_new("{\"min-amount\": 0, \"high-amount\": 1000}");
  r = flowlet_harness_process_events(h, FLOWLET_EVENTS({"{\"amount\":5}", "k1", 42}, {"{\"amount\":-1}", NULL, -7}));
  if (FLOWLET_CHECK_INT(r->n, 1)) {
    FLOWLET_CHECK_STR(r->keys[0], "k1");
    FLOWLET_CHECK_INT(r->timestamps[0], 42);
    FLOWLET_CHECK_STR(r->values[0], "{\"amount\":5,\"tier\":\"low\",\"region\":\"other\"}");
  }
  flowlet_harness_free(h);

  struct {
    const char *config, *error;
  } bad[] = {
      {"{\"min\": 1}", "unknown setting \"min\" (expected min-amount, high-amount)"},
      {"{\"min-amount\": \"1\"}", "`min-amount` must be a number"},
      {"{\"min-amount\": null}", "`min-amount` must be a number"},
      {"[1]", "the config must be a map (min-amount, high-amount)"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    h = flowlet_harness_new(bad[i].config);
    FLOWLET_CHECK_INT(flowlet_harness_init_status(h), FLOWLET_INVALID_CONFIG);
    FLOWLET_CHECK_STR(flowlet_harness_init_error(h), bad[i].error);
    flowlet_harness_free(h);
  }
  return flowlet_test_summary();
}
