//! Which advice events reach the terminal: each finding in full once, then a short line when it
//! gets worse (severity), happens again (count), or, for a finding that only goes on (an idle
//! transaction whose age grows), at growing intervals. A finding pgvisor found anew (after a
//! restart or a reset) is printed in full again.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use super::render::{block, one_line_json, severity_color, AdviceView, Style};

/// Most findings remembered to tell a new finding from an update.
const MAX_REMEMBERED: usize = 10_000;

/// Least time between the previous line about a finding and an `updated:` line that only says it
/// goes on: 10 s, then 30 s, then 1 min, then 5 min each time. The ladder starts over after a
/// line that said something new (the full block, an escalation, a higher count).
const QUIET_GAPS: [Duration; 4] =
    [Duration::from_secs(10), Duration::from_secs(30), Duration::from_secs(60), Duration::from_secs(300)];

/// How a finding stood at the last line printed about it.
#[derive(Debug, Clone)]
struct Shown {
    /// pgvisor's `first_seen`: a different one means pgvisor forgot the finding (restart, reset,
    /// eviction) and found it again.
    first_seen: String,
    /// The last event received, printed or not: a replay of it (a reconnect) prints nothing.
    digest: u64,
    severity: u8,
    count: u64,
    at: Instant,
    /// `updated:` lines printed for time alone since the last line that said something new.
    quiet_lines: usize,
}

/// What to print for one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// The full block: a finding not printed before, or found anew.
    Block,
    /// `now <severity>:` the severity rose.
    Escalated,
    /// `updated:` the count grew.
    Grew,
    /// `updated:` it goes on, and the quiet interval has passed.
    Refreshed,
    /// Nothing: a replay, or an update within the quiet interval.
    Skip,
}

/// Prints each finding once in full, and changes of it as one short line (see [`QUIET_GAPS`]).
#[derive(Debug)]
pub struct Printer {
    style: Style,
    json: bool,
    shown: HashMap<String, Shown>,
}

impl Printer {
    /// A printer writing blocks in `style`, or JSON lines when `json` (every change, unthrottled:
    /// a program reading them decides for itself).
    pub fn new(style: Style, json: bool) -> Self {
        Self { style, json, shown: HashMap::new() }
    }

    /// Writes `advice` (whose JSON text is `raw`, if it came as text), or nothing when it repeats
    /// what was printed or is an update within the quiet interval. Returns whether anything was
    /// written.
    pub fn print(&mut self, advice: &AdviceView, raw: Option<&str>, out: &mut dyn Write) -> std::io::Result<bool> {
        self.print_at(advice, raw, out, Instant::now())
    }

    fn print_at(
        &mut self,
        advice: &AdviceView,
        raw: Option<&str>,
        out: &mut dyn Write,
        now: Instant,
    ) -> std::io::Result<bool> {
        let digest = advice.digest();
        let severity = severity_rank(&advice.severity);
        let previous = self.shown.get(&advice.id);
        let line = match previous {
            None => Line::Block,
            Some(p) if p.first_seen != advice.first_seen => Line::Block,
            Some(p) if p.digest == digest => Line::Skip,
            Some(_) if self.json => Line::Grew,
            Some(p) if severity > p.severity => Line::Escalated,
            Some(p) if advice.count > p.count => Line::Grew,
            Some(p) if now.duration_since(p.at) >= QUIET_GAPS[p.quiet_lines.min(QUIET_GAPS.len() - 1)] => {
                Line::Refreshed
            }
            Some(_) => Line::Skip,
        };
        if line == Line::Skip {
            if let Some(p) = self.shown.get_mut(&advice.id) {
                p.digest = digest;
            }
            return Ok(false);
        }
        let text = match line {
            _ if self.json => format!("{}\n", one_line_json(advice, raw)),
            Line::Block => block(advice, self.style),
            Line::Escalated => self.short_line(advice, &format!("now {}:", advice.severity)),
            _ => self.short_line(advice, "updated:"),
        };
        let quiet_lines = match (line, previous) {
            (Line::Refreshed, Some(p)) => p.quiet_lines + 1,
            _ => 0,
        };
        if self.shown.len() >= MAX_REMEMBERED && !self.shown.contains_key(&advice.id) {
            self.shown.clear();
        }
        let shown = Shown {
            first_seen: advice.first_seen.clone(),
            digest,
            severity,
            count: advice.count,
            at: now,
            quiet_lines,
        };
        self.shown.insert(advice.id.clone(), shown);
        out.write_all(text.as_bytes())?;
        out.flush()?;
        Ok(true)
    }

    fn short_line(&self, advice: &AdviceView, label: &str) -> String {
        let label = self.style.paint(severity_color(&advice.severity), label);
        format!("{label} {} (seen {}x)\n", advice.title, advice.count)
    }
}

/// Severities in rising order; unknown ones (a newer pgvisor) rank lowest.
fn severity_rank(severity: &str) -> u8 {
    match severity {
        "critical" => 3,
        "warning" => 2,
        "info" => 1,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn advice() -> AdviceView {
        serde_json::from_value(serde_json::json!({
            "id": "00000000000000aa", "kind": "long_transaction", "severity": "warning",
            "title": "Transaction open for 2.0 s", "message": "m", "suggestion": "s",
            "evidence": {"statements": ["BEGIN", "SELECT 1"]}, "count": 1,
            "first_seen": "2025-01-02T03:04:05.678Z", "last_seen": "2025-01-02T03:04:05.678Z"
        }))
        .unwrap()
    }

    /// Feeds an update every 3 s (pgvisor's stream throttle) for `secs` seconds from `start`, the
    /// title changing as a transaction's age does; returns the lines printed.
    fn goes_on(printer: &mut Printer, a: &mut AdviceView, start: Instant, from: u64, secs: u64) -> Vec<String> {
        let mut out = Vec::new();
        for t in (from..from + secs).step_by(3) {
            a.title = format!("Transaction open for {t}.0 s");
            printer.print_at(a, None, &mut out, start + Duration::from_secs(t)).unwrap();
        }
        String::from_utf8(out).unwrap().lines().map(str::to_string).collect()
    }

    #[test]
    fn first_in_full_then_updates_then_repeats_skipped() {
        let mut printer = Printer::new(Style::PLAIN, false);
        let mut out = Vec::new();
        let mut a = advice();
        assert!(printer.print(&a, None, &mut out).unwrap());
        assert!(String::from_utf8_lossy(&out).starts_with("WARNING  Transaction open for 2.0 s\n"));
        assert!(!printer.print(&a, None, &mut out).unwrap(), "a replay after reconnect is not printed again");
        a.count = 3;
        a.last_seen = "2025-01-02T03:04:09.000Z".into();
        out.clear();
        assert!(printer.print(&a, None, &mut out).unwrap(), "a higher count is printed at once");
        assert_eq!(String::from_utf8(out).unwrap(), "updated: Transaction open for 2.0 s (seen 3x)\n");
    }

    #[test]
    fn a_finding_that_goes_on_is_updated_at_growing_intervals() {
        let mut printer = Printer::new(Style::PLAIN, false);
        let start = Instant::now();
        let mut a = advice();
        printer.print_at(&a, None, &mut Vec::new(), start).unwrap();
        // 40 s of updates every 3 s used to be 13 lines.
        let lines = goes_on(&mut printer, &mut a, start, 3, 37);
        assert_eq!(lines, ["updated: Transaction open for 12.0 s (seen 1x)"]);
        // Then 30 s after that line, 60 s after the next, and every 5 min from then on.
        let lines = goes_on(&mut printer, &mut a, start, 42, 1200);
        let at: Vec<&str> = lines.iter().map(|l| l.split(' ').nth(4).unwrap()).collect();
        assert_eq!(at, ["42.0", "102.0", "402.0", "702.0", "1002.0"], "{lines:?}");
    }

    #[test]
    fn an_escalation_is_its_own_line_and_restarts_the_ladder() {
        let mut printer = Printer::new(Style::PLAIN, false);
        let start = Instant::now();
        let mut a = advice();
        printer.print_at(&a, None, &mut Vec::new(), start).unwrap();
        goes_on(&mut printer, &mut a, start, 3, 57);
        a.severity = "critical".into();
        let lines = goes_on(&mut printer, &mut a, start, 60, 13);
        assert_eq!(
            lines,
            ["now critical: Transaction open for 60.0 s (seen 1x)", "updated: Transaction open for 72.0 s (seen 1x)"]
        );
        let mut coloured = Printer::new(Style { color: true, width: None }, false);
        coloured.print_at(&advice(), None, &mut Vec::new(), start).unwrap();
        let mut out = Vec::new();
        coloured.print_at(&a, None, &mut out, start).unwrap();
        assert!(String::from_utf8(out).unwrap().starts_with("\x1b[1;31mnow critical:\x1b[0m Transaction"));
    }

    #[test]
    fn a_finding_found_anew_is_printed_in_full() {
        let mut printer = Printer::new(Style::PLAIN, false);
        let mut a = advice();
        printer.print(&a, None, &mut Vec::new()).unwrap();
        // pgvisor restarted (or was reset) and found the same thing again: same id, new first_seen.
        a.first_seen = "2025-01-02T04:00:00.000Z".into();
        a.last_seen = a.first_seen.clone();
        let mut out = Vec::new();
        assert!(printer.print(&a, None, &mut out).unwrap());
        assert!(String::from_utf8(out).unwrap().starts_with("WARNING  Transaction open for 2.0 s\n"));
    }

    #[test]
    fn json_lines_are_the_raw_advice_and_every_change() {
        let mut printer = Printer::new(Style::PLAIN, true);
        let mut out = Vec::new();
        let raw = r#"{"id":"00000000000000aa","kind":"n_plus_one","count":1,"last_seen":"x"}"#;
        let a: AdviceView = serde_json::from_str(raw).unwrap();
        printer.print(&a, Some(raw), &mut out).unwrap();
        assert!(!printer.print(&a, Some(raw), &mut out).unwrap());
        let raw2 = r#"{"id":"00000000000000aa","kind":"n_plus_one","count":1,"last_seen":"y"}"#;
        let b: AdviceView = serde_json::from_str(raw2).unwrap();
        printer.print(&b, Some(raw2), &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), format!("{raw}\n{raw2}\n"));
    }
}
