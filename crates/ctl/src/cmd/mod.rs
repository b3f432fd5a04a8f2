//! The command tree: every etcdctl command with its usage, flags and
//! handler, the dispatcher, and the help texts cobra would print.
//!
//! - A command is found by its leading words (`lease grant`); the rest of
//!   the arguments are parsed against its flags plus the global ones.
//! - A group word alone (`lease`) or `-h` prints help and exits 0; an
//!   unknown first word is cobra's `unknown command`.
//! - A flag error prints the command's usage on stdout and the error twice
//!   on stderr (cobra once, etcdctl once), exit 1, as etcdctl 3.4 does.

pub mod check;
pub mod cluster;
pub mod kv;
pub mod lease;
pub mod txn;
pub mod watch;

use std::io::Write;

use crate::client::Client;
use crate::error::{CtlError, EXIT_ERROR};
use crate::flags::{FlagSpec, Flags, Kind, help_flag, parse, tabwrite, usage_lines};
use crate::global::{GLOBAL_FLAGS, GlobalOptions, apply_environment};
use crate::output::Printer;

/// etcdctl's version line and API version, as etcdctl 3.4.23 prints them.
pub const VERSION: &str = "3.4.23";
/// The API version etcdctl reports.
pub const API_VERSION: &str = "3.4";

/// One command.
pub struct Command {
    /// Words that name it (`lease grant`).
    pub path: &'static str,
    /// The usage line after `etcdctl `, without `[flags]`.
    pub usage: &'static str,
    /// One-line description.
    pub short: &'static str,
    /// Longer description lines (help's DESCRIPTION), or empty.
    pub long: &'static str,
    /// Its own flags (help, shown in OPTIONS).
    pub flags: fn() -> Vec<FlagSpec>,
    /// Extra flags accepted but not shown (etcdctl 3.5 additions).
    pub hidden_flags: fn() -> Vec<FlagSpec>,
}

/// No flags.
fn none() -> Vec<FlagSpec> {
    Vec::new()
}

/// `compaction`'s flags.
fn compaction_flags() -> Vec<FlagSpec> {
    vec![FlagSpec::new(
        "physical",
        Kind::Bool,
        "false",
        "'true' to wait for compaction to physically remove all old revisions",
    )]
}

/// `txn`'s flags.
fn txn_flags() -> Vec<FlagSpec> {
    vec![
        FlagSpec::new(
            "interactive",
            Kind::Bool,
            "false",
            "Input transaction in interactive mode",
        )
        .short('i'),
    ]
}

/// `put`'s help description.
const PUT_LONG: &str = "Puts the given key into the store.

When <value> begins with '-', <value> is interpreted as a flag.
Insert '--' for workaround:

$ put <key> -- <value>
$ put -- <key> <value>

If <value> isn't given as a command line argument and '--ignore-value' is not specified,
this command tries to read the value from standard input.

If <lease> isn't given as a command line argument and '--ignore-lease' is not specified,
this command tries to read the value from standard input.

For example,
$ cat file | put <key>
will store the content of the file to <key>.
";

/// `endpoint status`'s help description.
const ENDPOINT_STATUS_LONG: &str = "When --write-out is set to simple, this command prints out comma-separated status lists for each endpoint.
The items in the lists are endpoint, ID, version, db size, is leader, is learner, raft term, raft index, raft applied index, errors.
";

/// `snapshot status`'s help description.
const SNAPSHOT_STATUS_LONG: &str = "When --write-out is set to simple, this command prints out comma-separated status lists for each endpoint.
The items in the lists are hash, revision, total keys, total size.
";

/// Every command this etcdctl runs.
pub const COMMANDS: &[Command] = &[
    Command {
        path: "alarm disarm",
        usage: "alarm disarm",
        short: "Disarms all alarms",
        long: "",
        flags: none,
        hidden_flags: none,
    },
    Command {
        path: "alarm list",
        usage: "alarm list",
        short: "Lists all alarms",
        long: "",
        flags: none,
        hidden_flags: none,
    },
    Command {
        path: "check perf",
        usage: "check perf [options]",
        short: "Check the performance of the etcd cluster",
        long: "",
        flags: check::perf_flags,
        hidden_flags: none,
    },
    Command {
        path: "compaction",
        usage: "compaction [options] <revision>",
        short: "Compacts the event history in etcd",
        long: "",
        flags: compaction_flags,
        hidden_flags: none,
    },
    Command {
        path: "defrag",
        usage: "defrag",
        short: "Defragments the storage of the etcd members with given endpoints",
        long: "",
        flags: cluster::defrag_flags,
        hidden_flags: none,
    },
    Command {
        path: "del",
        usage: "del [options] <key> [range_end]",
        short: "Removes the specified key or range of keys [key, range_end)",
        long: "",
        flags: kv::del_flags,
        hidden_flags: none,
    },
    Command {
        path: "endpoint hashkv",
        usage: "endpoint hashkv",
        short: "Prints the KV history hash for each endpoint in --endpoints",
        long: "",
        flags: cluster::hashkv_flags,
        hidden_flags: cluster::endpoint_hidden_flags,
    },
    Command {
        path: "endpoint health",
        usage: "endpoint health",
        short: "Checks the healthiness of endpoints specified in `--endpoints` flag",
        long: "",
        flags: none,
        hidden_flags: cluster::endpoint_hidden_flags,
    },
    Command {
        path: "endpoint status",
        usage: "endpoint status",
        short: "Prints out the status of endpoints specified in `--endpoints` flag",
        long: ENDPOINT_STATUS_LONG,
        flags: none,
        hidden_flags: cluster::endpoint_hidden_flags,
    },
    Command {
        path: "get",
        usage: "get [options] <key> [range_end]",
        short: "Gets the key or a range of keys",
        long: "",
        flags: kv::get_flags,
        hidden_flags: kv::get_flags_3_5,
    },
    Command {
        path: "lease grant",
        usage: "lease grant <ttl>",
        short: "Creates leases",
        long: "",
        flags: none,
        hidden_flags: none,
    },
    Command {
        path: "lease keep-alive",
        usage: "lease keep-alive [options] <leaseID>",
        short: "Keeps leases alive (renew)",
        long: "",
        flags: lease::keep_alive_flags,
        hidden_flags: none,
    },
    Command {
        path: "lease list",
        usage: "lease list",
        short: "List all active leases",
        long: "",
        flags: none,
        hidden_flags: none,
    },
    Command {
        path: "lease revoke",
        usage: "lease revoke <leaseID>",
        short: "Revokes leases",
        long: "",
        flags: none,
        hidden_flags: none,
    },
    Command {
        path: "lease timetolive",
        usage: "lease timetolive <leaseID> [options]",
        short: "Get lease information",
        long: "",
        flags: lease::time_to_live_flags,
        hidden_flags: none,
    },
    Command {
        path: "member add",
        usage: "member add <memberName> [options]",
        short: "Adds a member into the cluster",
        long: "",
        flags: cluster::member_add_flags,
        hidden_flags: none,
    },
    Command {
        path: "member list",
        usage: "member list",
        short: "Lists all members in the cluster",
        long: "",
        flags: none,
        hidden_flags: none,
    },
    Command {
        path: "member promote",
        usage: "member promote <memberID>",
        short: "Promotes a non-voting member in the cluster",
        long: "Promotes a non-voting learner member to a voting one in the cluster.\n",
        flags: none,
        hidden_flags: none,
    },
    Command {
        path: "member remove",
        usage: "member remove <memberID>",
        short: "Removes a member from the cluster",
        long: "",
        flags: none,
        hidden_flags: none,
    },
    Command {
        path: "member update",
        usage: "member update <memberID> [options]",
        short: "Updates a member in the cluster",
        long: "",
        flags: cluster::member_update_flags,
        hidden_flags: none,
    },
    Command {
        path: "move-leader",
        usage: "move-leader <transferee-member-id>",
        short: "Transfers leadership to another etcd cluster member.",
        long: "",
        flags: none,
        hidden_flags: none,
    },
    Command {
        path: "put",
        usage: "put [options] <key> <value> (<value> can also be given from stdin)",
        short: "Puts the given key into the store",
        long: PUT_LONG,
        flags: kv::put_flags,
        hidden_flags: none,
    },
    Command {
        path: "snapshot save",
        usage: "snapshot save <filename>",
        short: "Stores an etcd node backend snapshot to a given file",
        long: "",
        flags: none,
        hidden_flags: none,
    },
    Command {
        path: "snapshot restore",
        usage: "snapshot restore <filename> [options]",
        short: "Restores an etcd member snapshot to an etcd directory",
        long: "",
        flags: cluster::snapshot_restore_flags,
        hidden_flags: none,
    },
    Command {
        path: "snapshot status",
        usage: "snapshot status <filename>",
        short: "Gets backend snapshot status of a given file",
        long: SNAPSHOT_STATUS_LONG,
        flags: none,
        hidden_flags: none,
    },
    Command {
        path: "txn",
        usage: "txn [options]",
        short: "Txn processes all the requests in one transaction",
        long: "",
        flags: txn_flags,
        hidden_flags: none,
    },
    Command {
        path: "version",
        usage: "version",
        short: "Prints the version of etcdctl",
        long: "",
        flags: none,
        hidden_flags: none,
    },
    Command {
        path: "watch",
        usage: "watch [options] [key or prefix] [range_end] [--] [exec-command arg1 arg2 ...]",
        short: "Watches events stream on keys or prefixes",
        long: "",
        flags: watch::watch_flags,
        hidden_flags: watch::watch_hidden_flags,
    },
];

/// Command groups and their one-line descriptions.
const GROUPS: &[(&str, &str)] = &[
    ("alarm", "Alarm related commands"),
    (
        "check",
        "commands for checking properties of the etcd cluster",
    ),
    ("endpoint", "Endpoint related commands"),
    ("lease", "Lease related commands"),
    ("member", "Membership related commands"),
    ("snapshot", "Manages etcd node snapshots"),
];

/// Aliases cobra resolves for the first word.
fn resolve_alias(word: &str) -> &str {
    match word {
        "compact" => "compaction",
        "delete" => "del",
        other => other,
    }
}

/// Everything a command's handler needs.
pub struct Ctx {
    /// The command's parsed flags (its own and the global ones).
    pub flags: Flags,
    /// The global options.
    pub global: GlobalOptions,
}

impl Ctx {
    /// The printer for `-w`/`--hex`.
    pub fn printer(&self) -> Printer {
        Printer {
            format: self.global.format,
            hex: self.global.hex,
            value_only: false,
        }
    }

    /// Connects to the cluster.
    pub async fn connect(&self) -> Result<Client, CtlError> {
        Client::connect(&self.global).await
    }

    /// A request with the client's auth token.
    pub fn request<T>(&self, client: &Client, message: T) -> tonic::Request<T> {
        client.request(message)
    }
}

/// Writes bytes to stdout at once.
pub fn emit(bytes: &[u8]) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(bytes);
    let _ = stdout.flush();
}

/// The result of parsing the command line.
enum Parsed {
    /// Print this text on stdout and exit 0.
    Help(String),
    /// Run the command.
    Run(&'static Command, Box<Ctx>),
}

/// Runs etcdctl with `args` (without the program name) and `env`.
pub async fn run(args: Vec<String>, env: Vec<(String, String)>) -> Result<(), CtlError> {
    match parse_command_line(args, env)? {
        Parsed::Help(text) => {
            emit(text.as_bytes());
            Ok(())
        }
        Parsed::Run(command, ctx) => dispatch(command, &ctx).await,
    }
}

/// Calls the command's handler.
async fn dispatch(command: &Command, ctx: &Ctx) -> Result<(), CtlError> {
    match command.path {
        "put" => kv::put(ctx).await,
        "get" => kv::get(ctx).await,
        "del" => kv::del(ctx).await,
        "compaction" => kv::compaction(ctx).await,
        "txn" => txn::txn(ctx).await,
        "version" => {
            emit(format!("etcdctl version: {VERSION}\nAPI version: {API_VERSION}\n").as_bytes());
            Ok(())
        }
        "lease grant" => lease::grant(ctx).await,
        "lease revoke" => lease::revoke(ctx).await,
        "lease timetolive" => lease::time_to_live(ctx).await,
        "lease list" => lease::list(ctx).await,
        "lease keep-alive" => lease::keep_alive(ctx).await,
        "watch" => watch::watch(ctx).await,
        "check perf" => check::perf(ctx).await,
        other => cluster::dispatch(other, ctx).await,
    }
}

/// Finds the command, parses flags and environment.
fn parse_command_line(args: Vec<String>, env: Vec<(String, String)>) -> Result<Parsed, CtlError> {
    // Global flags may come before the command: skip them to find its words.
    let mut words = Vec::new();
    let mut rest = Vec::new();
    let mut i = 0;
    let mut found_all_words = false;
    while i < args.len() {
        let arg = &args[i];
        if found_all_words || arg == "--" {
            rest.extend(args[i..].iter().cloned());
            break;
        }
        if arg.starts_with('-') && arg.len() > 1 {
            rest.push(arg.clone());
            if takes_value(arg) && !arg.contains('=') && i + 1 < args.len() {
                rest.push(args[i + 1].clone());
                i += 1;
            }
        } else {
            let word = if words.is_empty() {
                resolve_alias(arg).to_string()
            } else {
                arg.clone()
            };
            let candidate = if words.is_empty() {
                word.clone()
            } else {
                format!("{} {word}", words.join(" "))
            };
            let is_command = COMMANDS.iter().any(|c| c.path == candidate);
            let is_group = GROUPS.iter().any(|(g, _)| *g == candidate);
            if words.is_empty() || (is_command || is_group) && words.len() == 1 {
                if words.is_empty() && !is_command && !is_group {
                    return Err(unknown_command(arg));
                }
                words.push(word);
                if is_command {
                    found_all_words = true;
                }
            } else {
                rest.push(arg.clone());
                found_all_words = true;
            }
        }
        i += 1;
    }
    let path = words.join(" ");
    let help_requested = rest.iter().any(|a| a == "-h" || a == "--help");
    let Some(command) = COMMANDS.iter().find(|c| c.path == path) else {
        if path.is_empty() {
            return Ok(Parsed::Help(root_help()));
        }
        // A group alone, or a group with an unknown word, prints its help.
        return Ok(Parsed::Help(group_help(&path)));
    };
    let mut specs = (command.flags)();
    specs.push(help_flag(
        command.path.rsplit(' ').next().unwrap_or(command.path),
    ));
    specs.extend((command.hidden_flags)());
    specs.extend_from_slice(GLOBAL_FLAGS);
    let mut parsed = match parse(&rest, &specs) {
        Ok(parsed) => parsed,
        Err(e) => {
            return Err(CtlError {
                code: EXIT_ERROR,
                stdout: format!("{}\n", command_help(command)),
                stderr: format!("Error: {e}\n\nError: {e}\n"),
            });
        }
    };
    if help_requested {
        return Ok(Parsed::Help(format!("{}\n", command_help(command))));
    }
    apply_environment(&mut parsed, &env)?;
    let flags = Flags::new(specs, parsed);
    let global = GlobalOptions::from_flags(&flags)?;
    Ok(Parsed::Run(command, Box::new(Ctx { flags, global })))
}

/// Whether a global flag given before the command takes the next argument.
fn takes_value(arg: &str) -> bool {
    let spec = if let Some(long) = arg.strip_prefix("--") {
        GLOBAL_FLAGS.iter().find(|s| s.name == long)
    } else {
        let c = arg.chars().nth(1);
        GLOBAL_FLAGS.iter().find(|s| s.short == c && arg.len() == 2)
    };
    spec.is_some_and(|s| s.kind != Kind::Bool)
}

/// cobra's error for an unknown first word.
fn unknown_command(word: &str) -> CtlError {
    let e = format!("unknown command \"{word}\" for \"etcdctl\"");
    CtlError::raw(
        EXIT_ERROR,
        format!("Error: {e}\nRun 'etcdctl --help' for usage.\nError: {e}\n"),
    )
}

/// The GLOBAL OPTIONS section; the `endpoint` group's persistent
/// `--cluster` flag shows among them for its subcommands.
fn global_options(group: &str) -> String {
    let mut flags = GLOBAL_FLAGS.to_vec();
    if group == "endpoint" {
        flags.extend(cluster::endpoint_hidden_flags());
        flags.sort_by_key(|f| f.name);
    }
    usage_lines(&flags)
}

/// A command's help text, as cobra renders etcdctl's template.
pub fn command_help(command: &Command) -> String {
    let mut text = format!(
        "NAME:\n\t{} - {}\n\nUSAGE:\n\tetcdctl {} [flags]\n\n",
        command.path, command.short, command.usage
    );
    if !command.long.is_empty() {
        text.push_str("DESCRIPTION:\n");
        for line in command.long.trim_end_matches('\n').split('\n') {
            text.push('\t');
            text.push_str(line);
            text.push('\n');
        }
        text.push('\n');
    }
    let mut local = (command.flags)();
    local.push(help_flag(
        command.path.rsplit(' ').next().unwrap_or(command.path),
    ));
    text.push_str("OPTIONS:\n");
    text.push_str(&usage_lines(&local));
    text.push_str("\nGLOBAL OPTIONS:\n");
    text.push_str(&global_options(
        command.path.split(' ').next().unwrap_or_default(),
    ));
    text
}

/// A group's own flags: its help flag, and `endpoint`'s `--cluster`.
fn group_flags(group: &str) -> Vec<FlagSpec> {
    let mut flags = if group == "endpoint" {
        cluster::endpoint_hidden_flags()
    } else {
        Vec::new()
    };
    flags.push(help_flag(group));
    flags
}

/// A group's help (`etcdctl lease`).
fn group_help(group: &str) -> String {
    let short = GROUPS
        .iter()
        .find(|(g, _)| *g == group)
        .map(|(_, s)| *s)
        .unwrap_or_default();
    // Commands not run yet are listed too, so the help reads as etcdctl's.
    let mut entries: Vec<(&str, &str)> = COMMANDS
        .iter()
        .map(|c| (c.path, c.short))
        .chain(NOT_YET.iter().copied())
        .filter_map(|(path, short)| {
            path.strip_prefix(group)
                .and_then(|s| s.strip_prefix(' '))
                .map(|sub| (sub, short))
        })
        .collect();
    entries.sort();
    let lines: Vec<String> = entries
        .iter()
        .map(|(sub, short)| format!("\t{sub}\t{short}"))
        .collect();
    format!(
        "NAME:\n\t{group} - {short}\n\nUSAGE:\n\tetcdctl {group} <subcommand> [flags]\n\nAPI VERSION:\n\t{API_VERSION}\n\n\nCOMMANDS:\n{}\nOPTIONS:\n{}\nGLOBAL OPTIONS:\n{}\n",
        tabwrite(&lines),
        usage_lines(&group_flags(group)),
        global_options("")
    )
}

/// Commands etcdctl 3.4 lists that this etcdctl does not run yet; named in
/// the root help so it reads as etcdctl's.
const NOT_YET: &[(&str, &str)] = &[
    ("auth disable", "Disables authentication"),
    ("auth enable", "Enables authentication"),
    (
        "check datascale",
        "Check the memory usage of holding data for different workloads on a given server endpoint.",
    ),
    (
        "completion bash",
        "Generate the autocompletion script for bash",
    ),
    (
        "completion fish",
        "Generate the autocompletion script for fish",
    ),
    (
        "completion powershell",
        "Generate the autocompletion script for powershell",
    ),
    (
        "completion zsh",
        "Generate the autocompletion script for zsh",
    ),
    ("elect", "Observes and participates in leader election"),
    ("help", "Help about any command"),
    ("lock", "Acquires a named lock"),
    (
        "make-mirror",
        "Makes a mirror at the destination etcd cluster",
    ),
    ("migrate", "Migrates keys in a v2 store to a mvcc store"),
    ("role add", "Adds a new role"),
    ("role delete", "Deletes a role"),
    ("role get", "Gets detailed information of a role"),
    ("role grant-permission", "Grants a key to a role"),
    ("role list", "Lists all roles"),
    ("role revoke-permission", "Revokes a key from a role"),
    ("user add", "Adds a new user"),
    ("user delete", "Deletes a user"),
    ("user get", "Gets detailed information of a user"),
    ("user grant-role", "Grants a role to a user"),
    ("user list", "Lists all users"),
    ("user passwd", "Changes password of user"),
    ("user revoke-role", "Revokes a role from a user"),
];

/// The root help (`etcdctl --help`).
fn root_help() -> String {
    let mut entries: Vec<(&str, &str)> = COMMANDS.iter().map(|c| (c.path, c.short)).collect();
    entries.extend_from_slice(NOT_YET);
    entries.sort();
    let lines: Vec<String> = entries
        .iter()
        .map(|(path, short)| format!("\t{path}\t{short}"))
        .collect();
    let mut options = GLOBAL_FLAGS.to_vec();
    options.push(help_flag("etcdctl"));
    format!(
        "NAME:\n\tetcdctl - A simple command line client for etcd3.\n\nUSAGE:\n\tetcdctl [flags]\n\nVERSION:\n\t{VERSION}\n\nAPI VERSION:\n\t{API_VERSION}\n\n\nCOMMANDS:\n{}\nOPTIONS:\n{}\n",
        tabwrite(&lines),
        usage_lines(&options)
    )
}
