//! SQL text as the advisor reads it: arbitrary bytes through the lexer, the fingerprint, the
//! statement splitter, the DDL classifier and the statement-shape helpers. None may panic; the
//! cheap invariants of `advisor/tests/text_properties.rs` must hold.
#![no_main]

use advisor::capture::literal_value;
use advisor::detect::lock_hazard_ddl::classify;
use advisor::fingerprint::Fingerprinter;
use advisor::lexer::{split_statements, Lexer, Token};
use advisor::sql_shape;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut last_end = 0;
    for tok in Lexer::new(data) {
        if let Token::Const(s, e)
        | Token::Word(s, e)
        | Token::Keyword(s, e)
        | Token::QuotedIdent(s, e)
        | Token::Operator(s, e) = tok
        {
            assert!(last_end <= s && s < e && e <= data.len(), "{tok:?}");
            last_end = e;
        }
    }

    let mut end = 0;
    for piece in split_statements(data) {
        let start = piece.as_ptr() as usize - data.as_ptr() as usize;
        assert!(end <= start && start + piece.len() <= data.len());
        end = start + piece.len();
    }

    let mut f = Fingerprinter::default();
    let fingerprint = f.fingerprint(data);
    let text = f.text().to_owned();
    for &(s, e) in f.constants() {
        let _ = literal_value(&data[s..e]);
    }
    assert_eq!(advisor::fingerprint(data).fingerprint, fingerprint);

    let raw = String::from_utf8_lossy(data);
    for text in [raw.as_ref(), text.as_str()] {
        let _ = classify(text);
        let _ = (sql_shape::verb(text), sql_shape::is_read(text), sql_shape::has_table(text));
        let _ = (sql_shape::tables(text), sql_shape::bare_name(text));
        for n in [1, 2, 12] {
            assert_eq!(sql_shape::column_for_param(text, n).is_some(), sql_shape::batched(text, n).is_some());
        }
    }
});
