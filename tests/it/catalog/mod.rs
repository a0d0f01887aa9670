//! The reference's catalog scenarios against real computes: on one compute
//! (`reference`, `extensions`, `privileged`), and across a restart on the same
//! data (`restart`); the local template that comes finished (`template`); the
//! strategy of database creations (`strategy`); databases taken from the
//! template's spares (`spare_databases`); `fsync` lifted around a bulk
//! creation (`bulk`).

mod bulk;
mod extensions;
mod privileged;
mod reference;
mod restart;
mod scale;
mod spare_databases;
mod strategy;
mod template;
