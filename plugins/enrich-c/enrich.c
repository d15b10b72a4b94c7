// enrich (C): the sample enrich-and-filter operator of plugins/enrich (Rust), enrich-python and
// enrich-js, on the flowlet C SDK (sdk/c). See plugins/enrich/README.md for what it does.
#include <string.h>

#include "flowlet.h"

static double min_amount = 0, high_amount = 1000;

int flowlet_init(const flowlet_config *c) {
  return flowlet_config_read(c, FLOWLET_SETTINGS(FLOWLET_CONFIG_NUMBER("min-amount", &min_amount),
                                                 FLOWLET_CONFIG_NUMBER("high-amount", &high_amount)));
}

// The region of a country code, whatever its ASCII case (`| 0x20` lowercases ASCII letters only).
static const char *region(flowlet_json country) {
  static const char codes[] = " at be de dk es fi fr ie it nl pl pt se| ca mx us| au cn in jp kr sg";
  char c[4];
  if (flowlet_json_string(country, c, sizeof c) != 2 || !c[0] || !c[1]) return "other";
  const char code[] = {' ', (char)(c[0] | 0x20), (char)(c[1] | 0x20), 0}, *at = strstr(codes, code);
  return !at ? "other" : at < strchr(codes, '|') ? "eu" : at < strrchr(codes, '|') ? "na" : "apac";
}

int flowlet_process(const flowlet_event *e, flowlet_output *out) {
  flowlet_json order = flowlet_event_json(e);
  double amount;
  if (order.type != FLOWLET_JSON_OBJECT) return flowlet_reject(out, "the value is not a JSON object");
  if (!flowlet_json_number(flowlet_json_get(order, "amount"), &amount))
    return flowlet_reject(out, "`amount` is missing or not a number");
  if (amount >= min_amount)
    flowlet_emit_object_with(out, order, FLOWLET_FIELDS(FLOWLET_STRING("tier", amount >= high_amount ? "high" : "low"),
                                                        FLOWLET_STRING("region", region(flowlet_json_get(order, "country")))));
  return FLOWLET_OK;
}
