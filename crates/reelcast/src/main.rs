//! The `reelcast` command: `reelcast serve` runs the server, `reelcast recover [DIR]`
//! finalizes unfinished recordings, `reelcast probe FILE`
//! describes a media file.
//!
//! Owns: command-line parsing, logging set-up, turning flags into settings overrides,
//! and exit codes (2: bad configuration or usage, 1: any other failure). Everything
//! else lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use reelcast::config::{self, Override, Settings, Sources};

/// Exit code for a configuration or usage error (clap uses 2 for usage errors too).
const EXIT_CONFIG: u8 = 2;
/// Exit code for any other failure.
const EXIT_FAILURE: u8 = 1;

/// Media server: MP4 files to browsers over WebRTC, compatible with Flashphoner WCS.
#[derive(Debug, Parser)]
#[command(name = "reelcast", version = reelcast::LONG_VERSION)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server.
    ///
    /// Settings come from built-in defaults, then the properties file, then
    /// REELCAST_<KEY> environment variables, then these flags (later wins).
    /// See docs/CONFIGURATION.md.
    Serve(ServeArgs),
    /// Describe a media file: tracks, codecs, duration, what would play.
    Probe {
        /// The file to describe.
        file: PathBuf,
    },
    /// Finalize every unfinished recording in a folder (left by a server that was
    /// killed), then print a summary. The server does this itself when it starts.
    Recover {
        /// The recordings folder (record_dir) [default: ./records]
        #[arg(default_value = "./records")]
        dir: PathBuf,
    },
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Properties file in WCS format [default: ./flashphoner.properties if it exists]
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Folder of playable files (media_dir) [default: ./media]
    #[arg(long, value_name = "DIR")]
    media_dir: Option<String>,
    /// REST API port (http.port) [default: 8081]
    #[arg(long, value_name = "N")]
    http_port: Option<String>,
    /// WebSocket signalling port (ws.port) [default: 8080]
    #[arg(long, value_name = "N")]
    ws_port: Option<String>,
    /// The one UDP port all WebRTC viewers share (media_port) [default: media_port_from, 31001]
    #[arg(long, value_name = "N")]
    media_port: Option<String>,
    /// Addresses announced to browsers in ICE candidates, comma-separated, e.g. the public
    /// IP behind NAT (ip) [default: every address of this host]
    #[arg(long, value_name = "ADDR")]
    ip: Option<String>,
    /// Set any settings key, e.g. --set vod_stream_timeout=5000 (repeatable)
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

impl ServeArgs {
    /// The flags as settings overrides: every `--set` in order, then the dedicated
    /// flags, which so win over a `--set` of the same key.
    fn overrides(&self) -> Result<Vec<Override>, config::ConfigError> {
        let mut overrides = self
            .set
            .iter()
            .map(|arg| Override::parse_set(arg))
            .collect::<Result<Vec<_>, _>>()?;
        // Which key each flag sets is written in the key table (`Key::flag`).
        let dedicated = [
            ("--media-dir", &self.media_dir),
            ("--http-port", &self.http_port),
            ("--ws-port", &self.ws_port),
            ("--media-port", &self.media_port),
            ("--ip", &self.ip),
        ];
        for (flag, value) in dedicated {
            let (Some(value), Some(key)) = (value, config::keys::find_flag(flag)) else {
                // A flag missing from the table is caught by `every_dedicated_flag_is_a_table_key`.
                continue;
            };
            overrides.push(Override::new(key.name, value, flag));
        }
        Ok(overrides)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        // Logging starts once the settings say in which form (log_format).
        Command::Serve(args) => serve(args),
        Command::Probe { file } => {
            reelcast::logging::init(reelcast::logging::LogFormat::default());
            probe(&file)
        }
        Command::Recover { dir } => {
            reelcast::logging::init(reelcast::logging::LogFormat::default());
            let done = reelcast::record::recover_dir(&dir);
            for (name, ms) in &done.finalized {
                println!("recovered {name}: {:.3} s", *ms as f64 / 1000.0);
            }
            for (name, why) in &done.failed {
                println!("failed {name}: {why}");
            }
            println!("{done}");
            if done.failed.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_FAILURE)
            }
        }
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let loaded = match args
        .overrides()
        .and_then(|overrides| config::load(&Sources::from_process(args.config.clone(), overrides)))
    {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("reelcast: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    reelcast::logging::init(loaded.settings.log_format);
    if let Some(path) = &loaded.config_file {
        tracing::info!("settings from {}", path.display());
    } else {
        tracing::info!("no properties file; settings from defaults, environment and flags");
    }
    for line in loaded.summary().lines() {
        tracing::debug!("{line}");
    }
    for line in &loaded.ignored {
        tracing::debug!("{line}");
    }
    let settings = loaded.settings;
    let runtime = match reelcast::server::runtime() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("reelcast: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let result = runtime.block_on(run_server(settings));
    // Blocking jobs (a read waiting on a stalled S3 store) are not waited for: the
    // drain already gave streams their grace.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("reelcast: {e:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// Runs the server until it stops.
async fn run_server(settings: Settings) -> anyhow::Result<()> {
    reelcast::server::run(settings).await
}

fn probe(file: &std::path::Path) -> ExitCode {
    use reelcast::source::{LocalFile, MediaPath};
    use reelcast::stream::MediaReader;
    // The file's folder plays the part of media_dir, so the same checks apply.
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let opened = MediaPath::new(name)
        .and_then(|path| LocalFile::open(dir, &path))
        .map_err(reelcast::stream::StreamError::from)
        .and_then(MediaReader::open);
    match opened {
        Ok(reader) => {
            let i = reader.info();
            println!("{}: plays", file.display());
            println!("  duration: {:.3} s", i.duration_us as f64 / 1e6);
            if let Some(codec) = &i.video_codec {
                println!(
                    "  video: {codec} {}x{} (profile_idc {:?})",
                    i.width, i.height, i.h264_profile_idc
                );
            }
            if let Some(codec) = &i.audio_codec {
                println!("  audio: {codec}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: {e}", file.display());
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_become_overrides_after_set() {
        let cli = Cli::try_parse_from([
            "reelcast",
            "serve",
            "--set",
            "http.port=1",
            "--http-port",
            "2",
            "--set",
            "vod_stream_timeout=5000",
            "--ip",
            "203.0.113.7",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("serve expected");
        };
        let o: Vec<(String, String, String)> = args
            .overrides()
            .unwrap()
            .into_iter()
            .map(|o| (o.key, o.value, o.flag))
            .collect();
        let t = |k: &str, v: &str, f: &str| (k.to_string(), v.to_string(), f.to_string());
        assert_eq!(
            o,
            vec![
                t("http.port", "1", "--set"),
                t("vod_stream_timeout", "5000", "--set"),
                t("http.port", "2", "--http-port"),
                t("ip", "203.0.113.7", "--ip"),
            ]
        );
    }

    /// The dedicated flags of `serve` are exactly the table's `Key::flag`s, so a flag
    /// cannot set no key, and the docs' flag column (checked against the table) is true.
    #[test]
    fn every_dedicated_flag_is_a_table_key() {
        let cli = Cli::command();
        let serve = cli.find_subcommand("serve").expect("serve exists");
        let mut flags: Vec<String> = serve
            .get_arguments()
            .filter_map(|a| a.get_long())
            .filter(|long| !matches!(*long, "config" | "set" | "help"))
            .map(|long| format!("--{long}"))
            .collect();
        let mut table: Vec<String> = config::keys::TABLE
            .iter()
            .filter_map(|k| k.flag.map(str::to_string))
            .collect();
        flags.sort();
        table.sort();
        assert_eq!(flags, table);
    }

    #[test]
    fn bad_set_is_a_config_error() {
        let cli = Cli::try_parse_from(["reelcast", "serve", "--set", "oops"]).unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("serve expected");
        };
        assert!(args.overrides().is_err());
    }
}
