//! Principals: who may sign requests (access keys and their secrets) and how a new key is made
//! and kept for `hoard serve`.

use std::collections::HashMap;
use std::path::Path;

use crate::error::S3Result;
use crate::s3_error;

/// Access keys and their secrets.
#[derive(Clone, Debug)]
pub struct Credentials {
    users: HashMap<String, String>,
}

impl Credentials {
    /// One user.
    pub fn single(access_key: &str, secret_key: &str) -> Self {
        Credentials {
            users: HashMap::from([(access_key.to_string(), secret_key.to_string())]),
        }
    }

    /// The secret of `access_key`.
    ///
    /// Errors: InvalidAccessKeyId (403).
    pub fn secret(&self, access_key: &str) -> S3Result<&str> {
        self.users
            .get(access_key)
            .map(String::as_str)
            .ok_or_else(|| {
                s3_error!(
                    InvalidAccessKeyId,
                    FORBIDDEN,
                    "the access key ID {access_key} does not exist in our records"
                )
            })
    }

    /// A new random access key (20 characters, `HK` + upper-case hex) and secret key (40
    /// lower-case hex characters, 160 bits from the OS random source via UUID v4).
    pub fn generate() -> (String, String) {
        let access = format!(
            "HK{}",
            &uuid::Uuid::new_v4().simple().to_string()[..18].to_uppercase()
        );
        let secret = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        (access, secret)
    }

    /// Credentials from `HOARD_ACCESS_KEY`/`HOARD_SECRET_KEY`, else from `dir/credentials`,
    /// else newly generated and stored there (mode 0600). Returns them and where they came from.
    pub fn load_or_create(dir: &Path) -> std::io::Result<(Self, String, String, &'static str)> {
        if let (Ok(a), Ok(s)) = (
            std::env::var("HOARD_ACCESS_KEY"),
            std::env::var("HOARD_SECRET_KEY"),
        ) {
            if !a.is_empty() && !s.is_empty() {
                return Ok((Self::single(&a, &s), a, s, "environment"));
            }
        }
        let path = dir.join("credentials");
        if let Ok(text) = std::fs::read_to_string(&path) {
            let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
            if let (Some(a), Some(s)) = (lines.next(), lines.next()) {
                return Ok((Self::single(a, s), a.to_string(), s.to_string(), "stored"));
            }
        }
        let (access, secret) = Self::generate();
        std::fs::create_dir_all(dir)?;
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&path)?;
            writeln!(f, "{access}\n{secret}")?;
            f.sync_all()?;
        }
        Ok((Self::single(&access, &secret), access, secret, "generated"))
    }
}
