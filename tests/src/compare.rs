//! Differential checks: the same client action run directly and through pgvisor must look the
//! same to the user.

use std::path::Path;

use tempfile::TempDir;

use crate::cli::{psql, CliOutput};
use crate::endpoint::Endpoint;

/// Panics with the first differing line when `direct` and `proxied` differ.
pub fn assert_same_text(what: &str, direct: &str, proxied: &str) {
    if direct == proxied {
        return;
    }
    let (d, p): (Vec<&str>, Vec<&str>) = (direct.lines().collect(), proxied.lines().collect());
    let line = d.iter().zip(&p).position(|(a, b)| a != b).unwrap_or(d.len().min(p.len()));
    panic!(
        "{what} differs direct vs proxied at line {}:\n  direct:  {:?}\n  proxied: {:?}\n--- direct ---\n{direct}\n--- proxied ---\n{proxied}",
        line + 1,
        d.get(line),
        p.get(line),
    );
}

/// `text` with what legitimately differs between two sessions replaced by a placeholder: the
/// temporary schema's number (`pg_temp_3`), which depends on the backend slot.
pub fn without_session_details(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("pg_temp_") {
        let (before, after) = rest.split_at(at + "pg_temp_".len());
        out.push_str(before);
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        out.push_str(if digits > 0 { "N" } else { "" });
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

/// A psql run in its own scratch directory, so `\copy` files of two runs do not meet.
pub struct PsqlRun {
    /// What psql printed and how it exited.
    pub output: CliOutput,
    /// The directory psql ran in.
    pub dir: TempDir,
}

impl PsqlRun {
    /// Runs psql against `endpoint` in a new directory holding `files` (name, contents).
    pub async fn new(endpoint: &Endpoint, args: &[&str], script: Option<&str>, files: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("create a scratch directory");
        for (name, contents) in files {
            std::fs::write(dir.path().join(name), contents).expect("write an input file");
        }
        let output = psql(endpoint, args, script, dir.path()).await;
        Self { output, dir }
    }

    /// A file psql wrote (for `\copy ... to 'name'`).
    pub fn file(&self, name: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", Path::new(name).display()))
    }
}

/// Runs the same psql invocation directly and through the proxy and asserts that the exit code,
/// standard output and standard error are identical (but for [`without_session_details`]);
/// returns both runs.
pub async fn psql_same_both_ways(
    direct: &Endpoint,
    proxied: &Endpoint,
    args: &[&str],
    script: Option<&str>,
    files: &[(&str, &str)],
) -> (PsqlRun, PsqlRun) {
    let d = PsqlRun::new(direct, args, script, files).await;
    let p = PsqlRun::new(proxied, args, script, files).await;
    assert_eq!(
        d.output.code(),
        p.output.code(),
        "psql exit code direct vs proxied; proxied stderr:\n{}",
        p.output.stderr
    );
    for (what, direct, proxied) in
        [("psql stdout", &d.output.stdout, &p.output.stdout), ("psql stderr", &d.output.stderr, &p.output.stderr)]
    {
        assert_same_text(what, &without_session_details(direct), &without_session_details(proxied));
    }
    (d, p)
}

#[cfg(test)]
mod tests {
    use super::without_session_details;

    #[test]
    fn temp_schema_numbers_are_masked() {
        assert_eq!(
            without_session_details("SCHEMA NAME:  pg_temp_14\nx pg_temp_ y"),
            "SCHEMA NAME:  pg_temp_N\nx pg_temp_ y"
        );
        assert_eq!(without_session_details("no temp"), "no temp");
    }
}
