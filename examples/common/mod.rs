//! What the examples share: the simulated load (message sizes and broker
//! behaviour), a tiny seeded random number generator, option parsing (an
//! `error: ...` line, a hint and exit status 2 for a bad option), the CSV
//! file a run writes at its end (`error: ...` and exit status 1 if it
//! cannot), number formatting and the producers' status table. Each example
//! uses part of it.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub(crate) mod table;

pub(crate) const KIB: u64 = 1024;

pub(crate) const MIB: u64 = 1024 * KIB;

/// Small messages are 100 B up to one of these, picked at random, so most are small.
pub(crate) const SMALL_MIN: u64 = 100;

pub(crate) const SMALL_MAX: [u64; 3] = [KIB, 4 * KIB, 16 * KIB];

/// Per mille of messages that are large.
pub(crate) const LARGE_PER_MILLE: u64 = 30;

pub(crate) const LARGE_MIN: u64 = 256 * KIB;

pub(crate) const LARGE_MAX: u64 = 4 * MIB;

/// Per mille of sends the broker fails at once with an error.
pub(crate) const ERROR_PER_MILLE: u64 = 20;

/// Per mille of sends whose reply never comes: the client gives up after `SLOW_REPLY`.
pub(crate) const SLOW_PER_MILLE: u64 = 20;

pub(crate) const SLOW_REPLY: Duration = Duration::from_millis(200);

/// Latency of an ordinary reply, in milliseconds, before the transfer time.
pub(crate) const LATENCY_MS: (u64, u64) = (1, 20);

/// Transfer time: one millisecond per this many bytes (64 MiB/s per connection),
/// so a 4 MiB message holds its bytes some 60 ms longer than a small one.
pub(crate) const BYTES_PER_MS: u64 = 64 * KIB;

pub(crate) fn parse_number(flag: &str, text: &str, min: u64, max: u64) -> Result<u64, String> {
    let n: u64 = text
        .trim()
        .parse()
        .map_err(|err: std::num::ParseIntError| {
            if *err.kind() == std::num::IntErrorKind::PosOverflow {
                format!("{flag}: '{text}' is out of range ({min} to {max})")
            } else {
                format!("{flag}: '{text}' is not a whole number")
            }
        })?;
    if n < min || n > max {
        return Err(format!("{flag}: {n} is out of range ({min} to {max})"));
    }
    Ok(n)
}

/// A decimal number such as `2` or `0.5`, within `min..=max`.
pub(crate) fn parse_decimal(flag: &str, text: &str, min: f64, max: f64) -> Result<f64, String> {
    let n: f64 = text
        .trim()
        .parse()
        .ok()
        .filter(|n: &f64| !n.is_nan())
        .ok_or_else(|| format!("{flag}: '{text}' is not a number"))?;
    // An infinity (`inf`, or a number too large for an f64) is out of range.
    // The error echoes the text as typed: `{n}` would spell 1e308 in full.
    if n.is_infinite() || n < min || n > max {
        return Err(format!("{flag}: '{text}' is out of range ({min} to {max})"));
    }
    Ok(n)
}

/// A byte count with an optional binary suffix: `4096`, `512KiB`, `32MiB`, `1G`.
pub(crate) fn parse_size(flag: &str, text: &str, max: u64) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, suffix) = text.split_at(split);
    let unit = match suffix.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => KIB,
        "m" | "mib" => MIB,
        "g" | "gib" => 1024 * MIB,
        _ => {
            return Err(format!(
                "{flag}: '{text}' is not a size (write e.g. 4096, 512KiB, 32MiB or 1GiB)"
            ));
        }
    };
    let out_of_range = || format!("{flag}: '{text}' is out of range (1 B to {max} B)");
    let n: u64 = digits.parse().map_err(|err: std::num::ParseIntError| {
        if *err.kind() == std::num::IntErrorKind::PosOverflow {
            out_of_range()
        } else {
            format!("{flag}: '{text}' is not a size (write e.g. 4096, 512KiB, 32MiB or 1GiB)")
        }
    })?;
    match n.checked_mul(unit) {
        Some(bytes) if (1..=max).contains(&bytes) => Ok(bytes),
        _ => Err(out_of_range()),
    }
}

/// A path option's value: any text but the empty one.
pub(crate) fn parse_path(flag: &str, text: String) -> Result<String, String> {
    if text.is_empty() {
        return Err(format!("{flag} needs a path, not an empty one"));
    }
    Ok(text)
}

/// A file written at the end of a run, opened (created if missing) before
/// it so that a path that cannot be written fails at once rather than after
/// the run. What the file held is cut only when the run writes it, so a run
/// that fails first (another path that cannot be written, an error) leaves
/// it as it was. Both steps print `error: cannot write PATH: ...` on failure
/// and give the exit status to return, 1.
pub(crate) struct OutputFile {
    path: String,
    file: std::fs::File,
}

impl OutputFile {
    /// Opens (or creates) the file at `path` for writing, without cutting
    /// what it holds; with `make_dir`, creates its directory first if it is
    /// missing (for a default path under `target/`).
    pub(crate) fn create(path: &str, make_dir: bool) -> Result<Self, std::process::ExitCode> {
        if make_dir {
            if let Some(dir) = std::path::Path::new(path).parent() {
                let _ = std::fs::create_dir_all(dir);
            }
        }
        match std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
        {
            Ok(file) => Ok(OutputFile {
                path: path.to_string(),
                file,
            }),
            Err(err) => {
                errln!("error: cannot write {path}: {err}");
                Err(std::process::ExitCode::FAILURE)
            }
        }
    }

    /// Opens two files a run writes, each as `create` does (a path and its
    /// `make_dir`), named by their options for the error if both are one
    /// regular file (`--csv x --svg ./x`), which would keep only the last
    /// written: then `error: ...` and exit status 2, and nothing is
    /// written (a file that did not exist is left empty). A device such as
    /// `/dev/null` may take both.
    pub(crate) fn create_two(
        flags: [&str; 2],
        first: (&str, bool),
        second: (&str, bool),
    ) -> Result<(Self, Self), std::process::ExitCode> {
        let first = Self::create(first.0, first.1)?;
        let second = Self::create(second.0, second.1)?;
        let canonical = |file: &Self| std::fs::canonicalize(&file.path).ok();
        let is_file = |file: &Self| file.file.metadata().is_ok_and(|m| m.is_file());
        if is_file(&first) && canonical(&first).is_some() && canonical(&first) == canonical(&second)
        {
            let [a, b] = flags;
            return Err(usage_error(&format!(
                "{a} and {b} are the same file ({}): give each its own path",
                second.path
            )));
        }
        Ok((first, second))
    }

    /// Cuts what the file held, writes `contents` to it and flushes it.
    pub(crate) fn write(mut self, contents: &str) -> Result<(), std::process::ExitCode> {
        use std::io::Write as _;
        // A device (`/dev/null`, `/dev/stdout`) has no length to cut.
        let cut = if self.file.metadata().is_ok_and(|m| m.is_file()) {
            self.file.set_len(0)
        } else {
            Ok(())
        };
        match cut
            .and_then(|()| self.file.write_all(contents.as_bytes()))
            .and_then(|()| self.file.flush())
        {
            Ok(()) => Ok(()),
            Err(err) => {
                errln!("error: cannot write {}: {err}", self.path);
                Err(std::process::ExitCode::FAILURE)
            }
        }
    }
}

/// A tiny seeded random number generator (xorshift64*), so no dependency.
pub(crate) struct XorShift(u64);

impl XorShift {
    pub(crate) fn new(seed: u64, stream: u64) -> Self {
        // splitmix64 of the seed and stream, so nearby seeds give unrelated streams
        // and the state is never zero.
        let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        XorShift((z ^ (z >> 31)) | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `lo..=hi` (close enough for a simulation).
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    pub(crate) fn per_mille(&mut self, p: u64) -> bool {
        self.next() % 1000 < p
    }
}

pub(crate) fn message_len(rng: &mut XorShift) -> u64 {
    if rng.per_mille(LARGE_PER_MILLE) {
        rng.range(LARGE_MIN, LARGE_MAX)
    } else {
        let max = SMALL_MAX[rng.range(0, SMALL_MAX.len() as u64 - 1) as usize];
        rng.range(SMALL_MIN, max)
    }
}

pub(crate) fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

pub(crate) fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

pub(crate) fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB as f64
}

pub(crate) fn fmt_size(bytes: u64) -> String {
    if bytes >= MIB && bytes % MIB == 0 {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= MIB {
        format!("{:.1} MiB", mib(bytes))
    } else if bytes >= KIB && bytes % KIB == 0 {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} B")
    }
}

/// Splits `--flag=value` into the flag and its inline value; any other
/// argument is a flag with no inline value.
pub(crate) fn split_flag(arg: &str) -> (String, Option<String>) {
    match arg.split_once('=') {
        Some((flag, value)) if flag.starts_with("--") => {
            (flag.to_string(), Some(value.to_string()))
        }
        _ => (arg.to_string(), None),
    }
}

/// The value of `flag`: its inline value, else the next argument, unless
/// that is an option (it starts with `--`): then `flag` was given no value
/// (`--csv --adaptive` is `--csv` without its path, not a file named
/// `--adaptive`). A value that starts with `--` can still be given inline:
/// `--csv=--odd-name`.
pub(crate) fn flag_value(
    flag: &str,
    inline: Option<&str>,
    args: &mut impl Iterator<Item = String>,
) -> Result<String, String> {
    match inline {
        Some(value) => Ok(value.to_string()),
        None => match args.next() {
            Some(next) if next.starts_with("--") => Err(format!(
                "{flag} needs a value, and '{next}' is an option, not one \
                 (write {flag}=VALUE for a value that starts with '--')"
            )),
            Some(value) => Ok(value),
            None => Err(format!("{flag} needs a value")),
        },
    }
}

/// A switch, an option that takes no value: `Ok(true)` (it is on), or an
/// error if it was given one (`--naive=yes`).
pub(crate) fn switch(flag: &str, inline: Option<&str>) -> Result<bool, String> {
    match inline {
        None => Ok(true),
        Some(_) => Err(format!("{flag} takes no value")),
    }
}

/// What `parse` made of the command line: the options, or, for `--help`
/// (`Ok(None)`) and bad options, the exit code after printing the help or
/// the error.
pub(crate) fn options_or_exit<C>(
    parse: Result<Option<C>, String>,
    help: impl FnOnce() -> String,
) -> Result<C, std::process::ExitCode> {
    match parse {
        Ok(Some(cfg)) => Ok(cfg),
        Ok(None) => {
            write_stdout(format_args!("{}", help()));
            Err(std::process::ExitCode::SUCCESS)
        }
        Err(message) => Err(usage_error(&message)),
    }
}

/// Prints a bad option's `error: ...` line and the hint; returns exit status 2.
pub(crate) fn usage_error(message: &str) -> std::process::ExitCode {
    errln!("error: {message}");
    errln!("Run with --help to see the options.");
    std::process::ExitCode::from(2)
}

/// The command line's arguments after the program's name, or, for one that
/// is not valid UTF-8, exit status 2 after the usual `error: ...` line.
pub(crate) fn args_or_exit() -> Result<Vec<String>, std::process::ExitCode> {
    std::env::args_os()
        .skip(1)
        .map(|arg| {
            arg.into_string().map_err(|arg| {
                usage_error(&format!("'{}' is not valid UTF-8", arg.to_string_lossy()))
            })
        })
        .collect()
}

/// Writes to stdout what `outln!` prints. If stdout cannot be written, the
/// process ends at once rather than panicking (a panic in a status loop
/// would leave it waiting for threads that run until that loop stops them):
/// quietly with status 0 when the reader went away (`| head`), else with
/// `error: ...` and status 1 (`> /dev/full`).
pub(crate) fn write_stdout(args: std::fmt::Arguments) {
    use std::io::Write as _;
    let written = {
        let mut stdout = std::io::stdout().lock();
        stdout.write_fmt(args).and_then(|()| stdout.flush())
    };
    if let Err(err) = written {
        if err.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        errln!("error: cannot write to stdout: {err}");
        std::process::exit(1);
    }
}

/// `println!` that ends the run, as `write_stdout` says, if stdout is closed.
macro_rules! outln {
    () => {
        $crate::common::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::common::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use outln;

/// Writes to stderr what `errln!` prints. A stderr that cannot be written
/// (a closed pipe: `2>&1 | true`) loses the message, where `eprintln!`
/// would panic and end the run with status 101: there is nowhere left to
/// say it, and the exit status still tells.
pub(crate) fn write_stderr(args: std::fmt::Arguments) {
    use std::io::Write as _;
    let _lost = std::io::stderr().write_fmt(args);
}

/// `eprintln!` that never panics (see `write_stderr`).
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::common::write_stderr(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use errln;
