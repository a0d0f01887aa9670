//! `docs/operations.md`'s flag tables are exactly what the command line's
//! definition generates: every flag with its environment variable, default
//! and meaning, and every subcommand with its own.

use super::cell;

/// The markdown of `compute_ctl`'s flags and then of each subcommand's.
pub fn markdown() -> String {
    let mut cmd = compute_ctl::testing::cli::command();
    cmd.build();
    let mut out = String::new();
    out.push_str(&table(&cmd));
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        let about = sub
            .get_long_about()
            .or(sub.get_about())
            .map(|a| cell(&a.to_string()))
            .unwrap_or_default();
        out.push_str(&format!(
            "\n#### `compute_ctl {}`\n\n{about}\n",
            sub.get_name()
        ));
        if sub.get_arguments().any(|a| !skipped(a)) {
            out.push('\n');
            out.push_str(&table(sub));
        }
    }
    out
}

/// `--help` and `--version` are clap's own.
fn skipped(arg: &clap::Arg) -> bool {
    matches!(arg.get_id().as_str(), "help" | "version")
}

fn table(cmd: &clap::Command) -> String {
    let mut out = String::from("| flag | environment variable | default | meaning |\n");
    out.push_str("|---|---|---|---|\n");
    for arg in cmd.get_arguments().filter(|a| !skipped(a)) {
        let value = arg
            .get_value_names()
            .filter(|_| arg.get_num_args().is_none_or(|n| n.takes_values()))
            .and_then(|names| names.first())
            .map(|n| format!(" <{n}>"))
            .unwrap_or_default();
        let mut names = Vec::new();
        if let Some(short) = arg.get_short() {
            names.push(format!("`-{short}`"));
        }
        if let Some(long) = arg.get_long() {
            names.push(format!("`--{long}{value}`"));
        }
        if names.is_empty() {
            names.push(format!("`{}`", value.trim()));
        }
        if let Some(aliases) = arg.get_all_aliases() {
            for alias in aliases {
                names.push(format!("(also `--{alias}`)"));
            }
        }
        let env = arg
            .get_env()
            .map(|e| format!("`{}`", e.to_string_lossy()))
            .unwrap_or_else(|| "none".into());
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|d| d.to_string_lossy().into_owned())
            .collect();
        let default = if defaults.is_empty() {
            if arg.is_required_set() {
                "required".to_string()
            } else {
                "none".to_string()
            }
        } else {
            format!("`{}`", defaults.join(","))
        };
        let help = arg
            .get_long_help()
            .or(arg.get_help())
            .map(|h| cell(&h.to_string()))
            .unwrap_or_default();
        out.push_str(&format!(
            "| {} | {env} | {default} | {help} |\n",
            names.join(" ")
        ));
    }
    out
}

#[test]
fn operations_flag_tables_match_the_command_line() {
    super::check_generated("docs/operations.md", "flags", &markdown());
}
