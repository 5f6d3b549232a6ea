//! `soak`: the soak, chaos and rolling-restart run against the real binaries.
//!
//! ```text
//! cargo build --release -p inventory-service -p order-service -p soak
//! target/release/soak                 # 10 minutes (SOAK_DURATION_SECS or --duration)
//! target/release/soak --ci            # the 60-second CI variant
//! ```
//!
//! Prints the figures and the checks; exits 0 when every check held, 1 when one failed,
//! 2 on bad arguments or when the run could not be carried out.

use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "\
usage: soak [--ci] [--duration SECS] [--rate ORDERS_PER_SEC] [--workers N]
            [--error-rate 0..1] [--bin-dir DIR]

  --ci             the CI variant: 60 s, one chaos cycle with a rolling restart
  --duration SECS  time under load (default 600, or SOAK_DURATION_SECS)
  --rate N         orders per second, all clients together (default 30; CI 40)
  --workers N      concurrent clients (default 8)
  --error-rate R   share of failed RPCs in the erroring phase (default 0.3)
  --bin-dir DIR    where inventory-service and order-service are (default: next to soak)";

fn main() -> ExitCode {
    let opts = match parse(std::env::args().skip(1).collect()) {
        Ok(Some(o)) => o,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("soak: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("soak: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    eprintln!(
        "soak: {} s under load, binaries from {}",
        opts.duration.as_secs(),
        opts.bin_dir.display()
    );
    match runtime.block_on(soak::run(&opts)) {
        Ok(report) => {
            println!("{report}");
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("soak: {e}");
            ExitCode::from(2)
        }
    }
}

fn parse(args: Vec<String>) -> Result<Option<soak::Options>, String> {
    let ci = args.iter().any(|a| a == "--ci");
    let mut opts = if ci {
        soak::Options::ci(soak::default_bin_dir())
    } else {
        soak::Options::long(soak::default_bin_dir())
    };
    if !ci && let Ok(v) = std::env::var("SOAK_DURATION_SECS") {
        opts.duration = Duration::from_secs(
            v.trim()
                .parse()
                .map_err(|_| format!("SOAK_DURATION_SECS={v:?} is not a number of seconds"))?,
        );
    }
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--ci" => {}
            "-h" | "--help" => return Ok(None),
            "--duration" => {
                let v = value("--duration")?;
                opts.duration = Duration::from_secs(
                    v.parse()
                        .map_err(|_| format!("--duration {v:?} is not a number of seconds"))?,
                );
            }
            "--rate" => {
                let v = value("--rate")?;
                opts.rate = v
                    .parse()
                    .map_err(|_| format!("--rate {v:?} is not a number"))?;
            }
            "--workers" => {
                let v = value("--workers")?;
                opts.workers = v
                    .parse()
                    .map_err(|_| format!("--workers {v:?} is not a number"))?;
            }
            "--error-rate" => {
                let v = value("--error-rate")?;
                opts.error_rate = v
                    .parse()
                    .map_err(|_| format!("--error-rate {v:?} is not a number"))?;
            }
            "--bin-dir" => opts.bin_dir = value("--bin-dir")?.into(),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    opts.validate()?;
    opts.progress = true;
    Ok(Some(opts))
}
