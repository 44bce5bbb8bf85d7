//! `pgvisor fingerprint`: the grouping pgvisor uses, for scripts. Reads SQL, one statement per
//! line (or one JSON string per line, so a statement may hold newlines), from files or standard
//! input, and prints each statement's fingerprint and display text (docs/fingerprints.md).

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;

use anyhow::{bail, Context};

/// How input lines are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum InputFormat {
    /// A line starting with `"` is a JSON string; any other line is SQL.
    #[default]
    Auto,
    /// Every line is SQL as it is.
    Sql,
    /// Every line is a JSON string holding one statement.
    Json,
}

/// Arguments of `pgvisor fingerprint`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FingerprintArgs {
    /// Files to read, one statement per line; none or `-` reads standard input.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Print one JSON object per statement: {"fingerprint","query","normalized"}.
    #[arg(long)]
    pub json: bool,
    /// How to read input lines.
    #[arg(long, value_enum, default_value_t = InputFormat::Auto)]
    pub input: InputFormat,
}

/// Runs `pgvisor fingerprint`: reads every file in turn (or standard input) and prints to
/// standard output. A closed pipe (`| head`) ends it quietly.
pub fn run(args: &FingerprintArgs) -> anyhow::Result<()> {
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result = (|| {
        if args.files.is_empty() {
            return fingerprint_lines(io::stdin().lock(), "<stdin>", args, &mut out);
        }
        for path in &args.files {
            if path.as_os_str() == "-" {
                fingerprint_lines(io::stdin().lock(), "<stdin>", args, &mut out)?;
                continue;
            }
            let file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
            fingerprint_lines(BufReader::new(file), &path.display().to_string(), args, &mut out)?;
        }
        out.flush().context("cannot write to standard output")
    })();
    match result {
        Err(e) if e.downcast_ref::<io::Error>().is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe) => Ok(()),
        other => other,
    }
}

/// Fingerprints each non-empty line of `input` (named `name` in errors) and writes the results.
pub fn fingerprint_lines(
    input: impl BufRead,
    name: &str,
    args: &FingerprintArgs,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let mut f = advisor::Fingerprinter::default();
    for (n, line) in input.split(b'\n').enumerate() {
        let line = line.with_context(|| format!("cannot read {name}"))?;
        let line = line.strip_suffix(b"\r").unwrap_or(&line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let is_json = match args.input {
            InputFormat::Sql => false,
            InputFormat::Json => true,
            InputFormat::Auto => line.trim_ascii_start().first() == Some(&b'"'),
        };
        let decoded;
        let sql: &[u8] = if is_json {
            decoded = match serde_json::from_slice::<serde_json::Value>(line) {
                Ok(serde_json::Value::String(s)) => s,
                Ok(_) => bail!("{name}:{}: not a JSON string", n + 1),
                Err(e) => bail!("{name}:{}: invalid JSON: {e}", n + 1),
            };
            decoded.as_bytes()
        } else {
            line
        };
        let fingerprint = f.fingerprint(sql);
        if args.json {
            let row = serde_json::json!({
                "fingerprint": fingerprint.to_string(),
                "query": f.display(),
                "normalized": f.text(),
            });
            writeln!(out, "{row}")?;
        } else {
            writeln!(out, "{fingerprint}\t{}", f.display())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &str, args: &FingerprintArgs) -> anyhow::Result<String> {
        let mut out = Vec::new();
        fingerprint_lines(input.as_bytes(), "queries.sql", args, &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn prints_the_fingerprint_and_the_display_text_per_line() {
        let out =
            lines("SELECT * FROM t WHERE id = 1\n\nselect * from t where id = 2 -- again\r\n", &Default::default())
                .unwrap();
        let rows: Vec<(&str, &str)> = out.lines().map(|l| l.split_once('\t').unwrap()).collect();
        assert_eq!(rows.len(), 2, "{out}");
        assert_eq!(rows[0].0, rows[1].0, "one group");
        assert_eq!(rows[0].0, advisor::fingerprint(b"SELECT * FROM t WHERE id = $1").fingerprint.to_string());
        assert_eq!((rows[0].1, rows[1].1), ("SELECT * FROM t WHERE id = $1", "select * from t where id = $1"));
    }

    #[test]
    fn reads_json_strings_and_prints_json() {
        let args = FingerprintArgs { json: true, ..Default::default() };
        let out = lines("\"select a\\nfrom t where b in (1, 2)\"\n", &args).unwrap();
        let row: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(row["query"], "select a from t where b in ($1 /*, ... */)");
        assert_eq!(row["normalized"], "SELECT a FROM t WHERE b IN ($1)");
        assert_eq!(row["fingerprint"].as_str().map(str::len), Some(16));
    }

    #[test]
    fn errors_name_the_line_and_the_file() {
        let err = lines("select 1\n\"select 2\n", &Default::default()).unwrap_err().to_string();
        assert!(err.starts_with("queries.sql:2: invalid JSON"), "{err}");
        let args = FingerprintArgs { input: InputFormat::Json, ..Default::default() };
        let err = lines("select 1\n", &args).unwrap_err().to_string();
        assert!(err.starts_with("queries.sql:1: invalid JSON"), "{err}");
        let missing = FingerprintArgs { files: vec!["/nonexistent/queries.sql".into()], ..Default::default() };
        let err = format!("{:#}", run(&missing).unwrap_err());
        assert!(err.contains("cannot read /nonexistent/queries.sql") && err.contains("No such file"), "{err}");
    }
}
