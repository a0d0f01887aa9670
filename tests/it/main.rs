//! The integration tests, as one test binary (`cargo test --test it`; one area:
//! `cargo test --test it lifecycle::`). Each area is a module; the harness and
//! the stand-ins are modules beside them. One binary links the library once,
//! where a binary per file linked it some thirty times (slow links, gigabytes of
//! target/). Only tests whose process-wide effects would reach the others stay
//! binaries of their own (tests/reaper.rs: it reaps any exited child of the test
//! process, so other tests' children would be taken from them).

// The harness and the stand-ins.
mod common;
mod fake_pageserver;
mod hostile;
mod needs;
mod neon_support;
mod ports;
mod wait;

// The areas.
mod architecture;
mod audit;
mod catalog;
mod container;
mod control_plane;
mod diagram;
mod docs;
mod doors;
mod exposure;
mod extensions;
mod faults;
mod fuzz;
mod http;
mod lifecycle;
mod load;
mod logs_export;
mod neon;
mod operate;
mod pgbouncer;
mod planted;
mod promote;
mod reference_shapes;
mod refused;
mod soak;
mod storage;
mod superuser;
mod tls;
