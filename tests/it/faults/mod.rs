//! Faults against real processes (the README's "Reliability" rows): a failing
//! control plane, a full disk, processes killed outright, signals in every
//! state, failing storage.

mod control_plane;
mod disk;
mod kill;
mod signals;
mod storage;
