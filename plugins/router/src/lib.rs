//! `router`: send each event to one or more named outputs by predicates on its JSON fields —
//! one operator, reading each event once, instead of a filter per branch.
//!
//! ```yaml
//! router:
//!   plugin: builtin:router          # or the component, router.wasm
//!   inputs: [orders]
//!   outputs: [invalid, large, audit]
//!   config:
//!     mode: first                   # first (default): the first route that matches; all: every one
//!     routes:
//!       - {to: invalid, field: /amount, op: missing}
//!       - {to: [large, audit], field: /amount, op: gt, value: 1000}
//!     otherwise: main               # main (default), an output's name, or drop
//! ```
//!
//! A route's `field`, `op` and `value` are the `filter`'s predicate (eq, ne, gt, ge, lt, le,
//! in, exists, missing, prefix). Downstream nodes read `router.invalid`, `router.large`, …;
//! `router` itself is the main output. An event that is not JSON is rejected (the operator's
//! `on-error`). A route to an output the operator does not declare is an invalid configuration.

#[path = "../../filter/src/predicate.rs"]
mod predicate;

use flowlet_sdk::serde_json::Value;
use flowlet_sdk::{Config, Error, Event, Operator, Output, Port};
use predicate::{Op, Predicate, Settings as Test};
use serde::Deserialize;

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
enum Mode {
    #[default]
    First,
    All,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Targets {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteSettings {
    to: Targets,
    field: String,
    op: Op,
    #[serde(default)]
    value: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    mode: Mode,
    routes: Vec<RouteSettings>,
    #[serde(default)]
    otherwise: Option<String>,
}

struct Route {
    when: Predicate,
    to: Port,
}

pub struct Router {
    mode: Mode,
    routes: Vec<Route>,
    /// `None`: drop what no route takes.
    otherwise: Option<Port>,
}

/// An output by name: `main` is the main output.
fn port(config: &Config, name: &str) -> Result<Port, Error> {
    match name {
        "main" => Ok(Port::MAIN),
        _ => config.output(name),
    }
}

impl Operator for Router {
    fn init(config: Config) -> Result<Self, Error> {
        let s: Settings = config.parse()?;
        if s.routes.is_empty() {
            return Err(Error::invalid_config(
                "`routes` is empty: give at least one",
            ));
        }
        let mut routes = Vec::new();
        for (i, r) in s.routes.into_iter().enumerate() {
            let names = match r.to {
                Targets::One(n) => vec![n],
                Targets::Many(n) => n,
            };
            if names.is_empty() {
                return Err(Error::invalid_config(format!(
                    "route {i} has an empty `to`"
                )));
            }
            let mut to = Port(0);
            for n in &names {
                to = to | port(&config, n)?;
            }
            let test = Test {
                field: r.field,
                op: r.op,
                value: r.value,
            };
            let when = Predicate::new(test)
                .map_err(|e| Error::invalid_config(format!("route {i}: {e}")))?;
            routes.push(Route { when, to });
        }
        let otherwise = match s.otherwise.as_deref() {
            None => Some(Port::MAIN),
            Some("drop") => None,
            Some(name) => Some(port(&config, name)?),
        };
        Ok(Self {
            mode: s.mode,
            routes,
            otherwise,
        })
    }

    fn process(&mut self, event: &Event<'_>, out: &mut Output<'_>) -> Result<(), Error> {
        let mut to = Port(0);
        for r in &self.routes {
            if r.when.matches(event)? {
                to = to | r.to;
                if self.mode == Mode::First {
                    break;
                }
            }
        }
        if to == Port(0) {
            match self.otherwise {
                Some(p) => to = p,
                None => return Ok(()),
            }
        }
        out.forward_to(to);
        Ok(())
    }
}

flowlet_sdk::export_operator!(Router);

#[cfg(test)]
mod tests {
    use super::*;
    use flowlet_sdk::Setup;
    use flowlet_sdk::serde_json::json;
    use flowlet_sdk::testing::Harness;

    fn setup(outputs: &[&str]) -> Setup {
        Setup {
            operator: "router".into(),
            inputs: vec!["orders".into()],
            outputs: outputs.iter().map(|o| o.to_string()).collect(),
        }
    }

    const EVENTS: [&str; 5] = [
        r#"{"id":1}"#,
        r#"{"id":2,"amount":5}"#,
        r#"{"id":3,"amount":5000}"#,
        r#"{"id":4,"amount":"x"}"#,
        "not json",
    ];

    #[test]
    fn the_first_match_wins_and_the_rest_go_to_otherwise() {
        let config = json!({"routes": [
            {"to": "invalid", "field": "/amount", "op": "missing"},
            {"to": ["large", "audit"], "field": "/amount", "op": "gt", "value": 1000},
            {"to": "audit", "field": "/amount", "op": "ge", "value": 0},
        ]});
        let mut h =
            Harness::<Router>::with_setup(config, setup(&["invalid", "large", "audit"])).unwrap();
        let out = h.process_json(&EVENTS).unwrap();
        assert_eq!(out.on("invalid"), vec![EVENTS[0]]);
        assert_eq!(out.on("large"), vec![EVENTS[2]]);
        assert_eq!(out.on("audit"), vec![EVENTS[1], EVENTS[2]]);
        assert_eq!(out.on(""), vec![EVENTS[3]], "no route matched: main");
        assert_eq!(out.rejected_indexes(), vec![4], "not JSON is rejected");
    }

    #[test]
    fn all_matches_send_an_event_to_every_matching_output() {
        let config = json!({"mode": "all", "otherwise": "drop", "routes": [
            {"to": "small", "field": "/amount", "op": "lt", "value": 100},
            {"to": "any", "field": "/amount", "op": "exists"},
        ]});
        let mut h = Harness::<Router>::with_setup(config, setup(&["small", "any"])).unwrap();
        let out = h.process_json(&EVENTS[..4]).unwrap();
        assert_eq!(out.on("small"), vec![EVENTS[1]]);
        assert_eq!(out.on("any"), vec![EVENTS[1], EVENTS[2], EVENTS[3]]);
        assert!(out.on("").is_empty(), "otherwise: drop");
    }

    #[test]
    fn a_route_to_an_undeclared_output_names_it_and_the_declared_ones() {
        let config = json!({"routes": [{"to": "invalid", "field": "/a", "op": "exists"}]});
        let Err(Error::InvalidConfig(e)) = Harness::<Router>::with_setup(config, setup(&["valid"]))
        else {
            panic!("accepted an undeclared output");
        };
        assert!(
            e.contains("no output `invalid`") && e.contains("it has: valid"),
            "{e}"
        );
        let config = json!({"routes": []});
        assert!(Harness::<Router>::with_setup(config, setup(&[])).is_err());
    }
}
