//! The flags of Neon's compute_ctl, as a group of the command line: its
//! launchers start us with them, so each is accepted, and those without an
//! implementation here are named in a warning. Kept apart from `mod.rs`,
//! which is compute_ctl's own command line.

/// Flags of Neon's compute_ctl, so that its launchers can start us. Those
/// without an implementation here are accepted with a warning naming them.
#[derive(Debug, clap::Args)]
pub struct ReferenceFlags {
    /// The role the spec's roles are made members of, with the reference's
    /// privileges (not a superuser): lowercase letters, digits and `_`.
    #[arg(long, env = "COMPUTE_CTL_PRIVILEGED_ROLE_NAME",
          default_value = crate::catalog::DEFAULT_PRIVILEGED_ROLE, value_name = "NAME",
          value_parser = parse_privileged_role)]
    pub privileged_role_name: String,

    /// How often the `compute_installed_extensions` metric is refreshed.
    #[arg(
        long,
        env = "COMPUTE_CTL_INSTALLED_EXTENSIONS_COLLECTION_INTERVAL",
        default_value_t = 3600,
        value_name = "SECONDS"
    )]
    pub installed_extensions_collection_interval: u64,

    /// Not supported (the reference's development mode).
    #[arg(long, env = "COMPUTE_CTL_DEV")]
    pub dev: bool,

    /// The extension store (any static HTTP server): the archives of the
    /// extensions a spec's `remote_extensions` allows, at
    /// `<URL>/<build tag>/<arch>/v<major>/extensions/<extension>.tar.zst`.
    /// No query allowed.
    #[arg(
        short = 'r',
        long,
        env = "COMPUTE_CTL_REMOTE_EXT_BASE_URL",
        value_name = "URL",
        alias = "remote-ext-config",
        value_parser = parse_remote_ext_base_url
    )]
    pub remote_ext_base_url: Option<reqwest::Url>,

    /// Not supported (the reference's cgroup for postgres, in VMs).
    #[arg(long, env = "COMPUTE_CTL_CGROUP", value_name = "NAME")]
    pub cgroup: Option<String>,

    /// Not supported (the reference's VM monitor file cache connection).
    #[arg(long, env = "COMPUTE_CTL_FILECACHE_CONNSTR", value_name = "CONNSTR")]
    pub filecache_connstr: Option<String>,

    /// Not supported (the reference's VM monitor address).
    #[arg(long, env = "COMPUTE_CTL_VM_MONITOR_ADDR", value_name = "ADDR")]
    pub vm_monitor_addr: Option<String>,

    /// Not supported (the reference resizes swap when a VM is bound).
    #[arg(long, env = "COMPUTE_CTL_RESIZE_SWAP_ON_BIND")]
    pub resize_swap_on_bind: bool,

    /// Not supported (the reference sets a disk quota on this filesystem).
    #[arg(
        long,
        env = "COMPUTE_CTL_SET_DISK_QUOTA_FOR_FS",
        value_name = "MOUNTPOINT"
    )]
    pub set_disk_quota_for_fs: Option<String>,
}

impl ReferenceFlags {
    /// The flags given that compute_ctl accepts but does not implement.
    pub fn unsupported(&self) -> Vec<&'static str> {
        [
            ("--dev", self.dev),
            ("--cgroup", self.cgroup.is_some()),
            ("--filecache-connstr", self.filecache_connstr.is_some()),
            ("--vm-monitor-addr", self.vm_monitor_addr.is_some()),
            ("--resize-swap-on-bind", self.resize_swap_on_bind),
            (
                "--set-disk-quota-for-fs",
                self.set_disk_quota_for_fs.is_some(),
            ),
        ]
        .into_iter()
        .filter_map(|(flag, given)| given.then_some(flag))
        .collect()
    }
}

fn parse_remote_ext_base_url(text: &str) -> Result<reqwest::Url, String> {
    crate::extensions::parse_base_url(text).map_err(|e| format!("{e:#}"))
}

pub(super) fn parse_privileged_role(name: &str) -> Result<String, String> {
    crate::catalog::check_privileged_role_name(name).map(|()| name.to_string())
}
