//! The generator's events: deterministic, ~100-byte JSON documents.

use std::io::Write;

use flowlet_types::{Batch, Timestamp, splitmix64};

/// Event time of event 0; each next event is 1 ms later.
pub const BASE_TIME: Timestamp = 1_700_000_000_000;

const USERS: u64 = 1000;
const COUNTRIES: [&str; 8] = ["DE", "FR", "US", "JP", "BR", "IN", "NG", "SE"];
const KINDS: [&str; 4] = ["view", "click", "cart", "purchase"];
const TAGS: [&str; 4] = ["new", "promo", "mobile", "returning"];

/// Append event `n` of the stream seeded with `seed` to `batch`, e.g.
/// `{"id":7,"user":"u0042","country":"JP","amount":512.5,"kind":"cart","tags":["promo"],"ts":1700000000007}`.
/// `amount` is uniform in [0, 1000), so `amount >= 500` passes half of the events.
pub fn push_event(batch: &mut Batch, seed: u64, n: u64) {
    let r = splitmix64(n ^ seed.wrapping_mul(0xA24B_AED4_963E_E407));
    let ts = BASE_TIME + n as i64;
    let cents = r % 100_000;
    let tags =
        &TAGS[((r >> 40) % 4) as usize..][..((r >> 44) % 3).min(4 - ((r >> 40) % 4)) as usize];
    batch
        .push_with::<std::io::Error>(b"", ts, |buf| {
            write!(
                buf,
                r#"{{"id":{n},"user":"u{:04}","country":"{}","amount":{}.{:02},"kind":"{}","tags":["#,
                (r >> 20) % USERS,
                COUNTRIES[((r >> 32) % 8) as usize],
                cents / 100,
                cents % 100,
                KINDS[((r >> 36) % 4) as usize],
            )?;
            for (i, t) in tags.iter().enumerate() {
                if i > 0 {
                    buf.push(b',');
                }
                write!(buf, "\"{t}\"")?;
            }
            write!(buf, r#"],"ts":{ts}}}"#)
        })
        .expect("writing to a Vec cannot fail");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_json_deterministic_and_about_100_bytes() {
        let mut a = Batch::new();
        let mut b = Batch::new();
        for n in 0..1000 {
            push_event(&mut a, 7, n);
            push_event(&mut b, 7, n);
        }
        assert_eq!(a, b);
        let mut passing = 0;
        for e in a.iter() {
            let v: serde_json::Value = serde_json::from_slice(e.value()).unwrap();
            assert_eq!(v["ts"].as_i64().unwrap(), e.timestamp());
            if v["amount"].as_f64().unwrap() >= 500.0 {
                passing += 1;
            }
        }
        let avg = a.values.len() / a.len();
        assert!((90..=130).contains(&avg), "average event size {avg}");
        assert!(
            (400..600).contains(&passing),
            "{passing} of 1000 pass amount >= 500"
        );
    }
}
