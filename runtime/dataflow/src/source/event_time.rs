//! Event times read from events: milliseconds or RFC 3339, checked against the range flowlet
//! can compute with.

use flowlet_types::Timestamp;

/// An event time from the JSON text `raw` of a field: a number of milliseconds since the Unix
/// epoch (an integer, read exactly, or a decimal, rounded down), or an RFC 3339 string (any
/// offset, any number of fraction digits — rounded down to the millisecond —, `T`/`t` or a
/// space between date and time, `Z`/`z`, and leap seconds as the last millisecond of their
/// minute). Err says why it is not one.
pub fn parse_time(raw: &str) -> Result<Timestamp, String> {
    use ::time::format_description::well_known::Rfc3339;
    let t: i128 = if raw.starts_with('"') {
        // A JSON string: unescaped first (`\u0054` is a `T`).
        let s: String =
            serde_json::from_str(raw).map_err(|e| format!("{raw} is not a string: {e}"))?;
        let t = ::time::OffsetDateTime::parse(&s, &Rfc3339)
            .map_err(|e| format!("`{s}` is not an RFC 3339 date-time ({e})"))?;
        t.unix_timestamp_nanos().div_euclid(1_000_000)
    } else if let Ok(n) = raw.parse::<i64>() {
        n.into()
    } else {
        match raw.parse::<f64>() {
            Ok(f) if f.is_finite() => {
                let f = f.floor();
                // Beyond i128 is beyond the range anyway.
                if f.abs() > 1e30 { i128::MAX } else { f as i128 }
            }
            Ok(_) => i128::MAX,
            Err(_) => {
                return Err(format!(
                    "{} is neither a number nor a string",
                    preview_text(raw)
                ));
            }
        }
    };
    i64::try_from(t)
        .ok()
        .filter(|t| flowlet_types::event_time_in_range(*t))
        .ok_or_else(|| {
            format!(
                "{} is out of range (event times lie within about 146 million years of 1970, {}..={} ms)",
                preview_text(raw),
                flowlet_types::MIN_EVENT_TIME,
                flowlet_types::MAX_EVENT_TIME
            )
        })
}

/// At most 60 characters of `s`, for messages.
fn preview_text(s: &str) -> String {
    match s.char_indices().nth(60) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_time;
    use proptest::prelude::*;

    fn text(s: &str) -> String {
        serde_json::to_string(s).unwrap()
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm): the
    /// tests' own calendar, independent of the parser's.
    fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    #[test]
    fn rfc3339_corners() {
        for (s, ms) in [
            // The offset applies with and without a fraction, either sign, half hours.
            ("2024-05-01T12:00:00.250+02:00", 1_714_557_600_250),
            ("2024-05-01T12:00:00+02:00", 1_714_557_600_000),
            ("2024-05-01T12:00:00-04:30", 1_714_581_000_000),
            ("2024-05-01T12:00:00-00:00", 1_714_564_800_000),
            // Lowercase, and a space as the separator (RFC 3339 §5.6 allows it).
            ("2024-05-01t12:00:00z", 1_714_564_800_000),
            ("2024-05-01 12:00:00Z", 1_714_564_800_000),
            // Before 1970: rounded down, like every fraction.
            ("1969-12-31T23:59:59.999Z", -1),
            ("1969-12-31T23:59:59.9999Z", -1),
            ("1969-12-31T23:59:59.0001Z", -1_000),
            // The ends of the grammar's years; any number of fraction digits.
            ("0000-01-01T00:00:00Z", -62_167_219_200_000),
            ("9999-12-31T23:59:59.999999999Z", 253_402_300_799_999),
            ("2024-05-01T12:00:00.123456789123Z", 1_714_564_800_123),
            // A leap second is the last millisecond of its minute.
            ("2016-12-31T23:59:60Z", 1_483_228_799_999),
            ("2017-01-01T00:59:60+01:00", 1_483_228_799_999),
        ] {
            assert_eq!(parse_time(&text(s)), Ok(ms), "{s}");
        }
        // Escapes in the JSON string are undone first.
        assert_eq!(
            parse_time(r#""\u0032024-05-01T12:00:00Z""#),
            Ok(1_714_564_800_000)
        );
        for bad in [
            "2024-05-01T12:00:00",       // no offset
            "2024-05-01T12:00Z",         // no seconds
            "2024-02-30T00:00:00Z",      // no such day
            "2024-05-01T24:00:00Z",      // no such hour
            "2024-05-01T12:00:00+24:00", // no such offset
            "2024-05-01T12:00:00.Z",     // an empty fraction
            "2024-05-01T12:00:60Z",      // not a leap second
            " 2024-05-01T12:00:00Z",
            "",
            "yesterday",
        ] {
            let err = parse_time(&text(bad)).unwrap_err();
            assert!(err.contains("RFC 3339"), "{bad}: {err}");
        }
    }

    #[test]
    fn milliseconds_are_exact_and_bounded() {
        for (raw, ms) in [
            ("1700000000000", Ok(1_700_000_000_000)),
            // Above 2^53: read as an integer, not through a float.
            ("9007199254740993", Ok(9_007_199_254_740_993)),
            ("-1", Ok(-1)),
            ("0", Ok(0)),
            ("-0", Ok(0)),
            ("1.9", Ok(1)),
            ("-1.5", Ok(-2)),
            ("1e3", Ok(1000)),
            ("4611686018427387903", Ok(flowlet_types::MAX_EVENT_TIME)),
            ("-4611686018427387904", Ok(flowlet_types::MIN_EVENT_TIME)),
        ] {
            assert_eq!(parse_time(raw), ms, "{raw}");
        }
        for raw in [
            "4611686018427387904",
            "-9223372036854775808",
            "9223372036854775807",
            "18446744073709551616",
            "1e400",
            "-1e400",
            "1e19",
            "true",
            "null",
            "[1]",
            "{}",
        ] {
            assert!(parse_time(raw).is_err(), "{raw}");
        }
    }

    proptest! {
        /// Every RFC 3339 form the grammar allows, against the tests' own calendar.
        #[test]
        fn any_rfc3339_time_is_read_exactly(
            y in 0i64..=9999, m in 1i64..=12, d in 1i64..=28, h in 0i64..24, mi in 0i64..60,
            s in 0i64..60, frac in proptest::collection::vec(0u8..10, 0..12),
            off in -(23 * 60 + 59)..=(23 * 60 + 59i64), zulu in any::<bool>(),
            lower in any::<bool>(), space in any::<bool>(),
        ) {
            let sep = if space { " " } else if lower { "t" } else { "T" };
            let fraction: String = frac.iter().map(|d| char::from(b'0' + d)).collect();
            let zone = if zulu {
                if lower { "z".to_owned() } else { "Z".to_owned() }
            } else {
                let sign = if off < 0 { '-' } else { '+' };
                format!("{sign}{:02}:{:02}", off.abs() / 60, off.abs() % 60)
            };
            let dot = if frac.is_empty() { "" } else { "." };
            let t = format!("{y:04}-{m:02}-{d:02}{sep}{h:02}:{mi:02}:{s:02}{dot}{fraction}{zone}");
            let ms_of_fraction = frac.iter().chain([0, 0, 0].iter()).take(3).fold(0, |a, d| a * 10 + i64::from(*d));
            let offset = if zulu { 0 } else { off };
            let expected = (days_from_civil(y, m, d) * 86_400 + h * 3600 + mi * 60 + s - offset * 60) * 1000
                + ms_of_fraction;
            prop_assert_eq!(parse_time(&text(&t)), Ok(expected), "{}", t);
        }

        /// Any text at all: an answer, never a panic; numbers within the range are exact.
        #[test]
        fn any_text_is_answered(raw in ".{0,60}", n in any::<i64>()) {
            let _ = parse_time(&raw);
            let _ = parse_time(&text(&raw));
            let got = parse_time(&n.to_string());
            prop_assert_eq!(got.is_ok(), flowlet_types::event_time_in_range(n));
            if let Ok(t) = got {
                prop_assert_eq!(t, n);
            }
        }
    }
}
