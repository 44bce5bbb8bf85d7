//! Property tests of result sampling: rows kept as bytes and keyed at the first search find
//! exactly the values that keying each row as it came would find, for any rows, any formats and
//! any bytes (truncated or malformed rows included).

use std::collections::HashSet;
use std::sync::Arc;

use advisor::capture::{
    chain_hash, has_key, value_key, ResultFormats, ResultSample, ValueKey, MAX_SAMPLED_COLUMNS, MAX_SAMPLED_ROWS,
};
use proptest::prelude::*;
use protocol::backend::DataRow;
use protocol::frontend::Format;

/// A DataRow body with these values (`None`: NULL).
fn body(values: &[Option<Vec<u8>>]) -> Vec<u8> {
    let mut body = (values.len() as u16).to_be_bytes().to_vec();
    for v in values {
        match v {
            Some(v) => {
                body.extend_from_slice(&(v.len() as i32).to_be_bytes());
                body.extend_from_slice(v);
            }
            None => body.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    body
}

fn value() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        1 => Just(None),
        4 => proptest::collection::vec(any::<u8>(), 0..12).prop_map(Some),
        2 => "[0-9]{1,6}|é[a-z]{0,3}".prop_map(|s| Some(s.into_bytes())),
        1 => proptest::collection::vec(any::<u8>(), 60..300).prop_map(Some),
    ]
}

fn rows() -> impl Strategy<Value = Vec<Vec<Option<Vec<u8>>>>> {
    proptest::collection::vec(proptest::collection::vec(value(), 0..20), 0..260)
}

/// The formats a Bind asked for: none (all text), one for all, or one per column.
fn formats() -> impl Strategy<Value = Vec<i16>> {
    prop_oneof![Just(vec![]), proptest::collection::vec(0i16..2, 1..20)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 100, ..ProptestConfig::default() })]

    #[test]
    fn a_digest_finds_what_keying_each_row_would(rows in rows(), codes in formats()) {
        let wire: Vec<u8> = codes.iter().flat_map(|c| c.to_be_bytes()).collect();
        let formats = ResultFormats::from_codes(&wire);
        let mut sample = ResultSample::with_names(&Arc::from([]), formats);
        let mut expected: Vec<HashSet<ValueKey>> = vec![HashSet::new(); MAX_SAMPLED_COLUMNS];
        // The first sampled row with any column says how many are sampled.
        let sampled = &rows[..rows.len().min(MAX_SAMPLED_ROWS as usize)];
        let columns = sampled.iter().find(|r| !r.is_empty()).map_or(0, |r| r.len().min(MAX_SAMPLED_COLUMNS));
        for (r, values) in rows.iter().enumerate() {
            let body = body(values);
            sample.add(&DataRow::parse(&body).unwrap());
            if r as u64 >= MAX_SAMPLED_ROWS {
                continue;
            }
            for (c, v) in values.iter().enumerate().take(columns) {
                if let Some(key) = v.as_deref().and_then(|v| value_key(v, formats.get(c))) {
                    expected[c].insert(key);
                }
            }
        }
        let digest = sample.finish();
        prop_assert_eq!(digest.columns(), columns);
        for (c, keys) in expected.iter().enumerate() {
            for key in keys {
                prop_assert!(digest.contains(c, *key), "column {} lost a value", c);
            }
            // A key no cell of this column had is not found in it.
            for other in expected.iter().flatten().filter(|k| !keys.contains(k)) {
                prop_assert!(!digest.contains(c, *other), "column {} found another column's value", c);
            }
        }
        prop_assert!(!digest.contains(columns, 1));
        // Empty: no sampled cell with a key (such a result can be no parent).
        prop_assert_eq!(digest.is_empty(), expected.iter().all(HashSet::is_empty));
    }

    #[test]
    fn has_key_says_whether_value_key_has_one(bytes in proptest::collection::vec(any::<u8>(), 0..80), binary in any::<bool>()) {
        let format = if binary { Format::Binary } else { Format::Text };
        prop_assert_eq!(has_key(&bytes, format), value_key(&bytes, format).is_some());
    }

    #[test]
    fn any_row_bytes_are_sampled_without_panic(bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 0..40), key in any::<u64>()) {
        let mut sample = ResultSample::with_names(&Arc::from([]), ResultFormats::from_codes(&[0, 1]));
        for b in &bodies {
            if let Ok(row) = DataRow::parse(b) {
                sample.add(&row);
            }
        }
        let digest = sample.finish();
        for c in 0..=MAX_SAMPLED_COLUMNS {
            let _ = digest.contains(c, key);
        }
        let _ = value_key(&key.to_be_bytes(), Format::Binary);
    }

    #[test]
    fn a_chain_hash_tells_values_apart_by_content_split_and_null(values in proptest::collection::vec(value(), 0..12)) {
        fn refs(v: &[Option<Vec<u8>>]) -> Vec<Option<&[u8]>> {
            v.iter().map(|x| x.as_deref()).collect()
        }
        let h = chain_hash(refs(&values));
        prop_assert_eq!(h, chain_hash(refs(&values)), "deterministic");
        // One more value, a NULL instead of an empty value, or two values joined: another hash.
        let mut longer = values.clone();
        longer.push(Some(Vec::new()));
        prop_assert_ne!(h, chain_hash(refs(&longer)));
        if let Some(i) = values.iter().position(|v| v.as_ref().is_some_and(|v| v.is_empty())) {
            let mut null = values.clone();
            null[i] = None;
            prop_assert_ne!(h, chain_hash(refs(&null)));
        }
        if let [Some(a), Some(b), ..] = values.as_slice() {
            let mut joined = values[1..].to_vec();
            joined[0] = Some([a.as_slice(), b.as_slice()].concat());
            prop_assert_ne!(h, chain_hash(refs(&joined)));
        }
    }
}
