//! Nothing here: the model checks are in `tests/`, compiled only with
//! `--cfg loom`.
