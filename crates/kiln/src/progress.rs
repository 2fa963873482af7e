//! Progress display: one spinner line per running target on a terminal, nothing when stderr is
//! not a terminal (CI logs get the summary table instead), finished lines with `--verbose`.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use kiln_build::{Reporter, TargetResult};
use kiln_plan::Target;

use crate::table::human_ms;
use crate::Ui;

/// Draws build progress on stderr.
pub struct Progress {
    multi: MultiProgress,
    overall: ProgressBar,
    running: Mutex<HashMap<String, ProgressBar>>,
    ui: Ui,
    live: bool,
}

impl Progress {
    /// A display for these output settings.
    pub fn new(ui: Ui) -> Self {
        let live = !ui.quiet && std::io::stderr().is_terminal();
        let target = if live {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let multi = MultiProgress::with_draw_target(target);
        let overall = multi.add(ProgressBar::new(0));
        overall.set_style(
            ProgressStyle::with_template(
                "{prefix:.bold} [{bar:30.cyan/blue}] {pos}/{len} targets {elapsed} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        overall.set_prefix("kiln build");
        Self {
            multi,
            overall,
            running: Mutex::new(HashMap::new()),
            ui,
            live,
        }
    }

    /// Removes every bar before the summary is printed.
    pub fn finish(&self) {
        self.overall.finish_and_clear();
        let _ = self.multi.clear();
    }

    /// Sets the text after the overall bar (what happens to finished targets, e.g. `kiln image`'s
    /// packing and uploads).
    pub fn status(&self, text: String) {
        self.overall.set_message(text);
    }

    /// Prints one line above the bars (or plainly when there are none).
    pub fn line(&self, text: String) {
        if self.live {
            let _ = self.multi.println(text);
        } else {
            eprintln!("{text}");
        }
    }
}

impl Reporter for Progress {
    fn planned(&self, targets: &[Target]) {
        self.overall.set_length(targets.len() as u64);
    }

    fn started(&self, label: &str) {
        if !self.live {
            if self.ui.verbose {
                eprintln!("building {label}");
            }
            return;
        }
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("  {spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(label.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        if let Ok(mut r) = self.running.lock() {
            r.insert(label.to_string(), bar);
        }
    }

    fn command(&self, line: &str) {
        if self.ui.verbose {
            self.line(format!("  $ {line}"));
        }
    }

    fn finished(&self, result: &TargetResult) {
        self.overall.inc(1);
        let label = result.label();
        if let Some(bar) = self.running.lock().ok().and_then(|mut r| r.remove(&label)) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        if self.ui.verbose {
            let how = match (&result.error, result.cached) {
                (Some(_), _) => console::style("failed").red().to_string(),
                (None, true) => "cached".to_string(),
                (None, false) => format!("built in {}", human_ms(result.duration_ms)),
            };
            self.line(format!("  {label}: {how}"));
        }
    }

    fn warn(&self, message: &str) {
        if !self.ui.quiet {
            self.line(format!(
                "{} {message}",
                console::style("warning:").yellow().bold()
            ));
        }
    }
}
