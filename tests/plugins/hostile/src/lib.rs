//! A test operator that misbehaves on demand. Each event is `{"do": ACTION, ...}`:
//!
//! - `pass` (or no `do`): forwarded;
//! - `reject`: rejected ("this event is bad");
//! - `fail`: the whole batch fails (`Error::Failed`);
//! - `panic`: panics (a trap);
//! - `loop`: loops forever (stopped by the epoch deadline);
//! - `recurse`: recurses without bound (a stack overflow trap);
//! - `alloc`: allocates without bound (stopped by the memory cap);
//! - `log`: logs a line and counts a metric, then forwards.
//!
//! `init` fails when the config is `{"fail-init": true}` and panics with `{"panic-init": true}`.

use flowlet_sdk::{Config, Error, Event, Operator, Output};
use serde::Deserialize;

pub struct Hostile;

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "kebab-case")]
struct Settings {
    fail_init: bool,
    panic_init: bool,
}

#[derive(Deserialize)]
struct Command<'a> {
    #[serde(default, rename = "do")]
    action: Option<&'a str>,
    #[serde(default)]
    port: Option<u32>,
}

#[inline(never)]
#[allow(unconditional_recursion)] // the point: a stack overflow trap
fn recurse(depth: u64, pad: &mut [u8; 64]) -> u64 {
    pad[(depth % 64) as usize] = depth as u8;
    let mut next = *pad;
    recurse(depth + 1, &mut next) + u64::from(pad[0])
}

impl Operator for Hostile {
    fn init(config: Config) -> Result<Self, Error> {
        let s: Settings = if config.value().is_null() {
            Settings::default()
        } else {
            config.parse()?
        };
        if s.panic_init {
            panic!("hostile operator panics in init as configured");
        }
        if s.fail_init {
            return Err(Error::invalid_config("fail-init is set"));
        }
        Ok(Self)
    }

    fn process(&mut self, event: &Event<'_>, out: &mut Output<'_>) -> Result<(), Error> {
        let cmd: Command<'_> = event.json()?;
        match cmd.action.unwrap_or("pass") {
            "pass" => out.forward(),
            "reject" => return Err(Error::reject("rejected as asked")),
            "fail" => return Err(Error::failed("failing the batch as asked")),
            "panic" => panic!("hostile operator panics as asked"),
            "loop" => {
                let mut x = 0u64;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "recurse" => {
                let mut pad = [0u8; 64];
                let n = recurse(0, &mut pad);
                out.emit(n.to_string().as_bytes());
            }
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            // Contract 0.2: which input the event came from; a route mask as given (the host
            // must refuse one past the operator's outputs).
            "input" => out.emit(format!(r#"{{"input":"{}"}}"#, event.input()).as_bytes()),
            "route" => out.forward_to(flowlet_sdk::Port(cmd.port.unwrap_or(1))),
            "log" => {
                flowlet_sdk::log::info("hostile operator logs as asked");
                flowlet_sdk::metrics::counter_add("logged", 1);
                out.forward();
            }
            other => return Err(Error::reject(format!("unknown action `{other}`"))),
        }
        Ok(())
    }
}

flowlet_sdk::export_operator!(Hostile);
