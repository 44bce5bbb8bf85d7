//! The log sink for advice: a readable multi-line block, or one JSON line.

use advisor::advice::Advice;
use advisor::engine::AdviceSink;
use tracing::warn;

use crate::config::LogFormat;

/// Logs each advice's first occurrence in `format`.
pub fn sink(format: LogFormat) -> AdviceSink {
    match format {
        LogFormat::Human => Box::new(|advice: &Advice| warn!("advice\n{}", advice.to_block())),
        LogFormat::Json => Box::new(|advice: &Advice| {
            let json = serde_json::to_string(advice).unwrap_or_default();
            warn!(target: "pgvisor::advice", kind = advice.kind.as_str(), id = %advice.id, advice = %json, "{}", advice.title);
        }),
    }
}
