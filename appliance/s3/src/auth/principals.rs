//! Principals: who may sign requests. An access key belongs to an account; buckets and uploads
//! are owned by the account, never by a key string, so rotating a key keeps every bucket. The
//! store's root account is created once and kept in the store (setting `s3-root-account`); the
//! configured key maps to it and is its administrator. (Issue "Tenancy" adds users and more
//! accounts on this.)

use std::collections::HashMap;
use std::path::Path;

use hoard::Store;

use crate::error::S3Result;
use crate::s3_error;

/// Store setting holding the root account's ID.
pub const ROOT_ACCOUNT_SETTING: &str = "s3-root-account";

/// What an access key stands for.
#[derive(Clone, Debug)]
pub struct Principal {
    /// Secret access key.
    secret: String,
    /// Account the key belongs to (12 decimal digits, as AWS account IDs).
    pub account_id: String,
    /// May call Hoard's admin requests (`/_hoard/*`).
    pub admin: bool,
}

/// Access keys and what they stand for.
#[derive(Clone, Debug)]
pub struct Credentials {
    users: HashMap<String, Principal>,
    root_account_id: String,
}

impl Credentials {
    /// One key: the administrator of the root account `account_id`.
    pub fn single(access_key: &str, secret_key: &str, account_id: &str) -> Self {
        Credentials {
            users: HashMap::from([(
                access_key.to_string(),
                Principal {
                    secret: secret_key.to_string(),
                    account_id: account_id.to_string(),
                    admin: true,
                },
            )]),
            root_account_id: account_id.to_string(),
        }
    }

    /// The key's principal.
    ///
    /// Errors: InvalidAccessKeyId (403).
    pub fn principal(&self, access_key: &str) -> S3Result<&Principal> {
        self.users.get(access_key).ok_or_else(|| {
            s3_error!(
                InvalidAccessKeyId,
                FORBIDDEN,
                "the access key ID {access_key} does not exist in our records"
            )
        })
    }

    /// The secret of `access_key`.
    ///
    /// Errors: InvalidAccessKeyId (403).
    pub fn secret(&self, access_key: &str) -> S3Result<&str> {
        self.principal(access_key).map(|p| p.secret.as_str())
    }

    /// The account that owns a bucket or upload recorded with `owner`. Stores written before
    /// accounts existed recorded the creating access key instead: those belong to the root
    /// account (they had one user).
    pub fn owning_account<'a>(&'a self, owner: &'a str) -> &'a str {
        if is_account_id(owner) {
            owner
        } else {
            &self.root_account_id
        }
    }

    /// The store's root account ID, created (12 random decimal digits) and kept in the store on
    /// first use.
    ///
    /// Errors: metadata reads and writes.
    pub fn root_account_id(store: &Store) -> hoard::Result<String> {
        if let Some(v) = store.setting(ROOT_ACCOUNT_SETTING)? {
            let id = String::from_utf8_lossy(&v).into_owned();
            if is_account_id(&id) {
                return Ok(id);
            }
        }
        let n = u128::from_le_bytes(*uuid::Uuid::new_v4().as_bytes()) % 1_000_000_000_000;
        let id = format!("{n:012}");
        store.put_setting(ROOT_ACCOUNT_SETTING, id.as_bytes())?;
        Ok(id)
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

    /// The key pair from `HOARD_ACCESS_KEY`/`HOARD_SECRET_KEY`, else from `dir/credentials`,
    /// else newly generated and stored there (mode 0600): (access key, secret key, where from:
    /// `environment`, `stored` or `generated`).
    pub fn load_or_create(dir: &Path) -> std::io::Result<(String, String, &'static str)> {
        if let (Ok(a), Ok(s)) = (
            std::env::var("HOARD_ACCESS_KEY"),
            std::env::var("HOARD_SECRET_KEY"),
        ) {
            if !a.is_empty() && !s.is_empty() {
                return Ok((a, s, "environment"));
            }
        }
        let path = dir.join("credentials");
        if let Ok(text) = std::fs::read_to_string(&path) {
            let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
            if let (Some(a), Some(s)) = (lines.next(), lines.next()) {
                return Ok((a.to_string(), s.to_string(), "stored"));
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
        Ok((access, secret, "generated"))
    }
}

/// Whether `s` has the form of an account ID (12 decimal digits).
pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// A secret shown without its body (`wJal…EKEY`), for logs and consoles after first generation.
pub fn masked(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() < 12 {
        return "…".into();
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}
