//! `kmsd`: the kms-edge daemon and its operator commands.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use kms_userspace::{client, config, logging, ops, serve};

#[derive(Parser)]
#[command(
    name = "kmsd",
    version,
    about = "KMS server for an internet-facing edge node, with an XDP front door"
)]
struct Cli {
    #[command(flatten)]
    log: logging::LogOptions,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve KMS on TCP 1688 with the XDP enforcer attached.
    Serve(Box<config::ServeOptions>),
    /// Activate against a KMS server like a real client and verify the answer
    /// (or, with --concurrency/--duration, generate load).
    Client(client::ClientArgs),
    /// The product catalogue: names, SKU ids, KMS ids, GVLKs.
    Products(ops::products::ProductsArgs),
    /// Show attached interfaces, maps, limits and counters (works without the daemon).
    Status(ops::status::StatusArgs),
    /// The block table (pf's <virusprot>): show, expire, flush, delete, add.
    #[command(subcommand)]
    Blocked(ops::blocked::BlockedCommand),
    /// The allow list: sources never counted or blocked.
    #[command(subcommand)]
    Allow(ops::allow::AllowCommand),
    /// Show or change max-src-conn, max-src-conn-rate and the rest, live.
    #[command(subcommand)]
    Limits(ops::limits::LimitsCommand),
    /// Detach the programs (XDP and the connection counter) and remove the pins.
    #[command(subcommand)]
    Xdp(ops::xdp::XdpCommand),
}

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    if let Command::Serve(options) = &cli.command {
        match options.file_logging() {
            Ok((level, format)) => {
                cli.log.log_level = cli.log.log_level.take().or(level);
                cli.log.log_format = cli.log.log_format.or(format);
            }
            Err(e) => {
                eprintln!("kmsd: {e:#}");
                return ExitCode::from(2);
            }
        }
    }
    if let Err(e) = logging::init(&cli.log) {
        eprintln!("kmsd: {e:#}");
        return ExitCode::from(2);
    }
    let result = match cli.command {
        Command::Serve(options) => serve::run(*options),
        Command::Client(args) => client::run(args),
        Command::Products(args) => ops::products::run(&args),
        Command::Status(args) => ops::status::run(&args),
        Command::Blocked(command) => ops::blocked::run(&command),
        Command::Allow(command) => ops::allow::run(&command),
        Command::Limits(command) => ops::limits::run(&command),
        Command::Xdp(command) => ops::xdp::run(&command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line an operator can act on; the cause chain is joined in.
            eprintln!("kmsd: {e:#}");
            ExitCode::FAILURE
        }
    }
}
