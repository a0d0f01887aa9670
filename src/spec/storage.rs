//! Where a compute's data lives, as the spec says it: resolved into one form
//! and checked to be complete, so that no spec that names Neon storage can
//! start anything else.
//!
//! The reference names its pageservers in three ways, in this order of
//! precedence: `pageserver_connection_info` (today's: each shard's
//! pageservers), the legacy `pageserver_connstring` with `shard_stripe_size`,
//! and the `neon.pageserver_connstring` and `neon.stripe_size` settings. A
//! checked spec holds the outcome in the legacy fields (the libpq URL of each
//! shard's first pageserver, comma-separated in shard order, and the stripe
//! size), which is what postgresql.conf, the basebackup (shard 0) and the
//! final sync read. The tenant, timeline and safekeepers fall back to their
//! `neon.*` settings likewise.

use super::wire::{ComputeMode, ComputeSpec, PageserverConnectionInfo, PageserverProtocol};
use super::SpecError;
use crate::secret::Secret;
use std::collections::HashSet;

const INFO: &str = "pageserver_connection_info";

/// Resolves the storage fields into the legacy ones (see the module's
/// opening): `pageserver_connection_info` first, then the settings.
pub(super) fn resolve_storage(spec: &mut ComputeSpec) -> Result<(), SpecError> {
    if let Some(info) = &spec.pageserver_connection_info {
        let (urls, stripe) = resolve_connection_info(info)?;
        spec.pageserver_connstring = Some(Secret::new(urls));
        spec.shard_stripe_size = stripe;
    }
    let setting = |name: &str| {
        spec.settings()
            .iter()
            .find(|s| s.name == name)
            .and_then(|s| s.value.clone())
            .filter(|v| !v.is_empty())
    };
    let pageserver = setting("neon.pageserver_connstring");
    let stripe = setting("neon.stripe_size");
    let tenant = setting("neon.tenant_id");
    let timeline = setting("neon.timeline_id");
    let safekeepers = setting("neon.safekeepers");
    if spec.pageserver_connstring.is_none() {
        spec.pageserver_connstring = pageserver.map(Secret::new);
        if spec.shard_stripe_size.is_none() {
            spec.shard_stripe_size = match stripe {
                Some(v) => Some(v.trim().parse().map_err(|_| {
                    SpecError::new(
                        "cluster.settings",
                        format!("neon.stripe_size {v:?} is not a number of pages"),
                    )
                })?),
                None => None,
            };
        }
    }
    spec.tenant_id = spec.tenant_id.take().or(tenant);
    spec.timeline_id = spec.timeline_id.take().or(timeline);
    if spec.safekeeper_connstrings.is_empty() {
        if let Some(list) = safekeepers {
            // A generation prefix (`g#<n>:`) is the walproposer's, not an address.
            let list = match list.strip_prefix("g#").and_then(|r| r.split_once(':')) {
                Some((generation, rest)) => {
                    if spec.safekeepers_generation.is_none() {
                        spec.safekeepers_generation = generation.parse().ok();
                    }
                    rest.to_string()
                }
                None => list,
            };
            spec.safekeeper_connstrings = list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
        }
    }
    Ok(())
}

/// The libpq URLs of each shard's first pageserver (comma-joined, in shard
/// order) and the stripe size, or the field that is missing or unsupported.
fn resolve_connection_info(
    info: &PageserverConnectionInfo,
) -> Result<(String, Option<u32>), SpecError> {
    for key in info.shards.keys() {
        let hex = key.len() == 4
            && key
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex {
            return Err(SpecError::new(
                format!("{INFO}.shards"),
                format!(
                    "shard key {key:?} is not 4 lowercase hex digits \
                     (the shard number, then the shard count)"
                ),
            ));
        }
    }
    let count = info.shard_count;
    if count > 1 && info.stripe_size.is_none() {
        return Err(SpecError::new(
            format!("{INFO}.stripe_size"),
            format!("a tenant of {count} shards needs its stripe size"),
        ));
    }
    let mut urls = Vec::new();
    for number in 0..count.max(1) {
        let key = format!("{number:02x}{count:02x}");
        let field = format!("{INFO}.shards.{key}");
        let Some(shard) = info.shards.get(&key) else {
            return Err(SpecError::new(
                format!("{INFO}.shards"),
                format!("shard {key} missing from the shard map (shard {number} of {count})"),
            ));
        };
        let Some(first) = shard.pageservers.first() else {
            return Err(SpecError::new(
                format!("{field}.pageservers"),
                "names no pageserver",
            ));
        };
        match first.libpq_url.as_ref().map(Secret::expose) {
            Some(url) if url.contains(',') => return Err(SpecError::new(
                format!("{field}.pageservers[0].libpq_url"),
                "must not contain a comma (it separates the shards in neon.pageserver_connstring)",
            )),
            Some(url) if !url.trim().is_empty() => urls.push(url.trim()),
            _ => {
                let why = match info.prefer_protocol {
                    PageserverProtocol::Grpc => format!(
                        "shard {key}'s pageserver has no libpq_url, and the grpc protocol \
                         is not supported: give every shard's first pageserver a libpq_url"
                    ),
                    PageserverProtocol::Libpq => {
                        format!("shard {key}'s first pageserver has no libpq_url")
                    }
                };
                return Err(SpecError::new(
                    format!("{field}.pageservers[0].libpq_url"),
                    why,
                ));
            }
        }
    }
    Ok((urls.join(","), info.stripe_size))
}

/// The storage fields, once resolved: one source of data, complete and
/// well-formed. A spec that names any part of Neon storage (a tenant, a
/// timeline, safekeepers) without a pageserver is refused: it must never
/// start an empty local cluster where the user's data should be.
pub(super) fn validate_storage(spec: &ComputeSpec) -> Result<(), SpecError> {
    // Well-formed first (the reference's errors for these come first too),
    // then complete.
    for (field, value) in [
        ("tenant_id", &spec.tenant_id),
        ("timeline_id", &spec.timeline_id),
    ] {
        if let Some(v) = value {
            if v.len() != 32 || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(SpecError::new(field, "must be 32 hexadecimal characters"));
            }
        }
    }
    let mut seen = HashSet::new();
    for (i, sk) in spec.safekeeper_connstrings.iter().enumerate() {
        if !seen.insert(sk.as_str()) {
            return Err(SpecError::new(
                format!("safekeeper_connstrings[{i}]"),
                format!("duplicate entry in safekeeper_connstrings: {sk}"),
            ));
        }
    }
    if spec.pageserver_connstring.is_some() {
        for (field, value) in [
            ("tenant_id", &spec.tenant_id),
            ("timeline_id", &spec.timeline_id),
        ] {
            if value.is_none() {
                return Err(SpecError::new(field, "required with a pageserver"));
            }
        }
        if spec.mode == ComputeMode::Primary && spec.safekeeper_connstrings.is_empty() {
            return Err(SpecError::new(
                "safekeeper_connstrings",
                "a primary on Neon storage needs its safekeepers (for the commit LSN)",
            ));
        }
        if spec.primary_connstring.is_some() {
            return Err(SpecError::new(
                "primary_connstring",
                "a compute takes its data from a pageserver or from a primary, not both",
            ));
        }
        check_legacy_shards(spec)?;
    } else {
        let named: Vec<&str> = [
            ("tenant_id", spec.tenant_id.is_some()),
            ("timeline_id", spec.timeline_id.is_some()),
            (
                "safekeeper_connstrings",
                !spec.safekeeper_connstrings.is_empty(),
            ),
        ]
        .into_iter()
        .filter_map(|(name, given)| given.then_some(name))
        .collect();
        if !named.is_empty() {
            return Err(SpecError::new(
                "pageserver_connection_info",
                format!(
                    "the spec names Neon storage ({}) but no pageserver: give \
                     pageserver_connection_info (or the legacy pageserver_connstring); \
                     refusing to start a local cluster instead",
                    named.join(", ")
                ),
            ));
        }
    }
    if spec.mode != ComputeMode::Primary
        && spec.pageserver_connstring.is_none()
        && spec.primary_connstring.is_none()
    {
        return Err(SpecError::new(
            "mode",
            "a read-only compute needs a pageserver (pageserver_connection_info or \
             pageserver_connstring) or a primary_connstring to take its data from",
        ));
    }
    if spec.primary_connstring.is_some() && spec.mode != ComputeMode::Replica {
        return Err(SpecError::new(
            "primary_connstring",
            "only a compute in mode \"Replica\" follows a primary",
        ));
    }
    Ok(())
}

/// A legacy connstring of several shards needs their stripe size, as in the
/// reference (`<n> shards but no stripe_size`).
fn check_legacy_shards(spec: &ComputeSpec) -> Result<(), SpecError> {
    let shards = spec
        .pageserver_connstring
        .as_ref()
        .map_or(0, |c| c.expose().split(',').count());
    if shards > 1 && spec.shard_stripe_size.is_none() {
        return Err(SpecError::new(
            "shard_stripe_size",
            format!("pageserver_connstring names {shards} shards but no stripe size is given"),
        ));
    }
    Ok(())
}
