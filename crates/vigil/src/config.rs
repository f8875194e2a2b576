//! vigil's configuration: one typed structure with documented defaults, read
//! from a TOML file (`--config` or `VIGIL_CONFIG`); `VIGIL_*` environment
//! variables override the file and flags override both.
//!
//! ```toml
//! [kafka]
//! brokers = "kafka-1:9092,kafka-2:9092"   # no default
//! group = "wards"                         # default: vigil-<pipeline file stem>
//! checkpoints = true                      # state checkpoints in the progress log
//! exactly_once = false                    # one transaction per commit
//! transactional_id = "wards-1"            # default: <group>.<pid>.<time>
//! [kafka.properties]                      # librdkafka properties, unchanged
//! "security.protocol" = "SASL_SSL"
//!
//! [run]
//! batch_size = 8192                       # messages or lines per Arrow batch
//!
//! [http]
//! listen = "127.0.0.1:9464"               # /metrics, /healthz, /readyz; "off"
//!
//! [log]
//! filter = "warn,vigil_kafka=info,vigil_engine=info"   # env-filter directives
//! format = "text"                         # or "json"
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

/// Everything the file may set. Unknown keys are errors, so that a misspelt
/// setting is not silently ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Kafka connection.
    pub kafka: KafkaSection,
    /// How pipelines run.
    pub run: RunSection,
    /// The HTTP endpoints.
    pub http: HttpSection,
    /// Logs.
    pub log: LogSection,
}

/// `[kafka]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaSection {
    /// Bootstrap servers (`VIGIL_BROKERS`, `--brokers`); no default.
    pub brokers: Option<String>,
    /// Consumer group (`VIGIL_GROUP`, `--group`); default `vigil-<file stem>`.
    pub group: Option<String>,
    /// librdkafka properties for every client; `--kafka KEY=VALUE` flags are
    /// applied after them.
    pub properties: BTreeMap<String, String>,
    /// Whether each commit writes the jobs' state to the progress log, so that
    /// a new owner of a partition restores it instead of replaying its input
    /// (`--no-checkpoints` turns it off); default true.
    pub checkpoints: Option<bool>,
    /// Whether each commit is one Kafka transaction of outputs, state and
    /// offsets (`--exactly-once`); default false.
    pub exactly_once: Option<bool>,
    /// The producer's `transactional.id` in exactly-once mode
    /// (`VIGIL_TRANSACTIONAL_ID`, `--transactional-id`); default unique per run.
    pub transactional_id: Option<String>,
}

/// `[run]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunSection {
    /// Lines or messages per Arrow batch (`--batch-size`); default 8192.
    pub batch_size: u32,
}

impl Default for RunSection {
    fn default() -> RunSection {
        RunSection { batch_size: 8192 }
    }
}

/// `[http]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSection {
    /// Address of `/metrics`, `/healthz` and `/readyz` (`VIGIL_HTTP`, `--http`);
    /// default `127.0.0.1:9464`; `off` for none.
    pub listen: String,
}

impl Default for HttpSection {
    fn default() -> HttpSection {
        HttpSection {
            listen: "127.0.0.1:9464".to_owned(),
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSection {
    /// env-filter directives (`VIGIL_LOG`); default
    /// `warn,vigil_kafka=info,vigil_engine=info`.
    pub filter: String,
    /// `text` or `json` (`VIGIL_LOG_FORMAT`); default `text`.
    pub format: LogFormat,
}

impl Default for LogSection {
    fn default() -> LogSection {
        LogSection {
            filter: "warn,vigil_kafka=info,vigil_engine=info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl Config {
    /// The configuration in `path`, or the defaults without one; an unreadable
    /// or invalid file is an error naming the file and what is wrong.
    pub fn load(path: Option<&Path>) -> Result<Config, String> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read the configuration: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn an_empty_file_is_the_defaults() {
        assert_eq!(parse(""), Ok(Config::default()));
        let config = Config::default();
        assert_eq!(config.http.listen, "127.0.0.1:9464");
        assert_eq!(config.run.batch_size, 8192);
        assert_eq!(config.log.format, LogFormat::Text);
        assert!(config.kafka.brokers.is_none());
    }

    #[test]
    fn every_section_reads() {
        let config = parse(
            r#"
            [kafka]
            brokers = "k1:9092"
            group = "wards"
            checkpoints = false
            exactly_once = true
            transactional_id = "wards-1"
            [kafka.properties]
            "security.protocol" = "SASL_SSL"
            [run]
            batch_size = 1024
            [http]
            listen = "off"
            [log]
            filter = "debug"
            format = "json"
            "#,
        )
        .expect("valid");
        assert_eq!(config.kafka.brokers.as_deref(), Some("k1:9092"));
        assert_eq!(config.kafka.group.as_deref(), Some("wards"));
        assert_eq!(config.kafka.checkpoints, Some(false));
        assert_eq!(config.kafka.exactly_once, Some(true));
        assert_eq!(config.kafka.transactional_id.as_deref(), Some("wards-1"));
        assert_eq!(
            config
                .kafka
                .properties
                .get("security.protocol")
                .map(String::as_str),
            Some("SASL_SSL")
        );
        assert_eq!(config.run.batch_size, 1024);
        assert_eq!(config.http.listen, "off");
        assert_eq!(config.log.filter, "debug");
        assert_eq!(config.log.format, LogFormat::Json);
    }

    #[test]
    fn misspelt_keys_and_wrong_types_are_errors_with_their_place() {
        let e = parse("[kafka]\nbroker = \"k1\"\n").expect_err("unknown key");
        assert!(e.contains("unknown field `broker`"), "{e}");
        assert!(e.contains("line 2"), "{e}");
        let e = parse("[run]\nbatch_size = \"big\"\n").expect_err("wrong type");
        assert!(e.contains("batch_size") || e.contains("line 2"), "{e}");
        let e = parse("[log]\nformat = \"xml\"\n").expect_err("unknown format");
        assert!(e.contains("unknown variant `xml`"), "{e}");
    }
}
