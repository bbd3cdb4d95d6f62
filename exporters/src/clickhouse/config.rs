//! What the ClickHouse sink needs from `[clickhouse]`, and building the sink from it.

use std::fmt;

use super::service::ClickHouseSink;

/// `[clickhouse]`, as the sink reads it.
#[derive(Clone, PartialEq, Eq)]
pub struct ClickHouseConfig {
    /// HTTP interface URL, such as `http://127.0.0.1:8123`.
    pub url: String,
    /// Database of the `requests` table (created when missing).
    pub database: String,
    /// User, when not the server default.
    pub user: Option<String>,
    /// Password; never printed.
    pub password: Option<String>,
    /// Rows older than this many days expire (modern servers only); `None` keeps them.
    pub ttl_days: Option<u32>,
}

impl fmt::Debug for ClickHouseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClickHouseConfig")
            .field("url", &self.url)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("ttl_days", &self.ttl_days)
            .finish()
    }
}

impl ClickHouseConfig {
    /// The sink; no I/O until its health check or first write.
    pub fn build(&self) -> ClickHouseSink {
        let mut client = clickhouse::Client::default()
            .with_url(&self.url)
            .with_validation(false);
        if let Some(user) = &self.user {
            client = client.with_user(user);
        }
        if let Some(password) = &self.password {
            client = client.with_password(password);
        }
        ClickHouseSink::new(client, self.database.clone(), self.ttl_days)
    }
}
