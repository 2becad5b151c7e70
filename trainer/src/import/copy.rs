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
}
