//! Progress display for long imports: bytes read, rows/s and ETA on a terminal; one summary line per file otherwise.
use super::source::LineSource;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

pub struct FileProgress {
    bar: ProgressBar,
    bytes_read: Arc<AtomicU64>,
    rows: u64,
    started: Instant,
    name: String,
}

impl FileProgress {
    pub fn start(source: &LineSource) -> Self {
        let (size, bytes_read) = source.progress_handle();
        let name = source.path().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let bar = ProgressBar::with_draw_target(
            Some(size),
            if std::io::stderr().is_terminal() { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() },
        );
        bar.set_style(
            ProgressStyle::with_template("{prefix:>22} [{bar:30}] {bytes}/{total_bytes} {msg} ETA {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(name.clone());
        Self { bar, bytes_read, rows: 0, started: Instant::now(), name }
    }

    /// Counts one row; redraws every 65,536 rows.
    pub fn tick(&mut self) {
        self.rows += 1;
        if self.rows.is_multiple_of(65_536) {
            self.bar.set_position(self.bytes_read.load(Ordering::Relaxed));
            self.bar.set_message(format!("{} rows, {:.0} rows/s", self.rows, self.rate()));
        }
    }

    fn rate(&self) -> f64 {
        self.rows as f64 / self.started.elapsed().as_secs_f64().max(1e-9)
    }

    pub fn finish(self) {
        self.bar.finish_and_clear();
        eprintln!("  read {:<22} {:>10} rows in {:>6.2} s ({:.0} rows/s)", self.name, self.rows, self.started.elapsed().as_secs_f64(), self.rate());
    }
}
