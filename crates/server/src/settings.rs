//! Loading the configuration: defaults, then the optional TOML file, then `OPPIDUM_SECTION__KEY`
//! environment variables; any key `x_file` (or `OPPIDUM_…__X_FILE`) is replaced by the contents
//! of that file, for secrets. Every problem is reported at once. Also generates the secrets a
//! fresh data directory needs.

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use figment::value::{Dict, Value};
use oppidum_core::config::{Config, Secret};

/// Loads and validates. `Err` holds every problem found.
pub fn load(path: Option<&Path>) -> Result<Config, Vec<String>> {
    let config = parse(path)?;
    let mut problems = config.problems();
    if let Err(err) = tracing_subscriber::EnvFilter::try_new(&config.log.level) {
        problems.push(format!("log.level: `{}` is not a valid filter ({err})", config.log.level));
    }
    if problems.is_empty() { Ok(config) } else { Err(problems) }
}

/// Reads the sources into a [`Config`], without the semantic checks.
pub fn parse(path: Option<&Path>) -> Result<Config, Vec<String>> {
    let mut figment = Figment::new();
    if let Some(path) = path {
        if !path.is_file() {
            return Err(vec![format!("config file {} does not exist or is not a file", path.display())]);
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    figment = figment.merge(
        Env::prefixed("OPPIDUM_")
            .filter(|key| {
                let key = key.as_str().to_ascii_lowercase();
                key != "config" && !key.starts_with("test_")
            })
            .split("__"),
    );
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
        let config = parse(Some(&toml)).expect("parses");
        assert_eq!(config.secrets.master_key.expect("set").expose(), "k".repeat(40));
    }

    #[test]
    fn settings_reject_unknown_keys_and_missing_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let toml = dir.path().join("oppidum.toml");
        std::fs::write(&toml, "[http]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n").expect("write");
        let problems = parse(Some(&toml)).expect_err("unknown key");
        assert!(problems[0].contains("lisen"), "{problems:?}");
        assert!(parse(Some(&dir.path().join("missing.toml"))).is_err());
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
