"""{{name}}: adds "label": <config.label> to every JSON object event; anything else is refused
(and meets the operator's `on-error` policy). `make test` runs test_app.py, then the component."""

import flowlet

settings = {}


@flowlet.init
def setup(config):
    settings.update(flowlet.settings({"label": "hello"}))


@flowlet.processor
def process(event, out):
    out.emit(event.object | {"label": settings["label"]})
