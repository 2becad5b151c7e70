//! The phases of a training run: a spinner with the elapsed time on a terminal while a phase without a progress
//! bar of its own runs, one line with its duration when it ends, and every phase's time for the final summary
//! and the registry.
use anyhow::Result;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// Durations of the phases run so far, in order.
#[derive(Default)]
pub struct Phases {
    done: Vec<(String, f64)>,
}

fn terminal_target() -> ProgressDrawTarget {
    if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}

/// A spinner with `name` and the elapsed time on a terminal (hidden otherwise); finish it with `finish_and_clear`.
pub fn spinner(name: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, terminal_target());
    bar.set_style(ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("valid template"));
    bar.set_message(name.to_string());
    if !bar.is_hidden() {
        bar.enable_steady_tick(Duration::from_millis(200));
    }
    bar
}

/// A bar over `len` items of `unit` on a terminal (hidden otherwise).
pub fn bar(name: &str, len: u64, unit: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), terminal_target());
    let template = format!("{{msg}} [{{bar:30}}] {{pos}}/{{len}} {unit} {{per_sec}} ETA {{eta}}");
    bar.set_style(ProgressStyle::with_template(&template).expect("valid template").progress_chars("=> "));
    bar.set_message(name.to_string());
    bar
}

impl Phases {
    /// Runs `work` as phase `name` with a spinner, then prints and records its duration.
    pub fn run<T>(&mut self, name: &str, work: impl FnOnce() -> Result<T>) -> Result<T> {
        let bar = spinner(name);
        let result = self.timed(name, work);
        bar.finish_and_clear();
        result
    }

    /// Runs `work` as phase `name` that shows its own progress (per-epoch bars), then prints and records its duration.
    pub fn run_with_own_progress<T>(&mut self, name: &str, work: impl FnOnce() -> Result<T>) -> Result<T> {
        self.timed(name, work)
    }

    fn timed<T>(&mut self, name: &str, work: impl FnOnce() -> Result<T>) -> Result<T> {
        let started = Instant::now();
        let result = work();
        let seconds = started.elapsed().as_secs_f64();
        if result.is_ok() {
            eprintln!("[{name}: {seconds:.1} s]");
        }
        self.done.push((name.to_string(), seconds));
        result
    }

    /// One line: every phase with its seconds.
    pub fn summary(&self) -> String {
        self.done.iter().map(|(name, seconds)| format!("{name} {seconds:.1} s")).collect::<Vec<_>>().join(", ")
    }

    /// `{"phase": seconds, …}` for the registry.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.done.iter().map(|(name, seconds)| (name.clone(), serde_json::json!((seconds * 1000.0).round() / 1000.0))).collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_are_timed_in_order_and_failures_recorded() {
        let mut phases = Phases::default();
        assert_eq!(phases.run("first", || Ok(1)).unwrap(), 1);
        phases
            .run_with_own_progress("second", || {
                std::thread::sleep(Duration::from_millis(20));
                Ok(())
            })
            .unwrap();
        assert!(phases.run("third", || -> Result<()> { anyhow::bail!("broken") }).is_err());
        let json = phases.to_json();
        let names: Vec<&String> = json.as_object().unwrap().keys().collect();
        assert_eq!(names.len(), 3);
        assert!(json["second"].as_f64().unwrap() >= 0.02);
        assert!(phases.summary().starts_with("first 0.0 s, second 0.0"));
    }
}
