//! The layered loader: defaults < properties file < environment < command line.
//!
//! Owns: what [`load`] reads ([`Sources`], gathered by the caller so tests need no
//! process state), applying each source in order through `Settings::set` while
//! remembering where each value came from ([`Loaded::origins`]), the checks between
//! keys once all are applied, and the start-up summary. A WCS properties file holds
//! many keys reelcast does not use: those are ignored with one debug line each; an
//! unknown key from `--set` or a wrong value anywhere is an error naming the key, the
//! value (unless secret) and its [`Origin`] (file and line, variable, or flag).
//!
//! Must not: open sockets, start anything, or read media. Checking that `media_dir`
//! exists is the one file-system look it takes, so that a wrong folder fails at start.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::error::{ConfigError, Origin};
use super::keys::{self, ENV_PREFIX, TABLE};
use super::properties::{decode_text, parse_properties};
use super::s3::{HOST_CREDENTIALS_KEY, HOST_CREDENTIALS_PREFIX};
use super::settings::Settings;

/// The file read when no `--config` is given, if it exists in the working directory.
pub const DEFAULT_CONFIG_FILE: &str = "flashphoner.properties";

/// Which properties file to read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ConfigFile {
    /// None at all.
    #[default]
    None,
    /// This one if it exists, else none (the `./flashphoner.properties` default).
    IfExists(PathBuf),
    /// This one; missing or unreadable is an error (`--config FILE`).
    Required(PathBuf),
}

/// One value given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// The settings key.
    pub key: String,
    /// Its value, as given.
    pub value: String,
    /// The flag it came from, for messages: `--http-port`, `--set`.
    pub flag: String,
}

impl Override {
    /// An override from a dedicated flag: `Override::new("http.port", "9000", "--http-port")`.
    pub fn new(key: &str, value: &str, flag: &str) -> Self {
        Override {
            key: key.to_string(),
            value: value.to_string(),
            flag: flag.to_string(),
        }
    }

    /// Parses the argument of `--set KEY=VALUE` (split at the first `=`).
    pub fn parse_set(arg: &str) -> Result<Self, ConfigError> {
        match arg.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => {
                Ok(Override::new(key.trim(), value, "--set"))
            }
            _ => Err(ConfigError::BadOverride {
                flag: "--set".to_string(),
                arg: arg.to_string(),
            }),
        }
    }
}

/// Everything [`load`] reads, gathered by the caller so that tests need no process state.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// Which properties file to read, if any.
    pub config_file: ConfigFile,
    /// Environment variables as `(NAME, value)`; only `REELCAST_*` ones are looked at.
    pub env: Vec<(String, String)>,
    /// Command-line values, applied in order after everything else.
    pub overrides: Vec<Override>,
}

impl Sources {
    /// The sources of this process: `config` (else `./flashphoner.properties` if it
    /// exists), the real environment, and the given command-line overrides.
    pub fn from_process(config: Option<PathBuf>, overrides: Vec<Override>) -> Self {
        let config_file = match config {
            Some(path) => ConfigFile::Required(path),
            None => ConfigFile::IfExists(PathBuf::from(DEFAULT_CONFIG_FILE)),
        };
        let env = std::env::vars_os()
            .filter_map(|(k, v)| {
                let k = k.into_string().ok()?;
                k.starts_with(ENV_PREFIX)
                    .then(|| (k, v.to_string_lossy().into_owned()))
            })
            .collect();
        Sources {
            config_file,
            env,
            overrides,
        }
    }
}

/// Loaded settings together with where each value came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The settings in force.
    pub settings: Settings,
    /// The properties file that was read, if any.
    pub config_file: Option<PathBuf>,
    /// The origin of every key that was set by something other than the defaults.
    pub origins: BTreeMap<&'static str, Origin>,
    /// Keys and variables that were read but name no setting, one line each: logged by the
    /// caller once logging runs (it starts only after loading, in `log_format`'s form).
    pub ignored: Vec<String>,
}

impl Loaded {
    /// Where `key`'s value came from.
    pub fn origin(&self, key: &str) -> Origin {
        self.origins.get(key).cloned().unwrap_or(Origin::Default)
    }

    /// One line per key, `key = value (origin)`, secrets hidden: for the start-up log.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for key in TABLE {
            let value = self.settings.shown_value(key);
            let origin = self.origin(key.name);
            let _ = writeln!(out, "{} = {value} ({origin})", key.name);
        }
        for host in self.settings.aws_s3_host_credentials.keys() {
            let _ = writeln!(
                out,
                "{HOST_CREDENTIALS_PREFIX}{host} = <hidden> ({})",
                self.origin(HOST_CREDENTIALS_KEY)
            );
        }
        out
    }
}

/// Loads the settings from `sources` (defaults < file < environment < overrides) and
/// checks that `media_dir` is a readable folder.
pub fn load(sources: &Sources) -> Result<Loaded, ConfigError> {
    let mut settings = Settings::default();
    let mut origins = BTreeMap::new();
    let mut ignored = Vec::new();

    let file = match &sources.config_file {
        ConfigFile::None => None,
        ConfigFile::IfExists(path) if !path.exists() => None,
        ConfigFile::IfExists(path) | ConfigFile::Required(path) => Some(path.clone()),
    };
    if let Some(path) = &file {
        let bytes = std::fs::read(path).map_err(|e| ConfigError::ReadFile {
            path: path.clone(),
            reason: io_reason(&e),
        })?;
        for entry in parse_properties(&decode_text(bytes)) {
            let origin = Origin::File {
                path: path.clone(),
                line: entry.line,
            };
            match settings.set(&entry.key, &entry.value, &origin) {
                Ok(key) => {
                    origins.insert(key, origin);
                }
                Err(ConfigError::UnknownKey { .. }) => {
                    ignored.push(format!(
                        "{origin}: ignoring {}, a key reelcast does not use",
                        entry.key
                    ));
                }
                Err(e) => return Err(e),
            }
        }
    }

    for (var, value) in &sources.env {
        let Some(key) = keys::find_env(var).map(|k| k.name) else {
            if var.starts_with(ENV_PREFIX) {
                ignored.push(format!(
                    "ignoring {var}, an environment variable that names no setting"
                ));
            }
            continue;
        };
        let origin = Origin::Env { var: var.clone() };
        settings.set(key, value, &origin)?;
        origins.insert(key, origin);
    }

    for o in &sources.overrides {
        let origin = Origin::Flag {
            flag: o.flag.clone(),
        };
        let key = settings.set(&o.key, &o.value, &origin)?;
        origins.insert(key, origin);
    }

    let media_origin = origins.get("media_dir").cloned().unwrap_or(Origin::Default);
    check_media_dir(&settings.media_dir, &media_origin)?;
    check_combinations(&settings, &origins)?;

    Ok(Loaded {
        settings,
        config_file: file,
        origins,
        ignored,
    })
}

/// Checks between keys, once every source has been applied.
fn check_combinations(
    settings: &Settings,
    origins: &BTreeMap<&'static str, Origin>,
) -> Result<(), ConfigError> {
    let origin = |key: &str| origins.get(key).cloned().unwrap_or(Origin::Default);
    if settings.media_port_to < settings.media_port_from {
        return Err(ConfigError::InvalidValue {
            key: "media_port_to".into(),
            value: settings.media_port_to.to_string(),
            origin: origin("media_port_to"),
            expected: format!(
                "expected a port no lower than media_port_from ({})",
                settings.media_port_from
            ),
        });
    }
    if !settings.disable_rest_auth && settings.rest_auth_users.is_empty() {
        return Err(ConfigError::RestAuthWithoutUsers {
            origin: origin("disable_rest_auth"),
        });
    }
    if settings.hls_https_port.is_some() && settings.https_cert.is_none() {
        return Err(ConfigError::HlsHttpsWithoutCert {
            origin: origin("hls.https.port"),
        });
    }
    match (&settings.https_cert, &settings.https_key) {
        (Some(_), None) => Err(ConfigError::TlsIncomplete {
            given: "https.cert",
            missing: "https.key",
            origin: origin("https.cert"),
        }),
        (None, Some(_)) => Err(ConfigError::TlsIncomplete {
            given: "https.key",
            missing: "https.cert",
            origin: origin("https.key"),
        }),
        _ => Ok(()),
    }
}

fn check_media_dir(path: &Path, origin: &Origin) -> Result<(), ConfigError> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => match std::fs::read_dir(path) {
            Ok(_) => Ok(()),
            Err(e) => Err(ConfigError::MediaDirUnreadable {
                path: path.to_path_buf(),
                origin: origin.clone(),
                reason: io_reason(&e),
            }),
        },
        Ok(_) => Err(ConfigError::MediaDirNotDir {
            path: path.to_path_buf(),
            origin: origin.clone(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ConfigError::MediaDirMissing {
            path: path.to_path_buf(),
            origin: origin.clone(),
        }),
        Err(e) => Err(ConfigError::MediaDirUnreadable {
            path: path.to_path_buf(),
            origin: origin.clone(),
            reason: io_reason(&e),
        }),
    }
}

/// An io error's words without the `(os error N)` tail.
fn io_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use std::sync::atomic::{AtomicUsize, Ordering};

    fn temp_dir(tag: &str) -> PathBuf {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "reelcast-config-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir can be created");
        dir
    }

    /// A temp folder with a `media` subfolder and a properties file holding `text`.
    fn setup(tag: &str, text: &str) -> (PathBuf, PathBuf) {
        let dir = temp_dir(tag);
        std::fs::create_dir(dir.join("media")).expect("media dir can be created");
        let file = dir.join("test.properties");
        std::fs::write(&file, text).expect("properties file can be written");
        (dir, file)
    }

    fn sources(file: &Path, env: &[(&str, &str)], overrides: Vec<Override>) -> Sources {
        Sources {
            config_file: ConfigFile::Required(file.to_path_buf()),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            overrides,
        }
    }

    fn media_line(dir: &Path) -> String {
        format!("media_dir={}\n", dir.join("media").display())
    }

    #[test]
    fn keys_and_variables_naming_no_setting_are_kept_to_be_logged() {
        let (dir, file) = setup("ignored", "");
        let text = format!("{}wcs_only_feature=true\n", media_line(&dir));
        std::fs::write(&file, text).unwrap();
        let loaded = load(&sources(
            &file,
            &[("REELCAST_NO_SUCH_KEY", "1"), ("HOME", "/root")],
            vec![],
        ))
        .unwrap();
        assert_eq!(loaded.ignored.len(), 2, "{:?}", loaded.ignored);
        assert!(loaded.ignored[0].contains("wcs_only_feature"));
        assert!(loaded.ignored[1].contains("REELCAST_NO_SUCH_KEY"));
    }

    #[test]
    fn precedence_default_file_env_flag() {
        let (dir, file) = setup("prec", "");
        let text = format!(
            "{}http.port=9001\nws.port=9002\nmedia_port=9003\nvod_live_loop=true\n",
            media_line(&dir)
        );
        std::fs::write(&file, text).unwrap();
        let loaded = load(&sources(
            &file,
            &[
                ("REELCAST_WS_PORT", "9102"),
                ("REELCAST_MEDIA_PORT", "9103"),
                ("REELCAST_UNRELATED", "x"),
                ("HOME", "/root"),
            ],
            vec![Override::new("media_port", "9203", "--media-port")],
        ))
        .unwrap();
        let s = &loaded.settings;
        assert_eq!(s.http_port, 9001, "file beats default");
        assert_eq!(s.ws_port, 9102, "env beats file");
        assert_eq!(s.media_port, Some(9203), "flag beats env");
        assert!(s.vod_live_loop);
        assert_eq!(
            s.vod_stream_timeout,
            Duration::from_secs(30),
            "default kept"
        );
        assert_eq!(
            loaded.origin("http.port"),
            Origin::File {
                path: file.clone(),
                line: 2
            }
        );
        assert_eq!(
            loaded.origin("ws.port"),
            Origin::Env {
                var: "REELCAST_WS_PORT".into()
            }
        );
        assert_eq!(
            loaded.origin("media_port"),
            Origin::Flag {
                flag: "--media-port".into()
            }
        );
        assert_eq!(loaded.origin("vod_stream_timeout"), Origin::Default);
        assert!(loaded
            .summary()
            .contains("media_port = 9203 (flag --media-port)"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn later_override_wins_and_set_takes_any_key() {
        let (dir, file) = setup("set", "");
        std::fs::write(&file, media_line(&dir)).unwrap();
        let overrides = vec![
            Override::parse_set("vod_stream_timeout=5000").unwrap(),
            Override::parse_set("http.port=1000").unwrap(),
            Override::new("http.port", "2000", "--http-port"),
        ];
        let s = load(&sources(&file, &[], overrides)).unwrap().settings;
        assert_eq!(s.vod_stream_timeout, Duration::from_millis(5000));
        assert_eq!(s.http_port, 2000);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn unknown_file_keys_are_ignored() {
        let (dir, file) = setup("unknown", "");
        let text = format!(
            "# a WCS file\nrtc_ice_add_local_component = true\nhls.port=8082\n{}",
            media_line(&dir)
        );
        std::fs::write(&file, text).unwrap();
        let loaded = load(&sources(&file, &[], vec![])).unwrap();
        assert_eq!(loaded.settings.http_port, 8081);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn unknown_set_key_is_an_error() {
        let (dir, file) = setup("unknown-set", "");
        std::fs::write(&file, media_line(&dir)).unwrap();
        let err = load(&sources(
            &file,
            &[],
            vec![Override::parse_set("htp.port=1").unwrap()],
        ))
        .unwrap_err();
        assert!(matches!(err, ConfigError::UnknownKey { .. }));
        assert!(err
            .to_string()
            .starts_with("unknown setting \"htp.port\" (from flag --set)"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bad_value_names_key_value_file_and_line() {
        let (dir, file) = setup("bad", "");
        let text = format!("{}# comment\n\nhttp.port = abc\n", media_line(&dir));
        std::fs::write(&file, text).unwrap();
        let err = load(&sources(&file, &[], vec![])).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "invalid value \"abc\" for http.port (from {} line 4): expected a port number 1-65535",
                file.display()
            )
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bad_env_and_flag_values_name_their_origin() {
        let (dir, file) = setup("bad-env", "");
        std::fs::write(&file, media_line(&dir)).unwrap();
        let err = load(&sources(
            &file,
            &[("REELCAST_VOD_LIVE_LOOP", "yes")],
            vec![],
        ))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid value \"yes\" for vod_live_loop (from environment REELCAST_VOD_LIVE_LOOP): expected true or false"
        );
        let err = load(&sources(
            &file,
            &[],
            vec![Override::new("ip", "1.2.3", "--ip")],
        ))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid value \"1.2.3\" for ip (from flag --ip): expected an IP address such as 203.0.113.7, or several separated by commas (203.0.113.7,10.0.0.5,2001:db8::7)"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn host_credentials_from_a_file_are_hidden_in_the_summary() {
        let (dir, file) = setup("s3hosts", "");
        let text = format!(
            "{}aws_s3_credentials.minio.local\\:9000=r;key;verysecret\n\
             aws_s3_credentials.other.local=r;key;secret2\n",
            media_line(&dir)
        );
        std::fs::write(&file, text).unwrap();
        let loaded = load(&sources(&file, &[], vec![])).unwrap();
        let summary = loaded.summary();
        assert!(!summary.contains("verysecret"), "{summary}");
        assert!(
            summary.contains("aws_s3_credentials.minio.local:9000 = <hidden> ("),
            "{summary}"
        );
        assert!(summary.contains("aws_s3_credentials.other.local = <hidden> ("));
        let creds = &loaded.settings.aws_s3_host_credentials;
        assert_eq!(creds["minio.local:9000"].secret_access_key, "verysecret");
    }

    #[test]
    fn secrets_never_shown() {
        let mut s = Settings::default();
        let err = s
            .set("aws_s3_credentials", "region;xyzzy", &Origin::Default)
            .unwrap_err();
        assert!(!err.to_string().contains("xyzzy"), "{err}");
        s.set("aws_s3_credentials", "r;k;topsecret", &Origin::Default)
            .unwrap();
        assert!(!format!("{s:?}").contains("topsecret"));
        let loaded = Loaded {
            settings: s,
            config_file: None,
            origins: BTreeMap::new(),
            ignored: Vec::new(),
        };
        assert!(!loaded.summary().contains("topsecret"));
        assert!(loaded.summary().contains("aws_s3_credentials = <hidden>"));
    }

    #[test]
    fn missing_required_config_file() {
        let dir = temp_dir("nofile");
        let file = dir.join("absent.properties");
        let err = load(&sources(&file, &[], vec![])).unwrap_err();
        assert!(matches!(err, ConfigError::ReadFile { .. }));
        assert_eq!(
            err.to_string(),
            format!(
                "cannot read config file {}: No such file or directory",
                file.display()
            )
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn optional_config_file_may_be_absent() {
        let dir = temp_dir("optfile");
        std::fs::create_dir(dir.join("media")).unwrap();
        let src = Sources {
            config_file: ConfigFile::IfExists(dir.join("flashphoner.properties")),
            env: vec![(
                "REELCAST_MEDIA_DIR".into(),
                dir.join("media").display().to_string(),
            )],
            overrides: vec![],
        };
        let loaded = load(&src).unwrap();
        assert_eq!(loaded.config_file, None);
        assert_eq!(loaded.settings.media_dir, dir.join("media"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn media_dir_errors() {
        let (dir, file) = setup("mediadir", "");
        let missing = dir.join("nope");
        std::fs::write(&file, format!("media_dir={}\n", missing.display())).unwrap();
        let err = load(&sources(&file, &[], vec![])).unwrap_err();
        assert!(matches!(err, ConfigError::MediaDirMissing { .. }), "{err}");
        assert!(err
            .to_string()
            .contains(&format!("{} line 1", file.display())));

        let not_dir = dir.join("plain");
        std::fs::write(&not_dir, b"x").unwrap();
        let err = load(&sources(
            &file,
            &[],
            vec![Override::new(
                "media_dir",
                &not_dir.display().to_string(),
                "--media-dir",
            )],
        ))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "media_dir {} (from flag --media-dir) is not a directory",
                not_dir.display()
            )
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bad_set_argument() {
        for arg in ["novalue", "=5", " =5"] {
            let err = Override::parse_set(arg).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("invalid --set argument \"{arg}\": expected KEY=VALUE")
            );
        }
        let o = Override::parse_set("ip_local = 10.0.0.2").unwrap();
        assert_eq!(
            (o.key.as_str(), o.value.as_str()),
            ("ip_local", " 10.0.0.2")
        );
    }

    #[test]
    fn rest_auth_on_needs_users() {
        let (dir, file) = setup("auth", "");
        std::fs::write(
            &file,
            format!("{}disable_rest_auth=false\n", media_line(&dir)),
        )
        .unwrap();
        let err = load(&sources(&file, &[], vec![])).unwrap_err();
        assert!(
            matches!(err, ConfigError::RestAuthWithoutUsers { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("rest_auth_users"), "{err}");
        let loaded = load(&sources(
            &file,
            &[("REELCAST_REST_AUTH_USERS", "admin:secret")],
            vec![],
        ))
        .unwrap();
        assert!(!loaded.settings.disable_rest_auth);
        assert_eq!(loaded.settings.rest_auth_users[0].name, "admin");
        assert!(loaded.summary().contains("rest_auth_users = <hidden>"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn hls_https_port_needs_a_certificate() {
        assert_eq!(Settings::default().hls_https_port, None);
        let (dir, file) = setup("hls-tls", "");
        std::fs::write(&file, format!("{}hls.https.port=8445\n", media_line(&dir))).unwrap();
        let err = load(&sources(&file, &[], vec![])).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "hls.https.port (from {} line 2) needs a certificate: set https.cert and https.key",
                file.display()
            )
        );
        let loaded = load(&sources(
            &file,
            &[],
            vec![
                Override::parse_set("https.cert=/x/cert.pem").unwrap(),
                Override::parse_set("https.key=/x/key.pem").unwrap(),
            ],
        ))
        .unwrap();
        assert_eq!(loaded.settings.hls_https_port, Some(8445));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn tls_keys_default_ports_and_pairing() {
        let s = Settings::default();
        assert_eq!((s.https_port, s.wss_port), (8444, 8443));
        assert_eq!((s.https_cert.as_ref(), s.https_key.as_ref()), (None, None));
        let (dir, file) = setup("tls", "");
        std::fs::write(
            &file,
            format!("{}https.cert=/x/cert.pem\n", media_line(&dir)),
        )
        .unwrap();
        let err = load(&sources(&file, &[], vec![])).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "TLS needs both https.cert and https.key: https.cert is set (from {} line 2), https.key is not",
                file.display()
            )
        );
        let loaded = load(&sources(
            &file,
            &[],
            vec![
                Override::parse_set("https.key=/x/key.pem").unwrap(),
                Override::parse_set("wss.port=9443").unwrap(),
            ],
        ))
        .unwrap();
        assert_eq!(loaded.settings.https_key, Some(PathBuf::from("/x/key.pem")));
        assert_eq!(loaded.settings.wss_port, 9443);
        let mut s = Settings::default();
        assert!(s.set("https.port", "0", &Origin::Default).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn properties_file_in_latin1_and_with_bom() {
        let (dir, file) = setup("latin1", "");
        let mut bytes = b"\xef\xbb\xbf".to_vec();
        bytes.extend_from_slice(media_line(&dir).as_bytes());
        std::fs::write(&file, &bytes).unwrap();
        assert!(load(&sources(&file, &[], vec![])).is_ok(), "BOM is skipped");
        let mut bytes = b"comment_key=caf\xe9\n".to_vec();
        bytes.extend_from_slice(media_line(&dir).as_bytes());
        std::fs::write(&file, &bytes).unwrap();
        assert!(
            load(&sources(&file, &[], vec![])).is_ok(),
            "latin-1 accepted"
        );
        assert_eq!(decode_text(b"caf\xe9".to_vec()), "café");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
