//! The reference's catalog scenarios against real computes: on one compute
//! (`reference`, `extensions`, `privileged`), and across a restart on the same
//! data (`restart`).

mod extensions;
mod privileged;
mod reference;
mod restart;

use crate::common::*;
use serde_json::Value;

async fn internal_post(c: &Compute, path: &str, body: &Value) -> (u16, Value) {
    into_pair(http().post(c.internal_url(path)).json(body).send().await).await
}
