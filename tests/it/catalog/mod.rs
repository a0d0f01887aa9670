//! The reference's catalog scenarios against real computes: on one compute
//! (`reference`, `extensions`, `privileged`), and across a restart on the same
//! data (`restart`); the local template that comes finished (`template`); the
//! strategy of database creations (`strategy`).

mod extensions;
mod privileged;
mod reference;
mod restart;
mod scale;
mod strategy;
mod template;
