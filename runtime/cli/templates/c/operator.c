// {{name}}: adds "label": <config.label> (default "hello") to every JSON object event; anything
// else is rejected (and meets the operator's `on-error` policy).
//
// Written on the flowlet C SDK (.flowlet/sdk-c/flowlet.h, from `flowlet sdk c`): it implements
// the WIT exports and calls these functions, once per instance and once per event.
#include "flowlet.h"

static const char *label = "hello";

// The manifest's `config:` — {label: …}; anything else is an invalid config.
int flowlet_init(const flowlet_config *config) {
  return flowlet_config_read(config, FLOWLET_SETTINGS(FLOWLET_CONFIG_STRING("label", &label)));
}

int flowlet_process(const flowlet_event *event, flowlet_output *out) {
  flowlet_json value = flowlet_event_json(event);
  if (value.type != FLOWLET_JSON_OBJECT) return flowlet_reject(out, "the value is not a JSON object");
  // The object with "label" set (in place if it has one), compact; key and timestamp are kept.
  flowlet_emit_object_with(out, value, FLOWLET_FIELDS(FLOWLET_STRING("label", label)));
  return FLOWLET_OK;
}
