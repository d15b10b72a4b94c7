//! The Nexmark events: the deterministic Nexmark variant of `docs/NEXMARK.md` (people,
//! auctions and bids; 10,000 events per second of event time, in time order).

use std::io::Write;

use flowlet_types::{Batch, Timestamp, splitmix64};

/// Event time of event 0 (2015-07-15).
pub const BASE_TIME: Timestamp = 1_436_918_400_000;

const NAMES: [&str; 8] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
];
const CITIES: [&str; 5] = ["Boise", "Bend", "Kent", "Reno", "Yuma"];
const STATES: [&str; 5] = ["ID", "OR", "WA", "NV", "AZ"];
const CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];

/// Event `n`, as the generator defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Person {
        id: u64,
        name: &'static str,
        card: u64,
        city: &'static str,
        state: &'static str,
        date_time: Timestamp,
    },
    Auction {
        id: u64,
        initial_bid: u64,
        reserve: u64,
        date_time: Timestamp,
        expires: Timestamp,
        seller: u64,
        category: u64,
    },
    Bid {
        auction: u64,
        bidder: u64,
        price: u64,
        channel: &'static str,
        date_time: Timestamp,
    },
}

/// The event time of event `n`.
pub fn time_of(n: u64) -> Timestamp {
    BASE_TIME + (n / 10) as Timestamp
}

/// Event `n`.
pub fn event(n: u64) -> Event {
    let r = splitmix64(n);
    let epoch = n / 50;
    let off = n % 50;
    let ts = time_of(n);
    match off {
        0 => Event::Person {
            id: 1000 + epoch,
            name: NAMES[(r % 8) as usize],
            card: r % 10_000,
            city: CITIES[((r >> 8) % 5) as usize],
            state: STATES[((r >> 16) % 5) as usize],
            date_time: ts,
        },
        1..=3 => Event::Auction {
            id: 1000 + 3 * epoch + (off - 1),
            initial_bid: 100 + r % 1000,
            reserve: 1100 + (r >> 10) % 1000,
            date_time: ts,
            expires: ts + 10_000,
            seller: 1000 + epoch,
            category: 10 + (r >> 20) % 5,
        },
        _ => Event::Bid {
            auction: 1000 + 3 * epoch - (3 * epoch).min(r % 100),
            bidder: 1000 + epoch - epoch.min((r >> 8) % 100),
            price: 100 + (r >> 16) % 10_000_000,
            channel: CHANNELS[((r >> 40) % 4) as usize],
            date_time: ts,
        },
    }
}

/// Append event `n` as JSON (fields in the order of the definition), timestamped with its
/// `date_time`.
pub fn push_event(batch: &mut Batch, n: u64) {
    let ts = time_of(n);
    batch
        .push_with::<std::io::Error>(b"", ts, |buf| match event(n) {
            Event::Person {
                id,
                name,
                card,
                city,
                state,
                date_time,
            } => write!(
                buf,
                r#"{{"person":{{"id":{id},"name":"{name}","email":"p{id}@x.com","credit_card":"4000{card}","city":"{city}","state":"{state}","date_time":{date_time}}}}}"#
            ),
            Event::Auction {
                id,
                initial_bid,
                reserve,
                date_time,
                expires,
                seller,
                category,
            } => write!(
                buf,
                r#"{{"auction":{{"id":{id},"item_name":"item{id}","initial_bid":{initial_bid},"reserve":{reserve},"date_time":{date_time},"expires":{expires},"seller":{seller},"category":{category}}}}}"#
            ),
            Event::Bid {
                auction,
                bidder,
                price,
                channel,
                date_time,
            } => write!(
                buf,
                r#"{{"bid":{{"auction":{auction},"bidder":{bidder},"price":{price},"channel":"{channel}","url":"https://nexmark.io/item?a={auction}","date_time":{date_time}}}}}"#
            ),
        })
        .expect("writing to a Vec cannot fail");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// The reference checksums of docs/NEXMARK.md for 1M events, computed by plain loops over
    /// the generator (the queries themselves are tested end to end in tests/).
    #[test]
    fn the_generator_matches_the_reference_checksums() {
        let n = 1_000_000;
        let (mut q1, mut q2, mut q2n, mut bids) = (0u64, 0u64, 0u64, 0u64);
        let mut q7: BTreeMap<i64, u64> = BTreeMap::new();
        let mut wc: BTreeMap<(i64, u64), u64> = BTreeMap::new();
        // q5: bids per (sliding window start, auction).
        let mut q5: BTreeMap<(i64, u64), u64> = BTreeMap::new();
        for i in 0..n {
            if let Event::Bid {
                auction,
                price,
                date_time,
                ..
            } = event(i)
            {
                bids += 1;
                q1 += (price as f64 * 0.908).floor() as u64;
                if auction % 123 == 0 {
                    q2 += price;
                    q2n += 1;
                }
                let w = date_time - date_time % 10_000;
                let m = q7.entry(w).or_default();
                *m = (*m).max(price);
                *wc.entry((w, auction)).or_default() += 1;
                for k in 0..5 {
                    let start = (date_time - date_time % 2000) - k * 2000;
                    *q5.entry((start, auction)).or_default() += 1;
                }
            }
        }
        assert_eq!(bids, 920_000);
        assert_eq!(q1, 4_172_036_428_692);
        assert_eq!((q2n, q2), (7_312, 36_677_481_512));
        assert_eq!((q7.len(), q7.values().sum::<u64>()), (10, 99_999_328));
        assert_eq!(wc.len(), 60_778);
        let mut hottest: BTreeMap<i64, u64> = BTreeMap::new();
        for ((start, _), count) in q5 {
            let m = hottest.entry(start).or_default();
            *m = (*m).max(count);
        }
        assert_eq!((hottest.len(), hottest.values().sum::<u64>()), (54, 5_431));
        let mut b = Batch::new();
        push_event(&mut b, 0);
        push_event(&mut b, 1);
        push_event(&mut b, 4);
        for e in b.iter() {
            serde_json::from_slice::<serde_json::Value>(e.value()).unwrap();
        }
    }
}
