//! The lab's own programs, run inside the containers (`connlab-backend`,
//! `connlab-client`): the tunable backend, the load generator and its
//! connection-level HTTP/1.1 client. They use nothing of the lab above them:
//! what they write (the client's records) is the evidence's input.

pub mod backend;
pub mod client;
pub mod http1;
pub mod library;
