//! Inactivity alerts: emit one event when a key has been silent for `timeout` of processing
//! time (a processing-time timer per key, re-armed by each event; Flink's classic
//! "count with timeout" process function).
//!
//! ```yaml
//! plugin: ../../dist/plugins/inactivity.wasm
//! key-by: /device
//! config: {timeout: 5m}
//! ```
//!
//! Output: `{"key": "d17", "last_seen": <processing time>, "silent_ms": 300000, "events": 42}`.

use std::time::Duration;

use flowlet_sdk::state::{self, TimeDomain};
use flowlet_sdk::{Config, Emitter, Error, Event, Operator, Output, Timer};

pub struct Inactivity {
    timeout: i64,
}

fn read_i64(v: Option<Vec<u8>>) -> Option<i64> {
    v.and_then(|b| b.try_into().ok()).map(i64::from_le_bytes)
}

impl Operator for Inactivity {
    fn init(config: Config) -> Result<Self, Error> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Settings {
            timeout: String,
        }
        let s: Settings = config.parse()?;
        let timeout: Duration = humantime::parse_duration(&s.timeout).map_err(|e| {
            Error::invalid_config(format!("`timeout` {:?}: {e} (write e.g. 5m)", s.timeout))
        })?;
        if timeout.is_zero() {
            return Err(Error::invalid_config("`timeout` must be longer than 0"));
        }
        Ok(Self {
            timeout: timeout.as_millis() as i64,
        })
    }

    fn process(&mut self, event: &Event<'_>, _out: &mut Output<'_>) -> Result<(), Error> {
        let st = event.state();
        let now = state::now();
        if let Some(previous) = read_i64(st.get("deadline")) {
            st.cancel_timer(TimeDomain::ProcessingTime, previous);
        }
        let deadline = now + self.timeout;
        st.register_timer(TimeDomain::ProcessingTime, deadline);
        st.put("deadline", &deadline.to_le_bytes());
        st.put("last_seen", &now.to_le_bytes());
        st.put("events", &(st.get_u64("events") + 1).to_le_bytes());
        Ok(())
    }

    fn on_timer(&mut self, timer: &Timer, out: &mut Emitter) -> Result<(), Error> {
        let st = timer.state();
        if read_i64(st.get("deadline")) != Some(timer.at) {
            return Ok(()); // re-armed since
        }
        let last_seen = read_i64(st.get("last_seen")).unwrap_or(timer.at - self.timeout);
        out.emit_json(&serde_json::json!({
            "key": String::from_utf8_lossy(&timer.key),
            "last_seen": last_seen,
            "silent_ms": timer.at - last_seen,
            "events": st.get_u64("events"),
        }))?;
        st.delete("deadline");
        Ok(())
    }
}

flowlet_sdk::export_stateful_operator!(Inactivity);

#[cfg(test)]
mod tests {
    use super::*;
    use flowlet_sdk::testing::Harness;

    #[test]
    fn alerts_once_per_silence() {
        let mut h = Harness::<Inactivity>::new(serde_json::json!({"timeout": "1s"})).unwrap();
        h.set_processing_time(0).unwrap();
        h.process_keyed(&[("a", "{}", 0), ("b", "{}", 0)]).unwrap();
        h.set_processing_time(500).unwrap();
        h.process_keyed(&[("a", "{}", 0)]).unwrap();
        let out = h.set_processing_time(1000).unwrap();
        let keys: Vec<_> = out.iter().map(|e| e.key().unwrap().to_vec()).collect();
        assert_eq!(keys, vec![b"b".to_vec()]);
        let out = h.set_processing_time(1500).unwrap();
        assert_eq!(out.len(), 1);
        assert!(h.set_processing_time(5000).unwrap().is_empty());
    }
}
