// Unit tests of operator.c, natively (no Wasm): `make unit`, and the first step of `make test`.
#include "flowlet_testing.h"

int main(void) {
  flowlet_harness *h = flowlet_harness_new("{\"label\": \"checked\"}");
  FLOWLET_CHECK(flowlet_harness_init_error(h) == NULL);
  const flowlet_result *r =
      flowlet_harness_process(h, FLOWLET_VALUES("{\"id\":1}", "[1,2,3]", "{ \"label\": \"old\", \"n\": 2 }"));
  if (FLOWLET_CHECK_INT(r->n, 2)) {
    FLOWLET_CHECK_STR(r->values[0], "{\"id\":1,\"label\":\"checked\"}");
    FLOWLET_CHECK_STR(r->values[1], "{\"label\":\"checked\",\"n\":2}");
  }
  if (FLOWLET_CHECK_INT(r->rejected_n, 1)) {
    FLOWLET_CHECK_INT(r->rejected[0], 1);
    FLOWLET_CHECK_STR(r->reasons[0], "the value is not a JSON object");
  }
  flowlet_harness_free(h);

  h = flowlet_harness_new("{\"label\": 7}");
  FLOWLET_CHECK_STR(flowlet_harness_init_error(h), "`label` must be a string");
  flowlet_harness_free(h);
  h = flowlet_harness_new("{\"lable\": \"x\"}");
  FLOWLET_CHECK_STR(flowlet_harness_init_error(h), "unknown setting \"lable\" (expected label)");
  flowlet_harness_free(h);
  return flowlet_test_summary();
}
