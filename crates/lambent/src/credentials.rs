//! Where the server's access keys come from: a credentials file, the
//! environment, or (when neither is given) a key pair generated once into the
//! data directory.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use api::{KeyEntry, Keyring};

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("cannot read credentials file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("credentials file {path}: {source}")]
    Invalid {
        path: PathBuf,
        source: api::auth::KeyringError,
    },
    #[error(
        "LAMBENT_ACCESS_KEY_ID is set, so LAMBENT_SECRET_ACCESS_KEY and LAMBENT_ACCOUNT_ID must be too (a 12-digit account id)"
    )]
    IncompleteEnv,
    #[error("cannot read random bytes: {0}")]
    Random(std::io::Error),
}

/// Where the keyring came from, for the start-up message.
pub enum Source {
    File(PathBuf),
    Environment,
    Generated(PathBuf),
}

pub fn random_bytes<const N: usize>() -> Result<[u8; N], CredentialsError> {
    let mut buf = [0u8; N];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(CredentialsError::Random)?;
    Ok(buf)
}

fn random_from(alphabet: &[u8], n: usize) -> Result<String, CredentialsError> {
    let bytes = random_bytes::<64>()?;
    Ok(bytes[..n]
        .iter()
        .map(|b| alphabet[*b as usize % alphabet.len()] as char)
        .collect())
}

/// Writes a file only its owner can read, replacing it atomically.
pub fn write_private(path: &Path, data: &[u8]) -> Result<(), CredentialsError> {
    let tmp = path.with_extension("tmp");
    let err = |source| CredentialsError::Write {
        path: path.to_owned(),
        source,
    };
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(err)?;
    f.write_all(data).map_err(err)?;
    f.sync_all().map_err(err)?;
    fs::rename(&tmp, path).map_err(err)
}

pub fn load(file: Option<&Path>, data_dir: &Path) -> Result<(Keyring, Source), CredentialsError> {
    if let Some(path) = file {
        let text = fs::read_to_string(path).map_err(|source| CredentialsError::Read {
            path: path.to_owned(),
            source,
        })?;
        let keyring = Keyring::from_toml(&text).map_err(|source| CredentialsError::Invalid {
            path: path.to_owned(),
            source,
        })?;
        return Ok((keyring, Source::File(path.to_owned())));
    }
    if let Ok(id) = std::env::var("LAMBENT_ACCESS_KEY_ID") {
        let secret = std::env::var("LAMBENT_SECRET_ACCESS_KEY")
            .map_err(|_| CredentialsError::IncompleteEnv)?;
        let account = std::env::var("LAMBENT_ACCOUNT_ID")
            .ok()
            .and_then(|a| model::AccountId::parse(&a).ok())
            .ok_or(CredentialsError::IncompleteEnv)?;
        let keyring = Keyring::new(vec![KeyEntry {
            access_key_id: id,
            secret_access_key: secret,
            account_id: account,
            session_token: None,
        }])
        .map_err(|source| CredentialsError::Invalid {
            path: PathBuf::from("(environment)"),
            source,
        })?;
        return Ok((keyring, Source::Environment));
    }
    let path = data_dir.join("credentials.toml");
    if !path.exists() {
        const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        const SECRET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let id = format!("AKIA{}", random_from(UPPER, 16)?);
        let secret = random_from(SECRET, 40)?;
        let account = format!(
            "{}{}",
            1 + random_bytes::<1>()?[0] % 9,
            random_from(b"0123456789", 11)?
        );
        let text = format!(
            "# Access keys accepted by this Lambent server. Each key belongs to one account.\n\
             [[key]]\naccess_key_id = \"{id}\"\nsecret_access_key = \"{secret}\"\naccount_id = \"{account}\"\n"
        );
        write_private(&path, text.as_bytes())?;
        let keyring = Keyring::from_toml(&text).map_err(|source| CredentialsError::Invalid {
            path: path.clone(),
            source,
        })?;
        return Ok((keyring, Source::Generated(path)));
    }
    let text = fs::read_to_string(&path).map_err(|source| CredentialsError::Read {
        path: path.clone(),
        source,
    })?;
    let keyring = Keyring::from_toml(&text).map_err(|source| CredentialsError::Invalid {
        path: path.clone(),
        source,
    })?;
    Ok((keyring, Source::File(path)))
}

/// The first key of a credentials file, for the start-up hint.
pub fn first_key(path: &Path) -> Option<(String, String)> {
    let text = fs::read_to_string(path).ok()?;
    let mut id = None;
    let mut secret = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(v) = line.strip_prefix("access_key_id = ") {
            id.get_or_insert_with(|| v.trim_matches('"').to_owned());
        }
        if let Some(v) = line.strip_prefix("secret_access_key = ") {
            secret.get_or_insert_with(|| v.trim_matches('"').to_owned());
        }
    }
    Some((id?, secret?))
}
