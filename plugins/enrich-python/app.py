"""enrich (Python): the sample JSON enrich-and-filter operator, the same as plugins/enrich (Rust),
plugins/enrich-c and plugins/enrich-js — see plugins/enrich/src/lib.rs for what it does."""

import flowlet

REGIONS = {
    **dict.fromkeys(["at", "be", "de", "dk", "es", "fi", "fr", "ie", "it", "nl", "pl", "pt", "se"], "eu"),
    **dict.fromkeys(["ca", "mx", "us"], "na"),
    **dict.fromkeys(["au", "cn", "in", "jp", "kr", "sg"], "apac"),
}
settings = {}


@flowlet.init
def setup(config):
    settings.update(flowlet.settings({"min-amount": 0.0, "high-amount": 1000.0}))


@flowlet.processor
def enrich(event, out):
    order = event.object
    amount = order.get("amount")
    if not isinstance(amount, (int, float)) or isinstance(amount, bool):
        raise flowlet.Reject("`amount` is missing or not a number")
    if amount >= settings["min-amount"]:
        country = order.get("country")  # ASCII case only, as in the other languages
        region = REGIONS.get(country.encode().lower().decode(), "other") if isinstance(country, str) else "other"
        out.emit(order | {"tier": "high" if amount >= settings["high-amount"] else "low", "region": region})
