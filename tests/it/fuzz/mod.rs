//! Property-based fuzzing (proptest): the catalog property against a real
//! compute (`catalog`, its cases in `cases`), and the spec parser and HTTP body
//! paths (`http`).

mod cases;
mod catalog;
mod http;
