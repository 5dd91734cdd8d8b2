//! Loading the configuration: defaults, then the optional TOML file, then `OPPIDUM_SECTION__KEY`
//! environment variables; any key `x_file` (or `OPPIDUM_…__X_FILE`) is replaced by the contents
//! of that file, for secrets. Every problem is reported at once. Also generates the secrets a
//! fresh data directory needs.

use std::path::Path;

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Value};
use oppidum_core::config::{Config, Secret};

/// A configuration read from its sources, with what was ignored on the way.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    /// Environment variables under `OPPIDUM_` that name no setting (Kubernetes service links
    /// such as `OPPIDUM_PORT`, scripts' own variables): ignored, to be logged as warnings.
    pub warnings: Vec<String>,
}

/// Loads and validates. `Err` holds every problem found.
pub fn load(path: Option<&Path>) -> Result<Loaded, Vec<String>> {
    let loaded = parse(path)?;
    let mut problems = loaded.config.problems();
    if let Err(err) = tracing_subscriber::EnvFilter::try_new(&loaded.config.log.level) {
        problems.push(format!("log.level: `{}` is not a valid filter ({err})", loaded.config.log.level));
    }
    if problems.is_empty() { Ok(loaded) } else { Err(problems) }
}

/// Reads the sources into a [`Config`], without the semantic checks. Unknown keys in the file are
/// errors; unknown environment variables are left out with a warning, since the environment is
/// shared with the platform (a Kubernetes Service named `oppidum` injects `OPPIDUM_PORT`,
/// `OPPIDUM_SERVICE_HOST`, …).
pub fn parse(path: Option<&Path>) -> Result<Loaded, Vec<String>> {
    let vars: Vec<(String, String)> = std::env::vars().collect();
    parse_from(path, &vars)
}

/// [`parse`] with the environment given.
fn parse_from(path: Option<&Path>, vars: &[(String, String)]) -> Result<Loaded, Vec<String>> {
    let mut base = Figment::new();
    if let Some(path) = path {
        if !path.is_file() {
            return Err(vec![format!("config file {} does not exist or is not a file", path.display())]);
        }
        base = base.merge(Toml::file_exact(path));
    }
    // The file alone must be valid: its unknown keys stay errors.
    extract(&base)?;
    let candidates: Vec<(String, String)> = vars
        .iter()
        .filter_map(|(name, value)| {
            let key = name.strip_prefix("OPPIDUM_")?.to_ascii_lowercase();
            (key != "config" && !key.starts_with("test_") && !key.is_empty()).then(|| (name.clone(), value.clone()))
        })
        .collect();
    let mut warnings = Vec::new();
    let mut kept = Vec::new();
    for (name, value) in candidates {
        let single = env_provider(base.clone(), std::slice::from_ref(&(name.clone(), value.clone())));
        match extract(&single) {
            Err(problems) if problems.iter().any(|p| is_unknown_key(p)) => {
                warnings.push(format!("ignoring environment variable {name}: it names no setting"));
            }
            // A known setting with a bad value is reported by the full parse below.
            _ => kept.push((name, value)),
        }
    }
    let config = extract(&env_provider(base, &kept))?;
    Ok(Loaded { config, warnings })
}

/// `OPPIDUM_SECTION__KEY` variables as a figment source: lower-cased, `__` between levels,
/// values parsed as figment parses environment values (numbers, booleans, arrays, strings).
fn env_provider(figment: Figment, vars: &[(String, String)]) -> Figment {
    vars.iter().fold(figment, |figment, (name, value)| {
        let key = name.trim_start_matches("OPPIDUM_").to_ascii_lowercase().replace("__", ".");
        let value: Value = value.parse().unwrap_or_else(|never: std::convert::Infallible| match never {});
        figment.merge(Serialized::global(&key, value))
    })
}

fn is_unknown_key(problem: &str) -> bool {
    problem.contains("unknown field") || problem.contains("unknown variant")
}

/// Extracts a figment into a [`Config`], with secrets read from their `_file` paths.
fn extract(figment: &Figment) -> Result<Config, Vec<String>> {
    let value: Value = figment.extract().map_err(|err| err.into_iter().map(|e| e.to_string()).collect::<Vec<_>>())?;
    let Value::Dict(_, mut dict) = value else {
        return Err(vec!["the configuration must be a table of settings".into()]);
    };
    let mut problems = Vec::new();
    resolve_files(&mut dict, "", &mut problems);
    if !problems.is_empty() {
        return Err(problems);
    }
    let json = serde_json::to_value(&dict).map_err(|err| vec![err.to_string()])?;
    serde_path_to_error::deserialize::<_, Config>(json).map_err(|err| {
        let path = err.path().to_string();
        vec![if path == "." { err.into_inner().to_string() } else { format!("{path}: {}", err.into_inner()) }]
    })
}

/// Replaces every `key_file = "/path"` with `key = "<contents>"`.
fn resolve_files(dict: &mut Dict, prefix: &str, problems: &mut Vec<String>) {
    let file_keys: Vec<String> = dict.keys().filter(|k| k.ends_with("_file")).cloned().collect();
    for file_key in file_keys {
        let key = file_key.trim_end_matches("_file").to_owned();
        let full = format!("{prefix}{key}");
        let Some(Value::String(_, path)) = dict.remove(&file_key) else {
            problems.push(format!("{prefix}{file_key}: must be a file path"));
            continue;
        };
        if dict.contains_key(&key) {
            problems.push(format!("{full}: set both directly and through {full}_file; keep one"));
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(contents) => {
                let value = contents.trim_end_matches(['\n', '\r']).to_owned();
                dict.insert(key, Value::from(value));
            }
            Err(err) => problems.push(format!("{full}_file: cannot read {path}: {err}")),
        }
    }
    for (key, value) in dict.iter_mut() {
        if let Value::Dict(_, inner) = value {
            resolve_files(inner, &format!("{prefix}{key}."), problems);
        }
    }
}

/// The configuration as TOML, secrets redacted.
pub fn render(config: &Config) -> String {
    toml::to_string_pretty(config).unwrap_or_else(|err| format!("# cannot render configuration: {err}\n"))
}

/// Creates the data directory (mode 0700) and fills in generated secrets, stored with mode 0600 so
/// they survive restarts.
pub fn prepare_data_dir(config: &mut Config) -> Result<(), String> {
    create_private_dir(&config.data_dir)?;
    if config.secrets.master_key.is_none() {
        let path = config.secrets_dir().join("master.key");
        config.secrets.master_key = Some(Secret::new(load_or_generate_secret(&path)?));
    }
    Ok(())
}

fn create_private_dir(path: &Path) -> Result<(), String> {
    std::fs::create_dir_all(path).map_err(|err| format!("cannot create {}: {err}", path.display()))?;
    set_mode(path, 0o700)
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|err| format!("cannot restrict permissions of {}: {err}", path.display()))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> Result<(), String> {
    Ok(())
}

/// Reads the secret at `path`, or writes a new random one there (32 bytes, base64url).
pub fn load_or_generate_secret(path: &Path) -> Result<String, String> {
    if let Ok(existing) = std::fs::read_to_string(path) {
        let existing = existing.trim().to_owned();
        if existing.len() >= oppidum_core::config::MIN_SECRET_LEN {
            return Ok(existing);
        }
        return Err(format!("{} holds a secret shorter than 32 bytes; delete it to regenerate", path.display()));
    }
    if let Some(dir) = path.parent() {
        create_private_dir(dir)?;
    }
    use base64::Engine;
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    write_private(path, &secret).map_err(|err| format!("cannot write {}: {err}", path.display()))?;
    tracing::info!(path = %path.display(), "generated a new secret");
    Ok(secret)
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_file_indirection_reads_secrets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = dir.path().join("key");
        std::fs::write(&secret, "k".repeat(40) + "\n").expect("write");
        let toml = dir.path().join("oppidum.toml");
        std::fs::write(&toml, format!("[secrets]\nmaster_key_file = \"{}\"\n", secret.display())).expect("write");
        let config = parse_from(Some(&toml), &[]).expect("parses").config;
        assert_eq!(config.secrets.master_key.expect("set").expose(), "k".repeat(40));
    }

    #[test]
    fn settings_reject_unknown_keys_and_missing_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let toml = dir.path().join("oppidum.toml");
        std::fs::write(&toml, "[http]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n").expect("write");
        let problems = parse_from(Some(&toml), &[]).expect_err("unknown key");
        assert!(problems[0].contains("lisen"), "{problems:?}");
        assert!(parse_from(Some(&dir.path().join("missing.toml")), &[]).is_err());
    }

    #[test]
    fn settings_ignore_unknown_environment_variables_with_a_warning() {
        let vars: Vec<(String, String)> = [
            ("OPPIDUM_PORT", "tcp://10.0.0.7:8080"),
            ("OPPIDUM_SERVICE_HOST", "10.0.0.7"),
            ("OPPIDUM_BIN", "/usr/bin/oppidum"),
            ("OPPIDUM_HTTP__LISEN", "x"),
            ("OPPIDUM_HTTP__LISTEN", "127.0.0.1:9999"),
            ("OPPIDUM_TEST_DATABASE_URL", "postgres://x"),
            ("HOME", "/root"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let loaded = parse_from(None, &vars).expect("parses");
        assert_eq!(loaded.config.http.listen, "127.0.0.1:9999");
        assert_eq!(loaded.warnings.len(), 4, "{:?}", loaded.warnings);
        assert!(loaded.warnings.iter().any(|w| w.contains("OPPIDUM_PORT")));
        assert!(loaded.warnings.iter().any(|w| w.contains("OPPIDUM_HTTP__LISEN")));
        // A known setting with a bad value is still an error.
        let bad = vec![("OPPIDUM_HTTP__REQUEST_TIMEOUT_SECS".to_owned(), "soon".to_owned())];
        let problems = parse_from(None, &bad).expect_err("bad value");
        assert!(problems.iter().any(|p| p.contains("request_timeout_secs")), "{problems:?}");
    }

    #[test]
    fn settings_generated_secret_is_private_and_stable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secrets/master.key");
        let first = load_or_generate_secret(&path).expect("generate");
        assert!(first.len() >= 32);
        assert_eq!(load_or_generate_secret(&path).expect("load"), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }
}
