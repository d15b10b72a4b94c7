// The running-count operator of the hot-swap tests, included by each version's crate with
// its own `VERSION` and `MODE`: v1 and v2 count the same way and tag their output with their
// version; v3 traps in `init`; v4 fails every batch.
//
// Output per input event: `{"id":ID,"key":"KEY","n":COUNT,"version":"vN"}`, where COUNT is the
// running count of the event's key (kept in keyed state, so it carries over swaps).

use flowlet_sdk::{Config, Error, Event, Operator, Output};

#[allow(dead_code)]
enum Mode {
    Count,
    TrapInInit,
    FailEveryBatch,
}

pub struct Counter;

impl Operator for Counter {
    fn init(_config: Config) -> Result<Self, Error> {
        if let Mode::TrapInInit = MODE {
            panic!("{VERSION} traps in init");
        }
        Ok(Self)
    }

    fn process(&mut self, event: &Event<'_>, out: &mut Output<'_>) -> Result<(), Error> {
        if let Mode::FailEveryBatch = MODE {
            return Err(Error::failed(format!("{VERSION} fails every batch")));
        }
        let Some(key) = event.key() else {
            return Err(Error::reject("no key: run the counter with key-by"));
        };
        let id = flowlet_sdk::number_after(event.value(), b"\"id\":")
            .ok_or_else(|| Error::reject("no `id`"))?;
        let state = event.state();
        // Kept as decimal text, so that a state query shows it as a JSON number.
        let n = state
            .get("n")
            .and_then(|b| String::from_utf8(b).ok()?.parse::<u64>().ok())
            .unwrap_or(0)
            + 1;
        state.put("n", n.to_string().as_bytes());
        let key = String::from_utf8_lossy(key);
        out.emit(
            format!(r#"{{"id":{id},"key":"{key}","n":{n},"version":"{VERSION}"}}"#).as_bytes(),
        );
        Ok(())
    }
}

flowlet_sdk::export_stateful_operator!(Counter);
