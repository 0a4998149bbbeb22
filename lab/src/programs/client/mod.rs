//! The client role: a load generator. Its plan (`plan`: the knobs, from a
//! scenario file or flags), its worker loop (`worker`: one std thread per
//! connection), its record format (`record`: one [`Record`] per request, as
//! JSON lines on stdout, parsed back for the checker) and the summary
//! statistics of records (`summary`). The checker runs the same summary code
//! on records it parses back from `connlab-client`'s stdout.

mod plan;
mod record;
mod summary;
mod worker;

pub use plan::{Cli, ClientConfig, ConfigError};
pub use record::{parse_output, request_line, summary_line, Line, Output, Record};
pub use summary::{percentile, summarize, Latency, Summary};
pub use worker::{run, ClientError, MAX_RUN, TAG_HEADER};
