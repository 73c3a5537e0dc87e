//! Server tests: the real `omnigraph-server` binary on 127.0.0.1 port 0,
//! called over HTTP.

mod bench;
mod blob;
mod changes;
mod cluster;
mod conditional;
mod contract;
mod cookbook;
mod crash_load;
#[allow(dead_code)]
#[path = "../engine/support.rs"]
mod engine_support;
mod example;
mod hostile;
mod ops;
mod remote;
mod replicas;
mod states;
#[path = "../common/storage.rs"]
mod storage;
mod support;
mod two_writers;
