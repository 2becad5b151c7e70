//! Reading input files line by line: plain or gzip (by the `.gz` suffix), UTF-8 or Latin-1, with line numbers
//! for error messages and a byte counter for progress display.
use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// How the bytes of a file are to be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    /// ISO-8859-1: every byte is the code point of the same value (ML-100K, ML-1M, ML-10M).
    Latin1,
}

/// Where a parse error happened and why; `Display` gives `file:line: message`.
#[derive(Debug, thiserror::Error)]
#[error("{}:{line}: {message}", file.display())]
pub struct BadLine {
    pub file: PathBuf,
    pub line: u64,
    pub message: String,
}

/// Counts the bytes read from the underlying file (compressed bytes for .gz), for progress bars.
struct CountingReader<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buffer)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// A text file read line by line.
pub struct LineSource {
    path: PathBuf,
    reader: Box<dyn BufRead + Send>,
    encoding: Encoding,
    line_number: u64,
    raw: Vec<u8>,
    bytes_read: Arc<AtomicU64>,
    size: u64,
}

impl LineSource {
    pub fn open(path: &Path, encoding: Encoding) -> Result<Self> {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let bytes_read = Arc::new(AtomicU64::new(0));
        let counted = CountingReader { inner: file, read: bytes_read.clone() };
        let reader: Box<dyn BufRead + Send> = if path.extension().is_some_and(|ext| ext == "gz") {
            Box::new(BufReader::with_capacity(1 << 20, flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 20, counted))))
        } else {
            Box::new(BufReader::with_capacity(1 << 20, counted))
        };
        Ok(Self { path: path.to_path_buf(), reader, encoding, line_number: 0, raw: Vec::new(), bytes_read, size })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// File size on disk and a live counter of bytes consumed, for progress display.
    pub fn progress_handle(&self) -> (u64, Arc<AtomicU64>) {
        (self.size, self.bytes_read.clone())
    }

    /// The decoded bytes as a reader, for record-based parsers (progress keeps counting through `progress_handle`).
    pub fn into_reader(self) -> Box<dyn BufRead + Send> {
        self.reader
    }

    /// An error located at the current line.
    pub fn bad_line(&self, message: impl Into<String>) -> BadLine {
        BadLine { file: self.path.clone(), line: self.line_number, message: message.into() }
    }

    /// Reads the next line into `line` without its line ending; `Ok(false)` at the end of the file.
    pub fn next_line(&mut self, line: &mut String) -> Result<bool> {
        self.raw.clear();
        let n = self.reader.read_until(b'\n', &mut self.raw).with_context(|| format!("reading {}", self.path.display()))?;
        if n == 0 {
            return Ok(false);
        }
        self.line_number += 1;
        while matches!(self.raw.last(), Some(b'\n' | b'\r')) {
            self.raw.pop();
        }
        line.clear();
        match self.encoding {
            Encoding::Utf8 => match std::str::from_utf8(&self.raw) {
                Ok(text) => line.push_str(text),
                Err(_) => bail!(self.bad_line("not valid UTF-8 (is this a Latin-1 file from an older MovieLens release?)")),
            },
            Encoding::Latin1 => line.extend(self.raw.iter().map(|&byte| byte as char)),
        }
        Ok(true)
    }
}

/// The first existing file among `dir/name`, `dir/name.gz` and the `trainer synth` version of `name`.
pub fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    [dir.join(name), dir.join(format!("{name}.gz")), dir.join(synthetic_name(name))].into_iter().find(|path| path.is_file())
}

/// The name `trainer synth` gives its version of a release file: `.synthetic` before the extension
/// (`ratings.csv` → `ratings.synthetic.csv`), so generated data is never mistaken for, or shipped as, a release's.
pub fn synthetic_name(name: &str) -> String {
    match name.rsplit_once('.') {
        Some((stem, extension)) => format!("{stem}.synthetic.{extension}"),
        None => format!("{name}.synthetic"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_files_are_found_under_their_marked_names() {
        assert_eq!(synthetic_name("ratings.csv"), "ratings.synthetic.csv");
        assert_eq!(synthetic_name("title.basics.tsv"), "title.basics.synthetic.tsv");
        let dir = std::env::temp_dir().join(format!("recsys_find_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("movies.synthetic.csv"), "movieId,title,genres\n").unwrap();
        assert_eq!(find_file(&dir, "movies.csv"), Some(dir.join("movies.synthetic.csv")));
        std::fs::write(dir.join("movies.csv"), "movieId,title,genres\n").unwrap();
        assert_eq!(find_file(&dir, "movies.csv"), Some(dir.join("movies.csv")), "a release's own file comes first");
        assert_eq!(find_file(&dir, "ratings.csv"), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
