//! Writing rows in PostgreSQL's COPY text format (tab-separated, `\N` for NULL, backslash escapes) into a
//! `COPY ... FROM STDIN` stream.
use anyhow::Result;
use postgres::Transaction;
use std::io::{BufWriter, Write};

/// A value that can be written as one COPY text field.
pub trait CopyField {
    fn write_field(&self, out: &mut Vec<u8>);
}

impl CopyField for str {
    fn write_field(&self, out: &mut Vec<u8>) {
        for byte in self.bytes() {
            match byte {
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\t' => out.extend_from_slice(b"\\t"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                other => out.push(other),
            }
        }
    }
}

impl CopyField for String {
    fn write_field(&self, out: &mut Vec<u8>) {
        self.as_str().write_field(out)
    }
}

macro_rules! display_field {
    ($($t:ty),*) => {$(
        impl CopyField for $t {
            fn write_field(&self, out: &mut Vec<u8>) {
                let _ = write!(out, "{self}");
            }
        }
    )*};
}
display_field!(i16, i32, i64, f32);

impl<T: CopyField + ?Sized> CopyField for &T {
    fn write_field(&self, out: &mut Vec<u8>) {
        (**self).write_field(out)
    }
}

impl<T: CopyField> CopyField for Option<T> {
    fn write_field(&self, out: &mut Vec<u8>) {
        match self {
            Some(value) => value.write_field(out),
            None => out.extend_from_slice(b"\\N"),
        }
    }
}

/// Unix time written as a UTC `timestamptz` literal ("2000-12-31 23:59:59+00").
pub struct EpochSeconds(pub i64);

impl CopyField for EpochSeconds {
    fn write_field(&self, out: &mut Vec<u8>) {
        let days = self.0.div_euclid(86_400);
        let seconds = self.0.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        let _ = write!(out, "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}+00", seconds / 3600, seconds / 60 % 60, seconds % 60);
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    (year_of_era + era * 400 + i64::from(month <= 2), month, day)
}

/// Streams rows into `COPY table (columns) FROM STDIN`.
pub struct CopyWriter<'a> {
    writer: BufWriter<postgres::CopyInWriter<'a>>,
    row: Vec<u8>,
    pub rows: u64,
}

impl<'a> CopyWriter<'a> {
    pub fn start(transaction: &'a mut Transaction<'_>, table_and_columns: &str) -> Result<Self> {
        let writer = transaction.copy_in(&format!("COPY {table_and_columns} FROM STDIN"))?;
        Ok(Self { writer: BufWriter::with_capacity(1 << 20, writer), row: Vec::with_capacity(256), rows: 0 })
    }

    /// Writes one row from its fields.
    pub fn row(&mut self, fields: &[&dyn CopyField]) -> Result<()> {
        self.row.clear();
        for (index, field) in fields.iter().enumerate() {
            if index > 0 {
                self.row.push(b'\t');
            }
            field.write_field(&mut self.row);
        }
        self.row.push(b'\n');
        self.writer.write_all(&self.row)?;
        self.rows += 1;
        Ok(())
    }

    /// Completes the COPY; returns the number of rows the server stored.
    pub fn finish(self) -> Result<u64> {
        let inner = self.writer.into_inner().map_err(|e| e.into_error())?;
        Ok(inner.finish()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(value: &dyn CopyField) -> String {
        let mut out = Vec::new();
        value.write_field(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escapes_separators_and_writes_null() {
        assert_eq!(field(&"a\tb\\c\nd".to_string()), "a\\tb\\\\c\\nd");
        assert_eq!(field(&None::<i32>), "\\N");
        assert_eq!(field(&Some(4.5f32)), "4.5");
    }

    #[test]
    fn epoch_seconds_are_written_as_utc_timestamps() {
        assert_eq!(field(&EpochSeconds(0)), "1970-01-01 00:00:00+00");
        assert_eq!(field(&EpochSeconds(964_982_703)), "2000-07-30 18:45:03+00");
        assert_eq!(field(&EpochSeconds(951_782_400)), "2000-02-29 00:00:00+00");
        assert_eq!(field(&EpochSeconds(-1)), "1969-12-31 23:59:59+00");
    }
}
