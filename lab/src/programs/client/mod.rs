//! The client role: a load generator. Its plan (`plan`: the knobs, from a
//! scenario file or flags), its worker loop (`worker`: one std thread per
//! connection), what it records (`record`: one [`Record`] per request), the
//! summary statistics of records (`summary`) and the record format on stdout
//! (`output`: JSON lines, parsed back for the checker, which runs the same
//! summary code on them). Uses only `programs::http`, the connection-level
//! client.

mod output;
mod plan;
mod record;
mod summary;
mod worker;

pub use output::{parse_output, request_line, summary_line, Line, Output};
pub use plan::{Cli, ClientConfig, ConfigError};
pub use record::Record;
pub use summary::{percentile, summarize, Latency, Summary};
pub use worker::{run, ClientError, MAX_RUN, TAG_HEADER};
