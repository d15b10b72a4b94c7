// Contract 0.2 in the C SDK: which input an event came from, and routing to named outputs.
#include <string.h>

#include "flowlet_testing.h"

static uint32_t invalid, large, audit;

int flowlet_init(const flowlet_config *c) {
  (void)c;
  invalid = flowlet_output_port("invalid");
  large = flowlet_output_port("large");
  audit = flowlet_output_port("audit");
  if (!invalid) return flowlet_invalid_config("operator `%s` has no output `invalid`", flowlet_operator_name());
  return FLOWLET_OK;
}

int flowlet_process(const flowlet_event *e, flowlet_output *out) {
  double amount;
  flowlet_json v = flowlet_event_field(e, "/amount");
  if (!flowlet_json_number(v, &amount)) {
    flowlet_forward_to(out, invalid);
    return FLOWLET_OK;
  }
  if (amount > 1000) {
    flowlet_emit_str(out, flowlet_event_input(e));
    flowlet_route(out, large | audit);
    return FLOWLET_OK;
  }
  if (amount < 0) {
    flowlet_forward_to(out, invalid);
    return flowlet_reject(out, "negative");  // its routed output goes with it
  }
  flowlet_forward(out);
  return FLOWLET_OK;
}

int main(void) {
  const char *inputs[] = {"orders", "refunds"}, *outputs[] = {"invalid", "large", "audit"};
  flowlet_harness *h = flowlet_harness_with_setup(NULL, inputs, 2, outputs, 3);
  FLOWLET_CHECK(flowlet_harness_init_error(h) == NULL);
  FLOWLET_CHECK_STR(flowlet_input_name(1), "refunds");
  FLOWLET_CHECK_INT(flowlet_output_count(), 3);
  FLOWLET_CHECK_INT(flowlet_output_port("nope"), 0);
  const flowlet_result *r = flowlet_harness_process_from(
      h, 1, FLOWLET_VALUES("{\"id\":1}", "{\"amount\":5}", "{\"amount\":-1}", "{\"amount\":5000}"));
  FLOWLET_CHECK_INT(r->n, 3);
  FLOWLET_CHECK_INT(r->routes[0], invalid);
  FLOWLET_CHECK_INT(r->routes[1], FLOWLET_MAIN);
  FLOWLET_CHECK_STR(r->values[2], "refunds");
  FLOWLET_CHECK_INT(r->routes[2], 4u | 8u);
  FLOWLET_CHECK_INT(r->rejected_n, 1);
  flowlet_harness_free(h);
  // Without the output it needs, init refuses the config naming it.
  h = flowlet_harness_with_setup(NULL, NULL, 0, NULL, 0);
  FLOWLET_CHECK(flowlet_harness_init_error(h) && strstr(flowlet_harness_init_error(h), "no output `invalid`"));
  flowlet_harness_free(h);
  return flowlet_test_summary();
}
