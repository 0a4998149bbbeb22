//! An input's lines in batches. Lines are read, bounded and joined (a JSON
//! entry printed over several lines is read as one) in order, into a batch
//! that holds their text, on a thread that reads ahead (`read_ahead`); a
//! batch is then parsed as a whole, which `Diagnoser::read` does on a
//! second thread while it judges the batch before, in log order, and then
//! beside it. Parsing is most of the work and needs no state from line to
//! line, so this is where a second core pays; judging keeps every line's
//! order.

use std::io::BufRead;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use super::line::{self, Formats, Line};

/// Longest line kept; the rest of a longer one is skipped and the line
/// counted as malformed (no log format diagnose reads comes near it).
pub const MAX_LINE: usize = 64 * 1024;

/// A batch ends once its text reaches this much (or `BATCH_LINES` lines):
/// enough that a thread per batch costs nothing, little enough to keep
/// two of them and their parsed lines in a few MiB.
const BATCH_BYTES: usize = 1 << 20;
const BATCH_LINES: usize = 1 << 14;

/// Lines a thread claims at a time when two parse one batch (at most; an
/// eighth of a smaller batch): small enough that neither waits long for the
/// other's last chunk.
const CHUNK_LINES: usize = 128;

/// A batch's text items parsed, by chunk, in any order of chunks.
#[derive(Debug, Default)]
pub struct Parsed<'a> {
    chunks: Vec<(usize, Vec<Line<'a>>)>,
}

impl<'a> Parsed<'a> {
    /// Two threads' chunks of one batch as one.
    pub fn merge(mut self, other: Parsed<'a>) -> Self {
        self.chunks.extend(other.chunks);
        self
    }

    /// The lines in the batch's order.
    pub fn lines(mut self) -> impl Iterator<Item = Line<'a>> {
        self.chunks.sort_unstable_by_key(|(chunk, _)| *chunk);
        self.chunks.into_iter().flat_map(|(_, lines)| lines)
    }
}

/// Lines read from an input, with their text, in order.
#[derive(Debug, Default)]
pub struct Batch {
    text: String,
    pub items: Vec<Item>,
    /// The input ended with this batch.
    pub end: bool,
    /// It ended inside a JSON entry that never closed.
    pub unclosed: bool,
}

/// One line of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Its bytes, with its newline.
    pub bytes: u64,
    pub what: What,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum What {
    /// Text to parse (`Batch::text`): the line, or the JSON entry it closes.
    Text(Range<usize>),
    /// Longer than `MAX_LINE`.
    TooLong,
    /// Inside a JSON entry still open.
    Joined,
    /// Closes a JSON entry that grew past `line::MAX_JOINED`.
    EntryTooLong,
}

impl Batch {
    pub fn text(&self, range: &Range<usize>) -> &str {
        self.text.get(range.clone()).unwrap_or("")
    }

    /// Each `What::Text` parsed, in order: one `Line` per text item.
    pub fn parse<'a>(&'a self, formats: &Formats) -> Parsed<'a> {
        Parsed {
            chunks: vec![(0, self.parse_items(&self.items, formats))],
        }
    }

    /// Parses chunks of the batch not yet `claimed` (by this thread or
    /// another), each claimed once, until none is left.
    pub fn parse_claimed<'a>(&'a self, formats: &Formats, claimed: &AtomicUsize) -> Parsed<'a> {
        let size = (self.items.len() / 8).clamp(1, CHUNK_LINES);
        let mut chunks = Vec::new();
        loop {
            let chunk = claimed.fetch_add(1, Ordering::Relaxed);
            let Some(items) = self.items.chunks(size).nth(chunk) else {
                break;
            };
            chunks.push((chunk, self.parse_items(items, formats)));
        }
        Parsed { chunks }
    }

    fn parse_items<'a>(&'a self, items: &[Item], formats: &Formats) -> Vec<Line<'a>> {
        let mut lines = Vec::with_capacity(items.len());
        for item in items {
            if let What::Text(range) = &item.what {
                lines.push(formats.parse(self.text(range)));
            }
        }
        lines
    }

    fn clear(&mut self) {
        self.text.clear();
        self.items.clear();
        self.end = false;
        self.unclosed = false;
    }
}

/// Reads an input's lines into batches.
#[derive(Debug)]
pub struct Lines<R> {
    reader: R,
    buf: Vec<u8>,
    joining: Joining,
    batch_lines: usize,
}

impl<R: BufRead> Lines<R> {
    pub fn new(reader: R) -> Self {
        Lines::with_batch_lines(reader, BATCH_LINES)
    }

    /// Batches of at most `lines` lines (tests: many small batches must
    /// read the same as one).
    pub fn with_batch_lines(reader: R, lines: usize) -> Self {
        Lines {
            reader,
            buf: Vec::with_capacity(1024),
            joining: Joining::default(),
            batch_lines: lines.max(1),
        }
    }

    /// Refills `batch` with the next lines.
    pub fn fill(&mut self, batch: &mut Batch) -> std::io::Result<()> {
        batch.clear();
        while batch.text.len() < BATCH_BYTES && batch.items.len() < self.batch_lines {
            let Some(truncated) = read_line(&mut self.reader, &mut self.buf, MAX_LINE)? else {
                batch.end = true;
                batch.unclosed = self.joining.open();
                break;
            };
            let bytes = self.buf.len() as u64 + 1;
            if truncated {
                batch.items.push(Item {
                    bytes,
                    what: What::TooLong,
                });
                continue;
            }
            // Checked first as it nearly always is, valid UTF-8: the lossy
            // conversion's own check is several times slower.
            let text = match std::str::from_utf8(&self.buf) {
                Ok(text) => std::borrow::Cow::Borrowed(text),
                Err(_) => String::from_utf8_lossy(&self.buf),
            };
            let what = match self.joining.take(&text) {
                Joined::Line => push(&mut batch.text, &text),
                Joined::Inside => What::Joined,
                Joined::Entry(entry) => push(&mut batch.text, &entry),
                Joined::TooLong => What::EntryTooLong,
            };
            batch.items.push(Item { bytes, what });
        }
        Ok(())
    }
}

/// Batches read ahead of the one being judged (two: reading is a tenth of
/// the work, and it overlaps parsing and judging).
const AHEAD: usize = 2;

/// Batches from a thread that reads ahead (`read_ahead`).
#[derive(Debug)]
pub struct Feed {
    full: mpsc::Receiver<std::io::Result<Batch>>,
    empty: mpsc::Sender<Batch>,
}

impl Feed {
    /// The next batch, in order; `used` goes back to be refilled.
    pub fn next(&mut self, used: Batch) -> std::io::Result<Batch> {
        // The reading thread is gone once it has sent the last batch.
        let _ = self.empty.send(used);
        self.full
            .recv()
            .unwrap_or_else(|_| Err(std::io::Error::other("the reading thread stopped")))
    }
}

/// Runs `body` with the input's remaining batches read on a thread of its
/// own, `AHEAD` batches ahead of it: reading (the read calls, splitting
/// lines, checking UTF-8, joining JSON entries) overlaps the rest. The
/// thread ends after the last batch, or when `body` returns.
pub fn read_ahead<R: BufRead + Send, T>(
    mut lines: Lines<R>,
    body: impl FnOnce(&mut Feed) -> std::io::Result<T>,
) -> std::io::Result<T> {
    let (full_tx, full) = mpsc::sync_channel(AHEAD);
    let (empty, empty_rx) = mpsc::channel::<Batch>();
    for _ in 1..AHEAD {
        let _ = empty.send(Batch::default());
    }
    std::thread::scope(|s| {
        s.spawn(move || {
            while let Ok(mut batch) = empty_rx.recv() {
                let read = lines.fill(&mut batch).map(|()| batch);
                let last = read.as_ref().map_or(true, |b| b.end);
                if full_tx.send(read).is_err() || last {
                    return;
                }
            }
        });
        body(&mut Feed { full, empty })
    })
}

fn push(text: &mut String, line: &str) -> What {
    let start = text.len();
    text.push_str(line);
    What::Text(start..text.len())
}

/// Joins a JSON entry spread over lines (pretty-printed: `jq .`, a log
/// store's export): from a line that is only `{` to the line that closes
/// it. Only such a line opens one, so a damaged one-line entry (`{"a":` cut
/// short) never swallows the lines after it.
#[derive(Debug, Default)]
struct Joining {
    text: String,
    depth: i64,
}

enum Joined {
    /// An ordinary line: read it as it is.
    Line,
    /// Part of an entry still open.
    Inside,
    /// The whole entry.
    Entry(String),
    /// The entry grew past `line::MAX_JOINED`: dropped.
    TooLong,
}

impl Joining {
    fn open(&self) -> bool {
        self.depth > 0
    }

    fn take(&mut self, line: &str) -> Joined {
        if self.depth == 0 {
            // `trim_start` first: it stops at a line's first character.
            if !line.trim_start().starts_with('{') || line.trim() != "{" {
                return Joined::Line;
            }
            self.text = line.to_string();
            self.depth = 1;
            return Joined::Inside;
        }
        self.depth += brace_depth(line);
        self.text.push('\n');
        self.text.push_str(line);
        if self.text.len() > line::MAX_JOINED {
            *self = Joining::default();
            return Joined::TooLong;
        }
        if self.depth > 0 {
            return Joined::Inside;
        }
        self.depth = 0;
        // An element of a JSON array ends with `},`.
        let entry = std::mem::take(&mut self.text);
        Joined::Entry(entry.trim_end().trim_end_matches(',').to_string())
    }
}

/// `{` minus `}` outside JSON strings.
fn brace_depth(line: &str) -> i64 {
    let (mut depth, mut in_string, mut escaped) = (0i64, false, false);
    for b in line.bytes() {
        match (in_string, escaped, b) {
            (true, true, _) => escaped = false,
            (true, false, b'\\') => escaped = true,
            (true, false, b'"') => in_string = false,
            (false, _, b'"') => in_string = true,
            (false, _, b'{') => depth += 1,
            (false, _, b'}') => depth -= 1,
            _ => {}
        }
    }
    depth
}

/// Reads one line (without its `\n`) into `buf`, keeping at most `max`
/// bytes; `None` at the end, `Some(true)` when the line was longer.
pub fn read_line(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<bool>> {
    buf.clear();
    let mut truncated = false;
    let mut any = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(any.then_some(truncated));
        }
        any = true;
        let (chunk, done) = match memchr::memchr(b'\n', available) {
            Some(i) => (&available[..i], Some(i + 1)),
            None => (available, None),
        };
        let room = max.saturating_sub(buf.len());
        if chunk.len() > room {
            truncated = true;
        }
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = done.unwrap_or(available.len());
        reader.consume(used);
        if done.is_some() {
            return Ok(Some(truncated));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_bounded_and_the_last_needs_no_newline() {
        let data = format!("a\n{}\nb", "x".repeat(100));
        let mut reader = std::io::BufReader::with_capacity(7, data.as_bytes());
        let mut buf = Vec::new();
        assert_eq!(read_line(&mut reader, &mut buf, 10).unwrap(), Some(false));
        assert_eq!(buf, b"a");
        assert_eq!(read_line(&mut reader, &mut buf, 10).unwrap(), Some(true));
        assert_eq!(buf.len(), 10);
        assert_eq!(read_line(&mut reader, &mut buf, 10).unwrap(), Some(false));
        assert_eq!(buf, b"b");
        assert_eq!(read_line(&mut reader, &mut buf, 10).unwrap(), None);
    }

    #[test]
    fn a_batch_keeps_every_line_in_order_and_ends_at_its_cap() {
        let mut data = String::from("{\n  \"a\": 1\n}\n");
        for i in 0..BATCH_LINES + 10 {
            data.push_str(&format!("line {i}\n"));
        }
        let mut lines = Lines::new(data.as_bytes());
        let mut batch = Batch::default();
        lines.fill(&mut batch).unwrap();
        assert!(!batch.end);
        assert_eq!(batch.items.len(), BATCH_LINES);
        assert_eq!(batch.items[0].what, What::Joined);
        assert_eq!(batch.items[1].what, What::Joined);
        let What::Text(entry) = &batch.items[2].what else {
            panic!("{:?}", batch.items[2]);
        };
        assert_eq!(batch.text(entry), "{\n  \"a\": 1\n}");
        assert_eq!(batch.items[3].bytes, "line 0\n".len() as u64);
        lines.fill(&mut batch).unwrap();
        assert!(batch.end);
        assert_eq!(batch.items.len(), 13);
        let What::Text(last) = &batch.items[12].what else {
            panic!("{:?}", batch.items[12]);
        };
        assert_eq!(batch.text(last), format!("line {}", BATCH_LINES + 9));
    }

    /// Two threads claim a batch's chunks in any order; its lines come
    /// back in the batch's.
    #[test]
    fn chunks_parsed_in_any_order_come_back_in_order() {
        let data: String = (0..40)
            .map(|i| {
                format!(
                    "[2026-12-01T00:00:00.000Z] \"GET / HTTP/1.1\" {} - 0 0 1 - \"-\" \"c\" \
                     \"id\" \"a\" \"10.0.0.1:80\"\n",
                    200 + i
                )
            })
            .collect();
        let mut batch = Batch::default();
        Lines::new(data.as_bytes()).fill(&mut batch).unwrap();
        let formats = Formats::new(None);
        // Another thread claimed chunk 0 first, and is done after this one.
        let claimed = AtomicUsize::new(1);
        let rest = batch.parse_claimed(&formats, &claimed);
        let size = batch.items.len() / 8;
        let first = Parsed {
            chunks: vec![(0, batch.parse_items(&batch.items[..size], &formats))],
        };
        let codes: Vec<i64> = rest
            .merge(first)
            .lines()
            .map(|line| match line {
                Line::Request(_, r) => r.code.unwrap_or(0),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(codes, (200..240).collect::<Vec<_>>());
    }
}
