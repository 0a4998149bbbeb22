//! connlab's lab: the roles a scenario is made of (backends, clients, Envoy,
//! faults), the runtime that starts them and the checker that turns what they
//! saw into an `Outcome`.

pub mod access_log;
pub mod audit;
pub mod backend;
pub mod capture;
pub mod certs;
pub mod check;
pub mod client;
pub mod compose;
pub mod diagnose;
pub mod envoy_config;
pub mod envoy_process;
pub mod evidence;
pub mod faults;
pub mod html_report;
pub mod http1;
pub mod image;
pub mod istio;
pub mod junit;
pub mod ladder;
pub mod library;
pub mod outcome;
pub mod packet_sequence;
pub mod paths;
pub mod pcap;
pub mod plots;
pub mod progress;
pub mod report;
pub mod roles;
pub mod run;
pub mod runtime;
pub mod scenario;
pub mod timeline;
