//! The ratings file read as bytes: the one MovieLens file with millions of lines (25M in ML-25M) is split and parsed
//! without a `String` per field; a line this fast path cannot read goes to the general parser, which reads it or
//! says why it is a bad line.
use super::source::{BadLine, LineSource};
use anyhow::{Context, Result};
use std::path::Path;

/// One rating line.
#[derive(Debug, Clone, PartialEq)]
pub struct RatingRecord {
    pub user_id: i32,
    pub movie_id: i32,
    pub rating: f32,
    pub timestamp: i64,
}

/// How the ratings file's lines are laid out.
pub struct RatingLayout<'a> {
    /// Field separator: `::`, a tab or a comma.
    pub separator: &'a [u8],
    /// Whether the first line is a header (CSV releases).
    pub header: bool,
}

/// Hands every rating of the file at `path` to `sink`, in file order. `general` parses one line the slow way: its
/// record, or the message of a bad line (handed to `bad_line`, which skips it or fails the import).
pub fn for_each_rating_line(
    source: LineSource,
    path: &Path,
    layout: RatingLayout<'_>,
    mut bad_line: impl FnMut(BadLine) -> Result<()>,
    mut general: impl FnMut(&str) -> Result<RatingRecord, String>,
    mut sink: impl FnMut(RatingRecord) -> Result<()>,
) -> Result<()> {
    let mut progress = super::progress::FileProgress::start(&source);
    let mut reader = source.into_reader();
    let mut line = Vec::with_capacity(256);
    let mut number = 0u64;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).with_context(|| format!("reading {}", path.display()))? == 0 {
            break;
        }
        number += 1;
        let text = line.trim_ascii();
        if (layout.header && number == 1) || text.is_empty() {
            continue;
        }
        let record = match parse_fast(text, layout.separator) {
            Some(record) => Ok(record),
            None => general(&String::from_utf8_lossy(text)),
        };
        match record {
            Ok(record) => sink(record)?,
            Err(message) => bad_line(BadLine { file: path.to_path_buf(), line: number, message })?,
        }
        progress.tick();
    }
    progress.finish();
    Ok(())
}

/// A plain line `user<sep>movie<sep>rating<sep>timestamp` with a half-star rating in 0.5..=5; `None` for anything
/// else (left to the general parser).
fn parse_fast(text: &[u8], separator: &[u8]) -> Option<RatingRecord> {
    let mut fields = Fields { rest: Some(text), separator };
    let user_id = integer(fields.next()?)?.try_into().ok()?;
    let movie_id = integer(fields.next()?)?.try_into().ok()?;
    let rating: f32 = std::str::from_utf8(fields.next()?).ok()?.trim().parse().ok()?;
    let timestamp = integer(fields.next()?)?;
    if fields.next().is_some() || !(0.5..=5.0).contains(&rating) || (rating * 2.0).fract() != 0.0 {
        return None;
    }
    Some(RatingRecord { user_id, movie_id, rating, timestamp })
}

/// A decimal integer with an optional sign and surrounding spaces.
fn integer(field: &[u8]) -> Option<i64> {
    let field = field.trim_ascii();
    let (negative, digits) = match field.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, field),
    };
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    let mut value = 0i64;
    for digit in digits {
        if !digit.is_ascii_digit() {
            return None;
        }
        value = value * 10 + i64::from(digit - b'0');
    }
    Some(if negative { -value } else { value })
}

/// The fields of a line split at every occurrence of a separator.
struct Fields<'a> {
    rest: Option<&'a [u8]>,
    separator: &'a [u8],
}

impl<'a> Iterator for Fields<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest?;
        match rest.windows(self.separator.len()).position(|window| window == self.separator) {
            Some(at) => {
                self.rest = Some(&rest[at + self.separator.len()..]);
                Some(&rest[..at])
            }
            None => {
                self.rest = None;
                Some(rest)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_parse_fast_and_anything_else_is_left_to_the_general_parser() {
        let parsed = |line: &str, separator: &[u8]| parse_fast(line.as_bytes(), separator).map(|r| (r.user_id, r.movie_id, r.rating, r.timestamp));
        assert_eq!(parsed("1::1193::5::978300760", b"::"), Some((1, 1193, 5.0, 978300760)));
        assert_eq!(parsed("196\t242\t3\t881250949", b"\t"), Some((196, 242, 3.0, 881250949)));
        assert_eq!(parsed(" 7 ,12, 3.5 ,-5", b","), Some((7, 12, 3.5, -5)));
        for bad in ["1,2,3", "1,2,3,4,5", "1,2,3.25,4", "1,2,6,4", "1,2,0,4", "x,2,3,4", "1,2,3,99999999999999999999", "\"1\",2,3,4", "1,,3,4"] {
            assert_eq!(parsed(bad, b","), None, "{bad}");
        }
        assert_eq!(parsed("3000000000,1,3,4", b","), None, "a user id beyond int4");
    }
}
