//! Prints the fingerprint and normalised text of each line of stdin (one query per line, JSON
//! strings or plain text); a tool for reviewing grouping.
use std::io::BufRead;
fn main() {
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("stdin");
        let sql: String = serde_json::from_str(&line).unwrap_or(line);
        let n = advisor::fingerprint(sql.as_bytes());
        println!("{}\t{}", n.fingerprint, n.text);
    }
}
