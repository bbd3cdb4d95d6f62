//! Talking to ClickHouse: the health check (version, then database and table, idempotently),
//! the insert of one batch, and the retry classification of its failures.
//!
//! Only answers that mean the data itself is unreadable are not retried: the pipeline splits the
//! batch until the refused rows are alone and drops only those (so taking a transient answer
//! for a rejection costs extra writes, not rows). Everything else (connection refused,
//! timeouts, overload, a missing table, authentication) is transient: the batch waits in the
//! spool and is tried again. A missing table or database also makes the next attempt create
//! them again.

use std::sync::Mutex;

use async_trait::async_trait;
use clickhouse::error::Error;

use super::ddl::{self, Dialect, TABLE};
use crate::sink::{Batch, Sink, SinkError};

/// Exception codes meaning "this data cannot be read", where retrying cannot help.
const REJECTED_CODES: &[u32] = &[
    6,   // CANNOT_PARSE_TEXT
    26,  // CANNOT_PARSE_QUOTED_STRING
    27,  // CANNOT_PARSE_INPUT_ASSERTION_FAILED
    32,  // ATTEMPT_TO_READ_AFTER_EOF
    33,  // CANNOT_READ_ALL_DATA (a row cut short)
    38,  // CANNOT_PARSE_DATE
    41,  // CANNOT_PARSE_DATETIME
    53,  // TYPE_MISMATCH
    69,  // ARGUMENT_OUT_OF_BOUND
    70,  // CANNOT_CONVERT_TYPE
    72,  // CANNOT_PARSE_NUMBER
    117, // INCORRECT_DATA
];
/// Exception codes meaning the table or database is gone: recreate them before retrying.
const SCHEMA_MISSING_CODES: &[u32] = &[60, 81];

/// The ClickHouse sink.
pub struct ClickHouseSink {
    client: clickhouse::Client,
    database: String,
    ttl_days: Option<u32>,
    /// The server's dialect, once its database and table are known to exist.
    ready: Mutex<Option<Dialect>>,
}

impl ClickHouseSink {
    pub(super) fn new(client: clickhouse::Client, database: String, ttl_days: Option<u32>) -> Self {
        Self {
            client,
            database,
            ttl_days,
            ready: Mutex::new(None),
        }
    }

    fn ready(&self) -> std::sync::MutexGuard<'_, Option<Dialect>> {
        self.ready.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates the database and table when missing (once per process, and again after a write
    /// found them gone); returns the server's dialect.
    pub async fn ensure_schema(&self) -> Result<Dialect, SinkError> {
        if let Some(dialect) = *self.ready() {
            return Ok(dialect);
        }
        let version: String = self
            .client
            .query("SELECT version()")
            .fetch_one()
            .await
            .map_err(classify)?;
        let dialect = Dialect::of_version(&version);
        let mut create_db = self
            .client
            .query(&ddl::create_database(dialect, &self.database));
        if dialect == Dialect::Modern {
            create_db = create_db.param("db", self.database.as_str());
        }
        create_db.execute().await.map_err(classify)?;
        self.client
            .clone()
            .with_database(&self.database)
            .query(&ddl::create_table(dialect, self.ttl_days))
            .execute()
            .await
            .map_err(classify)?;
        tracing::info!(
            version = version.trim(),
            dialect = ?dialect,
            database = %self.database,
            "ClickHouse table {TABLE} ready"
        );
        *self.ready() = Some(dialect);
        Ok(dialect)
    }

    async fn insert(&self, dialect: Dialect, batch: &Batch) -> Result<(), Error> {
        let mut insert = self
            .client
            .clone()
            .with_database(&self.database)
            .insert_formatted_with(format!("INSERT INTO {TABLE} FORMAT JSONEachRow"));
        for (name, value) in ddl::insert_settings(dialect, batch.dedup_token()) {
            insert = insert.with_option(name, value);
        }
        insert.send(batch.data.clone()).await?;
        insert.end().await
    }
}

#[async_trait]
impl Sink for ClickHouseSink {
    fn name(&self) -> &'static str {
        "clickhouse"
    }

    async fn healthcheck(&self) -> Result<(), SinkError> {
        self.ensure_schema().await.map(|_| ())
    }

    async fn write(&self, batch: &Batch) -> Result<(), SinkError> {
        let dialect = self.ensure_schema().await?;
        self.insert(dialect, batch).await.map_err(|e| {
            if exception_code(&e).is_some_and(|c| SCHEMA_MISSING_CODES.contains(&c)) {
                *self.ready() = None;
            }
            classify(e)
        })
    }
}

/// The server's exception code in an error answer (`Code: 60. DB::Exception …`, or
/// `Code: 60, e.displayText() = …` from old servers).
fn exception_code(error: &Error) -> Option<u32> {
    let Error::BadResponse(text) = error else {
        return None;
    };
    let rest = &text[text.find("Code: ")? + "Code: ".len()..];
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..digits].parse().ok()
}

/// Retry or set aside.
fn classify(error: Error) -> SinkError {
    let message = format!("ClickHouse: {error}");
    match exception_code(&error) {
        Some(code) if REJECTED_CODES.contains(&code) => SinkError::rejected(message),
        _ => SinkError::transient(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::ErrorKind;

    fn bad(text: &str) -> Error {
        Error::BadResponse(text.to_owned())
    }

    #[test]
    fn exception_codes_are_read_from_old_and_new_servers() {
        assert_eq!(
            exception_code(&bad(
                "Code: 60. DB::Exception: Table x doesn't exist. (UNKNOWN_TABLE)"
            )),
            Some(60)
        );
        assert_eq!(
            exception_code(&bad(
                "Code: 27, e.displayText() = DB::Exception: Cannot parse input"
            )),
            Some(27)
        );
        assert_eq!(exception_code(&bad("502 Bad Gateway")), None);
        assert_eq!(exception_code(&Error::TimedOut), None);
    }

    #[test]
    fn only_unreadable_data_is_not_retried() {
        let kind = |e| classify(e).kind;
        let answers = [
            (
                "Code: 27, e.displayText() = Cannot parse input",
                ErrorKind::Rejected,
            ),
            (
                "Code: 53. DB::Exception: Type mismatch",
                ErrorKind::Rejected,
            ),
            (
                "Code: 33, e.displayText() = DB::Exception: Unexpected end of stream",
                ErrorKind::Rejected,
            ),
            (
                "Code: 60. DB::Exception: Table doesn't exist",
                ErrorKind::Transient,
            ),
            (
                "Code: 516. DB::Exception: Authentication failed",
                ErrorKind::Transient,
            ),
            (
                "Code: 252. DB::Exception: Too many parts",
                ErrorKind::Transient,
            ),
        ];
        for (answer, expected) in answers {
            assert_eq!(kind(bad(answer)), expected, "{answer}");
        }
        assert_eq!(kind(Error::TimedOut), ErrorKind::Transient);
        assert_eq!(
            kind(Error::Network("connection refused".into())),
            ErrorKind::Transient
        );
    }
}
