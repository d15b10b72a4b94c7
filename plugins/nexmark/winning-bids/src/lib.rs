//! Nexmark q9's last step (docs/NEXMARK.md, examples/nexmark/q9.yaml): over the pairs of an
//! interval join of auctions with their bids (`{"left": {"auction"}, "right": {"bid"}}`, bids
//! from the auction's time to 9.999 s after), keep per auction the highest bid at or above the
//! reserve, and emit `{"auction", "price"}` when the watermark passes the auction's `expires`.
//! Keyed by the auction id (`key-by: /left/auction/id`); a stateful processor: the maximum is in
//! keyed state, the expiry an event-time timer.

use flowlet_sdk::{Config, Emitter, Error, Event, Operator, Output, TimeDomain, Timer};
use serde::Deserialize;

pub struct WinningBids;

#[derive(Deserialize)]
struct Auction {
    id: u64,
    reserve: u64,
    expires: i64,
}

#[derive(Deserialize)]
struct Bid {
    price: u64,
}

#[derive(Deserialize)]
struct Side<T> {
    #[serde(alias = "auction", alias = "bid")]
    inner: T,
}

#[derive(Deserialize)]
struct Pair {
    left: Side<Auction>,
    right: Side<Bid>,
}

impl Operator for WinningBids {
    fn init(_config: Config) -> Result<Self, Error> {
        Ok(Self)
    }

    fn process(&mut self, event: &Event<'_>, _out: &mut Output<'_>) -> Result<(), Error> {
        if event.key().is_none() {
            return Err(Error::reject(
                "no key: run it with `key-by: /left/auction/id`",
            ));
        }
        let p: Pair = event.json()?;
        let (a, b) = (p.left.inner, p.right.inner);
        if b.price < a.reserve {
            return Ok(());
        }
        let state = event.state();
        let best = state.get_u64("best");
        if best == 0 {
            state.register_timer(TimeDomain::EventTime, a.expires);
            state.put("auction", &a.id.to_le_bytes());
        }
        if b.price > best {
            state.put("best", &b.price.to_le_bytes());
        }
        Ok(())
    }

    fn on_timer(&mut self, timer: &Timer, out: &mut Emitter) -> Result<(), Error> {
        let state = timer.state();
        let (auction, best) = (state.get_u64("auction"), state.get_u64("best"));
        state.delete("auction");
        state.delete("best");
        if best > 0 {
            out.emit(format!(r#"{{"auction":{auction},"price":{best}}}"#).as_bytes());
        }
        Ok(())
    }
}

flowlet_sdk::export_stateful_operator!(WinningBids);
