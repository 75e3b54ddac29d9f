//! The token cache: one file per profile in the user's cache directory, readable by the user
//! alone (mode 0600; a broader file is refused), written atomically (a temporary file renamed
//! over the old one), so two `oauth` processes never see half a file.
//!
//! Another user must not be able to redirect what is written: a directory that others may
//! write to is refused (they could replace the file or plant links in it), so is a cache file
//! that is a symbolic link, and the temporary file has a random name and is created only if
//! nothing (not even a dangling link) is there yet.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use oauth_ureq::TokenResponse;
use serde::{Deserialize, Serialize};

use crate::CliError;

/// What is kept of a token response.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Cached {
    pub(crate) access_token: String,
    pub(crate) token_type: String,
    /// Seconds since the epoch; none when the server gave no `expires_in`.
    pub(crate) expires_at: Option<u64>,
    pub(crate) refresh_token: Option<String>,
    pub(crate) scope: Option<String>,
}

/// A token is reused until this long before it expires.
pub(crate) const MARGIN: Duration = Duration::from_secs(30);

impl Cached {
    pub(crate) fn from_response(token: &TokenResponse) -> Self {
        Self {
            access_token: token.access_token().expose_secret().to_owned(),
            token_type: token.access_token().token_type().as_str().to_owned(),
            expires_at: token
                .expires_at()
                .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                .map(|d| d.as_secs()),
            refresh_token: token.refresh_token().map(|r| r.expose_secret().to_owned()),
            scope: token.scope().map(|s| s.as_str().to_owned()),
        }
    }

    /// Whether the access token is still good for a while at `now`. A token without an expiry
    /// is reused (the pages say: until it is refused).
    pub(crate) fn fresh(&self, now: SystemTime) -> bool {
        let now = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        self.expires_at
            .is_none_or(|exp| exp > now.saturating_add(MARGIN.as_secs()))
    }

    /// The cached token as a token response (for seeding a token source), if still usable.
    pub(crate) fn to_response(&self, now: SystemTime) -> Option<TokenResponse> {
        let mut body = serde_json::json!({
            "access_token": self.access_token,
            "token_type": self.token_type,
        });
        if let Some(exp) = self.expires_at {
            let now_s = now
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default();
            body["expires_in"] = exp.saturating_sub(now_s).into();
        }
        if let Some(r) = &self.refresh_token {
            body["refresh_token"] = r.clone().into();
        }
        if let Some(s) = &self.scope {
            body["scope"] = s.clone().into();
        }
        let response = oauth_ureq::http::Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(body.to_string().into_bytes())
            .ok()?;
        oauth_core::parse_token_response(&response, now).ok()
    }
}

/// The cache directory: `$OAUTH_CACHE_DIR`, else the platform's user cache directory + `oauth`.
pub(crate) fn dir() -> Result<PathBuf, CliError> {
    if let Some(d) = std::env::var_os("OAUTH_CACHE_DIR") {
        return Ok(PathBuf::from(d));
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let base = if cfg!(target_os = "macos") {
        home.map(|h| h.join("Library/Caches"))
    } else if cfg!(windows) {
        std::env::var_os("LOCALAPPDATA").map(PathBuf::from)
    } else {
        std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| home.map(|h| h.join(".cache")))
    };
    base.map(|b| b.join("oauth"))
        .ok_or_else(|| CliError::config("no cache directory: set OAUTH_CACHE_DIR or HOME"))
}

pub(crate) fn path(name: &str) -> Result<PathBuf, CliError> {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok(dir()?.join(format!("{safe}.json")))
}

/// Reads the cache entry `name`; `None` if there is none (or it is unreadable JSON, which is
/// then replaced). A file others may read, a file that is a symbolic link and a directory
/// others may write to are errors.
pub(crate) fn load(name: &str) -> Result<Option<Cached>, CliError> {
    let path = path(name)?;
    if let Some(dir) = path.parent() {
        match fs::metadata(dir) {
            Ok(_) => check_dir(dir)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(CliError::config(format!(
                    "cannot read the cache directory {}: {e}",
                    dir.display()
                )));
            }
        }
    }
    if !check_not_a_link(&path)? {
        return Ok(None);
    }
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(CliError::config(format!(
                "cannot read the token cache {}: {e}",
                path.display()
            )));
        }
    };
    check_private(&path)?;
    Ok(serde_json::from_slice(&bytes).ok())
}

#[cfg(unix)]
fn check_private(path: &Path) -> Result<(), CliError> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0o600);
    if mode & 0o077 != 0 {
        return Err(CliError::config(format!(
            "the token cache {} can be read by others (mode {mode:o}): run `chmod 600 {}` or delete it",
            path.display(),
            path.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_: &Path) -> Result<(), CliError> {
    Ok(())
}

/// Refuses a cache directory that others may write to: they could swap the cache file for
/// their own or for a link. (The directory itself may be a link, as `~/.cache` often is; what
/// it leads to is checked.)
#[cfg(unix)]
fn check_dir(dir: &Path) -> Result<(), CliError> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = fs::metadata(dir)
        .map(|m| m.permissions().mode() & 0o7777)
        .map_err(|e| {
            CliError::config(format!(
                "cannot read the cache directory {}: {e}",
                dir.display()
            ))
        })?;
    if mode & 0o022 != 0 {
        return Err(CliError::config(format!(
            "the cache directory {} can be written by others (mode {mode:o}): run `chmod 700 {}` \
             or set OAUTH_CACHE_DIR to a directory of your own",
            dir.display(),
            dir.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_dir(_: &Path) -> Result<(), CliError> {
    Ok(())
}

/// Refuses a cache file that is a symbolic link (reading or replacing it would act on what it
/// points to, which someone else may have chosen). True if there is a file, false if none.
fn check_not_a_link(path: &Path) -> Result<bool, CliError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(CliError::config(format!(
            "the token cache {} is a symbolic link: delete it (`rm {}`)",
            path.display(),
            path.display()
        ))),
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(CliError::config(format!(
            "cannot read the token cache {}: {e}",
            path.display()
        ))),
    }
}

/// Writes the cache entry `name` (mode 0600, atomically).
pub(crate) fn store(name: &str, entry: &Cached) -> Result<(), CliError> {
    let path = path(name)?;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    create_private_dir(&dir)?;
    check_dir(&dir)?;
    check_not_a_link(&path)?;
    let failed = |e: std::io::Error| {
        CliError::config(format!(
            "cannot write the token cache {}: {e}",
            path.display()
        ))
    };
    let mut random = [0u8; 12];
    oauth_core::RandomSource::fill(&oauth_ureq::SystemRandom, &mut random)
        .map_err(|e| failed(std::io::Error::other(e)))?;
    let random: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let tmp = dir.join(format!(
        ".{}.{random}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("token"),
    ));
    let json = serde_json::to_vec(entry).map_err(|e| failed(std::io::Error::other(e)))?;
    let written = create_private_file(&tmp).and_then(|mut file| {
        file.write_all(&json)?;
        file.sync_all()
    });
    if let Err(e) = written.and_then(|()| fs::rename(&tmp, &path)) {
        let _ = fs::remove_file(&tmp);
        return Err(failed(e));
    }
    Ok(())
}

/// Creates `path` for writing, mode 0600, only if nothing is there: no existing file is
/// truncated and no symbolic link followed (O_CREAT | O_EXCL refuses a link, even a dangling
/// one; O_NOFOLLOW says so again).
fn create_private_file(path: &Path) -> std::io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    options.open(path)
}

fn create_private_dir(dir: &Path) -> Result<(), CliError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| {
        CliError::config(format!(
            "cannot create the cache directory {}: {e}",
            dir.display()
        ))
    })
}

/// Deletes the cache entry `name`; true if there was one.
pub(crate) fn remove(name: &str) -> Result<bool, CliError> {
    match fs::remove_file(path(name)?) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(CliError::config(format!(
            "cannot delete the token cache: {e}"
        ))),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_private_file_is_never_created_through_a_link() {
        let dir = std::env::temp_dir().join(format!("oauth-cli-cache-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let target = dir.join("target");
        fs::write(&target, "mine").unwrap();
        for (link, to) in [("link", target.clone()), ("dangling", dir.join("nothing"))] {
            std::os::unix::fs::symlink(&to, dir.join(link)).unwrap();
            assert!(create_private_file(&dir.join(link)).is_err(), "{link}");
        }
        assert_eq!(fs::read_to_string(&target).unwrap(), "mine");
        assert!(!dir.join("nothing").exists());
        // An existing file is not truncated either.
        assert!(create_private_file(&target).is_err());
        assert_eq!(fs::read_to_string(&target).unwrap(), "mine");
        let _ = fs::remove_dir_all(&dir);
    }
}
