//! Engine tests: graphs on Lance through the embedded API and the CLI.

mod bad_input;
mod branches;
mod changes;
mod cleanup;
mod concurrency;
mod cookbook_oracle;
mod cookbooks;
mod crash;
mod embeddings;
mod group;
mod merge;
mod mutations;
mod oracle;
mod queries;
mod s3;
mod schema_apply;
#[path = "../common/storage.rs"]
mod storage;
mod support;
mod warm;
