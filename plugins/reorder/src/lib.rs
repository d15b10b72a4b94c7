//! Reorder: emit events in event-time order. Each event waits in keyed map state until the
//! watermark passes its timestamp (an event-time timer), then the buffered events of its key
//! come out sorted. Events already behind the watermark pass at once.
//!
//! ```yaml
//! plugin: ../../dist/plugins/reorder.wasm
//! key-by: /user          # optional: without it, one global order
//! ```

use flowlet_sdk::state::{self, TimeDomain};
use flowlet_sdk::{Config, Emitter, Error, Event, Operator, Output, Timer};

pub struct Reorder;

/// Map keys sort by bytes: the timestamp big-endian with the sign bit flipped, then a sequence
/// number so that equal timestamps keep their arrival order.
fn map_key(ts: i64, seq: u64) -> Vec<u8> {
    let mut k = ((ts as u64) ^ (1 << 63)).to_be_bytes().to_vec();
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

impl Operator for Reorder {
    fn init(_: Config) -> Result<Self, Error> {
        Ok(Reorder)
    }

    fn process(&mut self, event: &Event<'_>, out: &mut Output<'_>) -> Result<(), Error> {
        let ts = event.timestamp();
        if ts <= state::current_watermark() {
            out.forward();
            return Ok(());
        }
        let st = event.state();
        let seq = st.get_u64("seq");
        st.put("seq", &(seq + 1).to_le_bytes());
        // value: the event's value (the key is the state's key; the timestamp is in the map key).
        st.map_put("buffer", &map_key(ts, seq), event.value());
        st.register_timer(TimeDomain::EventTime, ts);
        Ok(())
    }

    fn on_timer(&mut self, timer: &Timer, out: &mut Emitter) -> Result<(), Error> {
        let st = timer.state();
        let end = map_key(timer.at.saturating_add(1), 0);
        loop {
            let due = st.map_range("buffer", &[], &end, 256);
            if due.is_empty() {
                break;
            }
            for (k, v) in due {
                let ts =
                    (u64::from_be_bytes(k[..8].try_into().expect("8 bytes")) ^ (1 << 63)) as i64;
                out.emit_with(timer.key.as_slice(), &v, ts);
                st.map_delete("buffer", &k);
            }
        }
        Ok(())
    }
}

flowlet_sdk::export_stateful_operator!(Reorder);

#[cfg(test)]
mod tests {
    use super::*;
    use flowlet_sdk::testing::Harness;

    #[test]
    fn releases_in_order_when_the_watermark_passes() {
        let mut h = Harness::<Reorder>::new(serde_json::Value::Null).unwrap();
        let out = h
            .process_keyed(&[
                ("k", "c", 30),
                ("k", "a", 10),
                ("k", "b", 20),
                ("k", "b2", 20),
            ])
            .unwrap();
        assert!(out.events.is_empty());
        let out = h.advance_watermark(20).unwrap();
        let v: Vec<_> = out
            .iter()
            .map(|e| (e.value().to_vec(), e.timestamp()))
            .collect();
        assert_eq!(
            v,
            vec![
                (b"a".to_vec(), 10),
                (b"b".to_vec(), 20),
                (b"b2".to_vec(), 20)
            ]
        );
        let out = h.advance_watermark(100).unwrap();
        assert_eq!(
            out.iter().map(|e| e.value().to_vec()).collect::<Vec<_>>(),
            vec![b"c".to_vec()]
        );
    }
}
