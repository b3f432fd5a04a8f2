//! `etcdctl`: etcd's command-line client, rewritten on retcd's gRPC
//! bindings, printing byte for byte what etcdctl 3.4 prints.
//!
//! - [`flags`]: pflag-compatible parsing and usage text.
//! - [`global`]: global flags and `ETCDCTL_*` variables.
//! - [`client`]: connection, fail-over, deadlines, auth.
//! - [`tls`]: TLS endpoints and certificate flags.
//! - [`cmd`]: the command tree and one module per command group.
//! - [`output`]: one module per output format.
//! - [`error`], [`log`]: etcdctl's error lines, exit codes and client logs.

mod client;
mod cmd;
mod error;
mod flags;
mod global;
mod log;
mod output;
mod tls;

use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let env: Vec<(String, String)> = std::env::vars().collect();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("Error: {e}");
            std::process::exit(error::EXIT_ERROR);
        }
    };
    let result = runtime.block_on(cmd::run(args, env));
    if let Err(e) = result {
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(e.stdout.as_bytes());
        let _ = stdout.flush();
        let mut stderr = std::io::stderr().lock();
        let _ = stderr.write_all(e.stderr.as_bytes());
        let _ = stderr.flush();
        std::process::exit(e.code);
    }
}
