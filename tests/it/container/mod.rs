//! compute_ctl as a container: the image in podman (`image`), the entrypoint's
//! behaviours on the host (`entrypoint`), the deploy/ manifests (`manifests`);
//! `support` builds the image (shared with benches/container.rs).

mod entrypoint;
mod image;
mod manifests;
pub mod support;
