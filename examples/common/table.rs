//! The producer demos' once-a-second status table.

use super::{mib, outln};

/// Right-aligned columns, two spaces apart: the time; messages and MiB sent
/// per second; messages and MiB in flight against their limits; senders
/// queued; three counts of timeouts (by messages, by bytes, and a third the
/// demo names); and any columns a demo adds.
pub(crate) struct Table {
    widths: Vec<usize>,
    names: Vec<&'static str>,
}

impl Table {
    /// `third_timeouts` names the last timeout column; `extra` adds columns
    /// (name and width) after it.
    pub(crate) fn new(
        max_messages: u64,
        max_bytes: u64,
        third_timeouts: &'static str,
        extra: &[(&'static str, usize)],
    ) -> Self {
        let msgs = format!("{0} / {0}", max_messages).len().max(8);
        let bytes = format!("{0:.1} / {0:.1}", mib(max_bytes)).len().max(9);
        let mut widths = vec![5, 6, 6, msgs, bytes, 6, 5, 5, 6];
        let mut names = vec![
            "time",
            "sent",
            "MiB",
            "messages",
            "MiB",
            "queued",
            "msgs",
            "bytes",
            third_timeouts,
        ];
        for &(name, width) in extra {
            names.push(name);
            widths.push(width);
        }
        Table { widths, names }
    }

    /// One row: each cell right-aligned in its column.
    pub(crate) fn line(&self, cells: &[String]) -> String {
        let mut line = String::new();
        for (cell, width) in cells.iter().zip(&self.widths) {
            line.push_str(&format!("{cell:>width$}  "));
        }
        line.trim_end().to_string()
    }

    /// A label centred over columns `from..to`.
    fn group(&self, line: &mut String, from: usize, to: usize, label: &str) {
        let start: usize = self.widths[..from].iter().map(|w| w + 2).sum();
        let span: usize = self.widths[from..to].iter().map(|w| w + 2).sum::<usize>() - 2;
        let pad = start.saturating_sub(line.len());
        line.push_str(&format!("{:pad$}{label:^span$}", ""));
    }

    /// The two header lines: the column groups, then the column names.
    pub(crate) fn print_header(&self) {
        let mut groups = String::new();
        self.group(&mut groups, 1, 3, "per second");
        self.group(&mut groups, 3, 5, "in flight / limit");
        self.group(&mut groups, 6, 9, "timed out so far");
        outln!("{}", groups.trim_end());
        let names: Vec<String> = self.names.iter().map(|s| s.to_string()).collect();
        outln!("{}", self.line(&names));
    }
}
