//! Streaming rows into `COPY … FROM STDIN (FORMAT binary)` through the `postgres` crate's binary writer: every value
//! travels in its binary representation (no text escaping, array literals or timestamp formatting of our own).
use anyhow::Result;
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};
use postgres::Transaction;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Streams rows into `COPY table (columns) FROM STDIN` in the binary format.
pub struct CopyWriter<'a> {
    writer: BinaryCopyInWriter<'a>,
}

impl<'a> CopyWriter<'a> {
    /// Starts the COPY; `types` are the listed columns' types, in order.
    pub fn start(transaction: &'a mut Transaction<'_>, table_and_columns: &str, types: &[Type]) -> Result<Self> {
        let sink = transaction.copy_in(&format!("COPY {table_and_columns} FROM STDIN (FORMAT binary)"))?;
        Ok(Self { writer: BinaryCopyInWriter::new(sink, types) })
    }

    /// Writes one row from its values (one per column, `None` for NULL).
    pub fn row(&mut self, values: &[&(dyn ToSql + Sync)]) -> Result<()> {
        Ok(self.writer.write(values)?)
    }

    /// Completes the COPY; returns the number of rows the server stored.
    pub fn finish(self) -> Result<u64> {
        Ok(self.writer.finish()?)
    }
}

/// Unix seconds as the instant a `timestamptz` column stores.
pub fn epoch_seconds(seconds: i64) -> SystemTime {
    match u64::try_from(seconds) {
        Ok(after) => UNIX_EPOCH + Duration::from_secs(after),
        Err(_) => UNIX_EPOCH - Duration::from_secs(seconds.unsigned_abs()),
    }
}
