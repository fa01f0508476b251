//! `cargo xtask`: every build, set-up and test step of kms-edge, so no shell
//! script knows more than this.

mod bench;
mod build;
mod setup;
mod test;
mod workspace;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install the pinned BPF toolchain and bpf-linker, and check the host (idempotent).
    Setup,
    /// Build the BPF object and the kmsd binary that embeds it.
    Build {
        #[arg(long)]
        release: bool,
    },
    /// Build and run `kmsd serve` (arguments after `--` go to kmsd serve).
    Run {
        #[arg(long)]
        release: bool,
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Everything CI runs: fmt, clippy on both halves, unit and integration tests.
    Test(test::TestArgs),
    /// Boot real Debian kernels under qemu and run kmsd's scenarios in each.
    VmTest {
        /// Kernel series (`6.1`, `6.12`, `7.3`) or `newest`; repeatable
        /// [default: 6.1, 6.12 and the newest trixie-backports kernel].
        #[arg(long = "kernel", value_name = "VER")]
        kernels: Vec<String>,
        /// qemu accelerator: `tcg` (works everywhere) or `kvm`.
        #[arg(long, default_value = "tcg", value_parser = ["tcg", "kvm"])]
        accel: String,
    },
    /// Benchmarks (results under target/bench/).
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// kmsd serve under kmsd client --concurrency 64: activations/s, latency, RSS.
    Kms {
        /// Seconds per run.
        #[arg(long, default_value_t = 10)]
        duration: u64,
    },
    /// The XDP program: ns/packet under BPF_PROG_TEST_RUN, and drop throughput
    /// on veth against a bare XDP_DROP and an nftables set (needs root).
    Xdp {
        /// Seconds per flood run.
        #[arg(long, default_value_t = 5)]
        flood_seconds: u64,
        /// BPF_PROG_TEST_RUN repeats per packet class.
        #[arg(long, default_value_t = 1_000_000)]
        repeat: u32,
    },
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Setup => setup::run(),
        Command::Build { release } => {
            setup::ensure()?;
            build::kmsd(release).map(drop)
        }
        Command::Run { release, args } => {
            setup::ensure()?;
            let kmsd = build::kmsd(release)?;
            build::exec_serve(&kmsd, &args)
        }
        Command::Bench(BenchCommand::Kms { duration }) => {
            setup::ensure()?;
            bench::kms(duration)
        }
        Command::Bench(BenchCommand::Xdp {
            flood_seconds,
            repeat,
        }) => {
            setup::ensure()?;
            bench::xdp(flood_seconds, repeat)
        }
        Command::VmTest { kernels, accel } => {
            setup::ensure()?;
            test::vm(&kernels, &accel)
        }
        Command::Test(args) => {
            setup::ensure()?;
            test::run(&args)
        }
    }
}
