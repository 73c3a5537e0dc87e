//! Language tests: the `.pg` and `.gq` compilers on the cookbooks, negative
//! cases, mechanical damage, fuzzing and the CLI.

mod cli;
mod cookbooks;
mod damage;
mod fuzz;
mod positive;
mod query_errors;
mod reference;
mod schema_errors;
mod support;
