//! Principals: who may sign requests. Accounts (tenants) own buckets; users belong to an
//! account; each user has access keys. Buckets and uploads are owned by the account, never by
//! a key string, so rotating a key keeps every bucket.
//!
//! - The **root account** is created once and kept in the store (setting `s3-root-account`).
//!   The configured key (`hoard serve`'s credentials file or environment, the appliance's
//!   boot parameters or stored key) is its user `root`, an administrator.
//! - **The directory** of other accounts, users and keys is kept in store settings, one
//!   record per entity, as JSON: `iam/a/<account ID>`, `iam/u/<account ID>/<user>`,
//!   `iam/k/<access key ID>`. A key record holds its secret sealed ([`super::seal`]), never in
//!   plain text; the secret is shown once, when the key is made. Every change is one metadata
//!   commit, serialised by one lock, and applied to the in-memory lookup only after it is
//!   durable.
//! - **Administrators** (the root user, and users made with `admin`) may call the admin
//!   requests, which manage the directory for every account.
//! - **Temporary credentials** (as STS issues): a key, a secret and a session token with an
//!   expiry. A request signed with the key must carry the token (`x-amz-security-token`, or
//!   `X-Amz-Security-Token` in a presigned URL); only the token's SHA-256 is stored. Past
//!   the expiry the key answers `ExpiredToken`; expired keys are dropped at the next change.
//! - A key that is inactive (disabled, or rotated out) answers `InvalidAccessKeyId`, as S3
//!   does for an inactive key.
//!
//! Must not import `ops`, `request`, `state`, `body` or `server`, nor the authorization files
//! (`access`, `acl`, `policy`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use hoard::Store;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::seal::Sealer;
use crate::error::S3Result;
use crate::s3_error;

/// Store setting holding the root account's ID.
pub const ROOT_ACCOUNT_SETTING: &str = "s3-root-account";
/// Name of the root account and of its configured user.
pub const ROOT_NAME: &str = "root";
/// Prefix of the directory's settings.
const DIRECTORY_PREFIX: &str = "iam/";
/// Shortest and longest life of a temporary credential, in seconds (AWS STS allows 900 s to
/// 36 h for GetSessionToken; Hoard allows shorter lives too, for tests and one-off scripts).
pub const TEMPORARY_SECONDS: std::ops::RangeInclusive<u64> = 1..=129_600;
/// Most access keys one user may hold at once (AWS IAM allows 2; a rotation briefly needs
/// both, and Hoard keeps disabled keys until they are deleted).
pub const MAX_KEYS_PER_USER: usize = 8;

/// An account (tenant): owns buckets.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Account {
    /// 12 decimal digits, as AWS account IDs.
    pub id: String,
    /// Unique name (IAM's character set, 1 to 64 characters).
    pub name: String,
    /// When it was made (Unix milliseconds; 0 for the root account).
    pub created_unix_ms: u64,
}

/// A user of an account.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct User {
    /// The account it belongs to.
    pub account_id: String,
    /// Unique within the account (IAM's character set, 1 to 64 characters).
    pub name: String,
    /// May call the admin requests.
    pub admin: bool,
    /// When it was made (Unix milliseconds).
    pub created_unix_ms: u64,
}

/// Whether an access key may sign requests.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum KeyStatus {
    /// It may.
    Active,
    /// It may not (disabled or rotated out); it can be enabled again or deleted.
    Inactive,
}

/// An access key as the admin requests show it (never with its secret).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyInfo {
    /// Access key ID (20 characters).
    pub access_key: String,
    /// The account of its user.
    pub account_id: String,
    /// Its user.
    pub user: String,
    /// Active or Inactive.
    pub status: KeyStatus,
    /// When it was made (Unix milliseconds).
    pub created_unix_ms: u64,
    /// For a temporary credential: when it expires (Unix milliseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_unix_ms: Option<u64>,
}

/// A key record as stored: the info, the sealed secret and, for a temporary credential, the
/// SHA-256 (hex) of its session token.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct StoredKey {
    #[serde(flatten)]
    info: KeyInfo,
    sealed_secret: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    session_token_sha256: Option<String>,
}

/// A key made by an admin request: its info and, this once, its secret (and session token).
#[derive(Clone, Debug, Serialize)]
pub struct NewKey {
    /// The key.
    #[serde(flatten)]
    pub info: KeyInfo,
    /// Secret access key (40 characters).
    pub secret_key: String,
    /// For a temporary credential: the session token to send as `x-amz-security-token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_token: Option<String>,
}

/// What an access key stands for, as request authentication needs it.
#[derive(Clone, Debug)]
pub struct Principal {
    /// Secret access key.
    secret: String,
    /// Account the key belongs to (12 decimal digits).
    pub account_id: String,
    /// User the key belongs to.
    pub user: String,
    /// May call Hoard's admin requests (`/_hoard/*`).
    pub admin: bool,
    status: KeyStatus,
    /// Temporary credential: SHA-256 of the session token and the expiry (Unix ms).
    session: Option<([u8; 32], u64)>,
}

#[derive(Default)]
struct Directory {
    accounts: BTreeMap<String, Account>,
    users: BTreeMap<(String, String), User>,
    keys: BTreeMap<String, StoredKey>,
}

struct Inner {
    /// Where the directory is kept (`None`: the configured key only, for unit tests).
    store: Option<Store>,
    sealer: Option<Sealer>,
    root_account_id: String,
    root_access_key: String,
    /// Access key -> principal, for every key that exists (the configured one too).
    lookup: RwLock<HashMap<String, Principal>>,
    directory: RwLock<Directory>,
    /// Serialises changes, so each reads the directory it replaces.
    change: Mutex<()>,
}

/// Access keys and what they stand for: the configured root key and the directory. Cheap to
/// clone (shared).
#[derive(Clone)]
pub struct Credentials {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("root_account_id", &self.inner.root_account_id)
            .field("keys", &self.inner.lookup.read().len())
            .finish()
    }
}

fn root_principal(secret: &str, account_id: &str) -> Principal {
    Principal {
        secret: secret.to_string(),
        account_id: account_id.to_string(),
        user: ROOT_NAME.to_string(),
        admin: true,
        status: KeyStatus::Active,
        session: None,
    }
}

fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn account_record(id: &str) -> String {
    format!("{DIRECTORY_PREFIX}a/{id}")
}

fn user_record(account_id: &str, name: &str) -> String {
    format!("{DIRECTORY_PREFIX}u/{account_id}/{name}")
}

fn key_record(access_key: &str) -> String {
    format!("{DIRECTORY_PREFIX}k/{access_key}")
}

fn json<T: Serialize>(v: &T) -> Option<Vec<u8>> {
    Some(serde_json::to_vec(v).expect("directory records serialise"))
}

/// Checks an account or user name: IAM's rule, 1 to 64 of `A-Za-z0-9+=,.@_-`.
///
/// Errors: InvalidArgument naming the name.
pub fn check_name(what: &str, name: &str) -> S3Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
    if !ok {
        return Err(s3_error!(
            InvalidArgument,
            BAD_REQUEST,
            "{what} name {name:?} must be 1 to 64 characters of A-Z a-z 0-9 + = , . @ _ -"
        ));
    }
    Ok(())
}

fn sha256(s: &str) -> [u8; 32] {
    sha2::Sha256::digest(s.as_bytes()).into()
}

impl Credentials {
    /// The configured key only: the administrator of the root account `account_id`. Nothing
    /// can be added (the directory needs a store).
    pub fn single(access_key: &str, secret_key: &str, account_id: &str) -> Self {
        Credentials {
            inner: Arc::new(Inner {
                store: None,
                sealer: None,
                root_account_id: account_id.to_string(),
                root_access_key: access_key.to_string(),
                lookup: RwLock::new(HashMap::from([(
                    access_key.to_string(),
                    root_principal(secret_key, account_id),
                )])),
                directory: RwLock::new(Directory::default()),
                change: Mutex::new(()),
            }),
        }
    }

    /// The configured key (the root account's user `root`, an administrator) and the
    /// directory kept in `store`; secrets open with the store's secrets key. Makes the root
    /// account on first use.
    ///
    /// Errors: metadata errors; a directory record that does not parse or whose secret does
    /// not open (named).
    pub fn open(store: &Store, access_key: &str, secret_key: &str) -> hoard::Result<Self> {
        let account_id = Self::root_account_id(store)?;
        let sealer = Sealer::new(&store.secrets_key());
        let mut directory = Directory::default();
        let mut lookup = HashMap::from([(
            access_key.to_string(),
            root_principal(secret_key, &account_id),
        )]);
        let corrupt = |name: &str, e: String| hoard::Error::MetadataUnavailable {
            detail: format!("S3 directory record {name}: {e}"),
        };
        let now = now_unix_ms();
        for (name, value) in store.settings_with_prefix(DIRECTORY_PREFIX)? {
            let rest = &name[DIRECTORY_PREFIX.len()..];
            if rest.starts_with("a/") {
                let a: Account =
                    serde_json::from_slice(&value).map_err(|e| corrupt(&name, e.to_string()))?;
                directory.accounts.insert(a.id.clone(), a);
            } else if rest.starts_with("u/") {
                let u: User =
                    serde_json::from_slice(&value).map_err(|e| corrupt(&name, e.to_string()))?;
                directory
                    .users
                    .insert((u.account_id.clone(), u.name.clone()), u);
            } else if rest.starts_with("k/") {
                let k: StoredKey =
                    serde_json::from_slice(&value).map_err(|e| corrupt(&name, e.to_string()))?;
                if k.info.expires_unix_ms.is_some_and(|t| t <= now) {
                    continue; // expired: dropped at the next change
                }
                directory.keys.insert(k.info.access_key.clone(), k);
            }
        }
        for k in directory.keys.values() {
            let secret = sealer
                .open(&k.sealed_secret, &key_record(&k.info.access_key))
                .map_err(|e| corrupt(&key_record(&k.info.access_key), e))?;
            let admin = directory
                .users
                .get(&(k.info.account_id.clone(), k.info.user.clone()))
                .is_some_and(|u| u.admin);
            lookup.insert(
                k.info.access_key.clone(),
                principal_of(k, secret, admin).map_err(|e| corrupt("key", e))?,
            );
        }
        Ok(Credentials {
            inner: Arc::new(Inner {
                store: Some(store.clone()),
                sealer: Some(sealer),
                root_account_id: account_id,
                root_access_key: access_key.to_string(),
                lookup: RwLock::new(lookup),
                directory: RwLock::new(directory),
                change: Mutex::new(()),
            }),
        })
    }

    /// The key's principal, if the key exists and is active.
    ///
    /// Errors: InvalidAccessKeyId (403).
    pub fn principal(&self, access_key: &str) -> S3Result<Principal> {
        match self.inner.lookup.read().get(access_key) {
            Some(p) if p.status == KeyStatus::Active => Ok(p.clone()),
            _ => Err(s3_error!(
                InvalidAccessKeyId,
                FORBIDDEN,
                "the access key ID {access_key} does not exist in our records or is not active"
            )),
        }
    }

    /// The secret of `access_key`, if the key exists and is active.
    ///
    /// Errors: InvalidAccessKeyId (403).
    pub fn secret(&self, access_key: &str) -> S3Result<String> {
        self.principal(access_key).map(|p| p.secret)
    }

    /// Checks the session token a request carried (`""` if none) against its key: a
    /// temporary credential needs its own token and must not have expired; a long-term key
    /// must come without one.
    ///
    /// Errors: InvalidToken (400) for a missing or wrong token, ExpiredToken (400).
    pub fn check_session(&self, access_key: &str, token: &str, now_secs: u64) -> S3Result<()> {
        let p = self.principal(access_key)?;
        match (p.session, token.is_empty()) {
            (None, true) => Ok(()),
            (None, false) => Err(s3_error!(
                InvalidToken,
                BAD_REQUEST,
                "access key {access_key} is not a temporary credential; send no security token with it"
            )),
            (Some(_), true) => Err(s3_error!(
                InvalidToken,
                BAD_REQUEST,
                "access key {access_key} is a temporary credential; the request needs its x-amz-security-token"
            )),
            (Some((hash, expires_ms)), false) => {
                if !super::signatures_equal(&hex::encode(sha256(token)), &hex::encode(hash)) {
                    return Err(s3_error!(
                        InvalidToken,
                        BAD_REQUEST,
                        "the security token does not belong to access key {access_key}"
                    ));
                }
                if now_secs.saturating_mul(1000) >= expires_ms {
                    return Err(s3_error!(
                        ExpiredToken,
                        BAD_REQUEST,
                        "the temporary credential {access_key} expired at Unix time {} s",
                        expires_ms / 1000
                    ));
                }
                Ok(())
            }
        }
    }

    /// The account that owns a bucket or upload recorded with `owner`. Stores written before
    /// accounts existed recorded the creating access key instead: those belong to the root
    /// account (they had one user).
    pub fn owning_account<'a>(&'a self, owner: &'a str) -> &'a str {
        if is_account_id(owner) {
            owner
        } else {
            &self.inner.root_account_id
        }
    }

    /// The root account's ID.
    pub fn root_account(&self) -> &str {
        &self.inner.root_account_id
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
        let id = new_account_id();
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

    /// The key pair from `file` (the access key, then the secret key, one a line; it must not
    /// be readable by group or others), else from `HOARD_ACCESS_KEY`/`HOARD_SECRET_KEY` (which
    /// leaves the secret in the process's environment, `/proc/PID/environ`), else from
    /// `dir/credentials`, else newly generated and stored there (mode 0600): (access key,
    /// secret key, where from: `file`, `environment`, `stored` or `generated`).
    ///
    /// Errors: `file` unreadable, readable by others, or without two lines.
    pub fn load_or_create(
        dir: &Path,
        file: Option<&Path>,
    ) -> std::io::Result<(String, String, &'static str)> {
        if let Some(file) = file {
            use std::os::unix::fs::PermissionsExt;
            let bad = |why: String| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("credentials file {}: {why}", file.display()),
                )
            };
            let mode = std::fs::metadata(file)?.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(bad(format!(
                    "mode {:o} lets other users read the secret; chmod 600 it",
                    mode & 0o777
                )));
            }
            let text = std::fs::read_to_string(file)?;
            let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
            return match (lines.next(), lines.next()) {
                (Some(a), Some(s)) => Ok((a.to_string(), s.to_string(), "file")),
                _ => Err(bad(
                    "it needs the access key and the secret key, one a line".into(),
                )),
            };
        }
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

    // ---- The directory: reads ----

    /// Every account: the root account, then the others in the order they were made.
    pub fn accounts(&self) -> Vec<Account> {
        let mut out = vec![Account {
            id: self.inner.root_account_id.clone(),
            name: ROOT_NAME.into(),
            created_unix_ms: 0,
        }];
        let mut made: Vec<Account> = self
            .inner
            .directory
            .read()
            .accounts
            .values()
            .cloned()
            .collect();
        made.sort_by(|a, b| (a.created_unix_ms, &a.id).cmp(&(b.created_unix_ms, &b.id)));
        out.extend(made);
        out
    }

    /// The users of `account_id` (the root account's configured user first).
    ///
    /// Errors: NoSuchEntity.
    pub fn users(&self, account_id: &str) -> S3Result<Vec<User>> {
        self.check_account(account_id)?;
        let mut out = Vec::new();
        if account_id == self.inner.root_account_id {
            out.push(User {
                account_id: account_id.into(),
                name: ROOT_NAME.into(),
                admin: true,
                created_unix_ms: 0,
            });
        }
        let d = self.inner.directory.read();
        out.extend(
            d.users
                .values()
                .filter(|u| u.account_id == account_id)
                .cloned(),
        );
        Ok(out)
    }

    /// Access keys (never secrets), of one account if `account_id` is given; the configured
    /// root key is listed first.
    pub fn keys(&self, account_id: Option<&str>) -> Vec<KeyInfo> {
        let root = &self.inner.root_account_id;
        let mut out = Vec::new();
        if account_id.is_none_or_eq(root) {
            out.push(KeyInfo {
                access_key: self.inner.root_access_key.clone(),
                account_id: root.clone(),
                user: ROOT_NAME.into(),
                status: KeyStatus::Active,
                created_unix_ms: 0,
                expires_unix_ms: None,
            });
        }
        let now = now_unix_ms();
        let d = self.inner.directory.read();
        out.extend(
            d.keys
                .values()
                .filter(|k| account_id.is_none_or_eq(&k.info.account_id))
                .filter(|k| !k.info.expires_unix_ms.is_some_and(|t| t <= now))
                .map(|k| k.info.clone()),
        );
        out
    }

    /// Whether `account_id` is an account of this server.
    pub fn account_exists(&self, account_id: &str) -> bool {
        self.check_account(account_id).is_ok()
    }

    fn check_account(&self, account_id: &str) -> S3Result<()> {
        if account_id == self.inner.root_account_id
            || self
                .inner
                .directory
                .read()
                .accounts
                .contains_key(account_id)
        {
            Ok(())
        } else {
            Err(no_such("account", account_id))
        }
    }

    fn check_user(&self, account_id: &str, user: &str) -> S3Result<bool> {
        self.check_account(account_id)?;
        if account_id == self.inner.root_account_id && user == ROOT_NAME {
            return Ok(true);
        }
        match self
            .inner
            .directory
            .read()
            .users
            .get(&(account_id.to_string(), user.to_string()))
        {
            Some(u) => Ok(u.admin),
            None => Err(no_such("user", &format!("{user} of account {account_id}"))),
        }
    }

    // ---- The directory: changes (each one durable metadata commit) ----

    fn store_and_sealer(&self) -> S3Result<(&Store, &Sealer)> {
        match (&self.inner.store, &self.inner.sealer) {
            (Some(s), Some(k)) => Ok((s, k)),
            _ => Err(s3_error!(
                NotImplemented,
                NOT_IMPLEMENTED,
                "this server has no directory: only its configured key"
            )),
        }
    }

    /// Commits `changes` (plus the removal of expired temporary keys) and then applies
    /// `apply` to the in-memory directory and lookup.
    fn commit(
        &self,
        mut changes: Vec<(String, Option<Vec<u8>>)>,
        apply: impl FnOnce(&mut Directory, &mut HashMap<String, Principal>),
    ) -> S3Result<()> {
        let (store, _) = self.store_and_sealer()?;
        let now = now_unix_ms();
        let expired: Vec<String> = self
            .inner
            .directory
            .read()
            .keys
            .values()
            .filter(|k| k.info.expires_unix_ms.is_some_and(|t| t <= now))
            .map(|k| k.info.access_key.clone())
            .collect();
        for ak in &expired {
            if !changes.iter().any(|(n, _)| *n == key_record(ak)) {
                changes.push((key_record(ak), None));
            }
        }
        store.update_settings(&changes)?;
        let mut d = self.inner.directory.write();
        let mut l = self.inner.lookup.write();
        for ak in &expired {
            d.keys.remove(ak);
            l.remove(ak);
        }
        apply(&mut d, &mut l);
        Ok(())
    }

    /// Makes an account named `name`.
    ///
    /// Errors: InvalidArgument (name), EntityAlreadyExists (409), metadata errors.
    pub fn create_account(&self, name: &str) -> S3Result<Account> {
        check_name("account", name)?;
        let _one = self.inner.change.lock();
        let taken = name == ROOT_NAME
            || self
                .inner
                .directory
                .read()
                .accounts
                .values()
                .any(|a| a.name == name);
        if taken {
            return Err(s3_error!(
                EntityAlreadyExists,
                CONFLICT,
                "an account named {name} already exists"
            ));
        }
        let mut id = new_account_id();
        while self.check_account(&id).is_ok() {
            id = new_account_id();
        }
        let account = Account {
            id: id.clone(),
            name: name.into(),
            created_unix_ms: now_unix_ms(),
        };
        let a = account.clone();
        self.commit(vec![(account_record(&id), json(&account))], |d, _| {
            d.accounts.insert(id, a);
        })?;
        tracing::info!(account = %account.id, name, "account created");
        Ok(account)
    }

    /// Deletes an account with its users and keys. The root account cannot be deleted, nor
    /// one that owns buckets (delete or hand them over first).
    ///
    /// Errors: NoSuchEntity, DeleteConflict (409), metadata errors.
    pub fn delete_account(&self, account_id: &str) -> S3Result<()> {
        let _one = self.inner.change.lock();
        self.check_account(account_id)?;
        if account_id == self.inner.root_account_id {
            return Err(s3_error!(
                DeleteConflict,
                CONFLICT,
                "the root account cannot be deleted"
            ));
        }
        let (store, _) = self.store_and_sealer()?;
        let owned: Vec<String> = store
            .list_buckets()?
            .into_iter()
            .filter(|b| self.owning_account(&b.owner) == account_id)
            .map(|b| b.name)
            .collect();
        if !owned.is_empty() {
            return Err(s3_error!(
                DeleteConflict,
                CONFLICT,
                "account {account_id} owns {} bucket(s) ({}); delete them first",
                owned.len(),
                owned.join(", ")
            ));
        }
        let (users, keys) = {
            let d = self.inner.directory.read();
            let users: Vec<String> = d
                .users
                .values()
                .filter(|u| u.account_id == account_id)
                .map(|u| u.name.clone())
                .collect();
            let keys: Vec<String> = d
                .keys
                .values()
                .filter(|k| k.info.account_id == account_id)
                .map(|k| k.info.access_key.clone())
                .collect();
            (users, keys)
        };
        let mut changes = vec![(account_record(account_id), None)];
        changes.extend(users.iter().map(|u| (user_record(account_id, u), None)));
        changes.extend(keys.iter().map(|k| (key_record(k), None)));
        let id = account_id.to_string();
        self.commit(changes, |d, l| {
            d.accounts.remove(&id);
            for u in &users {
                d.users.remove(&(id.clone(), u.clone()));
            }
            for k in &keys {
                d.keys.remove(k);
                l.remove(k);
            }
        })?;
        tracing::info!(account = account_id, "account deleted");
        Ok(())
    }

    /// Makes user `name` in `account_id`; `admin` lets it call the admin requests.
    ///
    /// Errors: InvalidArgument (name), NoSuchEntity (account), EntityAlreadyExists, metadata
    /// errors.
    pub fn create_user(&self, account_id: &str, name: &str, admin: bool) -> S3Result<User> {
        check_name("user", name)?;
        let _one = self.inner.change.lock();
        if self.check_user(account_id, name).is_ok() {
            return Err(s3_error!(
                EntityAlreadyExists,
                CONFLICT,
                "account {account_id} already has a user named {name}"
            ));
        }
        self.check_account(account_id)?;
        let user = User {
            account_id: account_id.into(),
            name: name.into(),
            admin,
            created_unix_ms: now_unix_ms(),
        };
        let u = user.clone();
        self.commit(
            vec![(user_record(account_id, name), json(&user))],
            |d, _| {
                d.users.insert((u.account_id.clone(), u.name.clone()), u);
            },
        )?;
        tracing::info!(account = account_id, user = name, admin, "user created");
        Ok(user)
    }

    /// Deletes a user and its keys. The root account's configured user cannot be deleted.
    ///
    /// Errors: NoSuchEntity, DeleteConflict, metadata errors.
    pub fn delete_user(&self, account_id: &str, name: &str) -> S3Result<()> {
        let _one = self.inner.change.lock();
        self.check_user(account_id, name)?;
        if account_id == self.inner.root_account_id && name == ROOT_NAME {
            return Err(s3_error!(
                DeleteConflict,
                CONFLICT,
                "the root account's configured user cannot be deleted"
            ));
        }
        let keys = self.user_keys(account_id, name);
        let mut changes = vec![(user_record(account_id, name), None)];
        changes.extend(keys.iter().map(|k| (key_record(k), None)));
        let id = (account_id.to_string(), name.to_string());
        self.commit(changes, |d, l| {
            d.users.remove(&id);
            for k in &keys {
                d.keys.remove(k);
                l.remove(k);
            }
        })?;
        tracing::info!(account = account_id, user = name, "user deleted");
        Ok(())
    }

    fn user_keys(&self, account_id: &str, user: &str) -> Vec<String> {
        self.inner
            .directory
            .read()
            .keys
            .values()
            .filter(|k| k.info.account_id == account_id && k.info.user == user)
            .map(|k| k.info.access_key.clone())
            .collect()
    }

    /// A new key for a user (`lifetime_s`: a temporary credential with a session token,
    /// expiring that many seconds from now), with the records to commit for it.
    fn new_key(
        &self,
        account_id: &str,
        user: &str,
        lifetime_s: Option<u64>,
    ) -> S3Result<(NewKey, StoredKey)> {
        let (_, sealer) = self.store_and_sealer()?;
        let (mut access_key, secret) = Self::generate();
        while self.inner.lookup.read().contains_key(&access_key) {
            access_key = Self::generate().0;
        }
        let now = now_unix_ms();
        let token = lifetime_s.map(|_| {
            let mut raw = Vec::with_capacity(48);
            for _ in 0..3 {
                raw.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
            }
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(raw)
        });
        let info = KeyInfo {
            access_key: access_key.clone(),
            account_id: account_id.into(),
            user: user.into(),
            status: KeyStatus::Active,
            created_unix_ms: now,
            expires_unix_ms: lifetime_s.map(|s| now + s * 1000),
        };
        let stored = StoredKey {
            info: info.clone(),
            sealed_secret: sealer.seal(&secret, &key_record(&access_key)),
            session_token_sha256: token.as_deref().map(|t| hex::encode(sha256(t))),
        };
        Ok((
            NewKey {
                info,
                secret_key: secret,
                session_token: token,
            },
            stored,
        ))
    }

    /// Makes an access key for a user; its secret is in the answer and nowhere else.
    ///
    /// Errors: NoSuchEntity, LimitExceeded (409, more than [`MAX_KEYS_PER_USER`]), metadata
    /// errors.
    pub fn create_key(&self, account_id: &str, user: &str) -> S3Result<NewKey> {
        let _one = self.inner.change.lock();
        let admin = self.check_user(account_id, user)?;
        if self.user_keys(account_id, user).len() >= MAX_KEYS_PER_USER {
            return Err(s3_error!(
                LimitExceeded,
                CONFLICT,
                "user {user} of account {account_id} already has {MAX_KEYS_PER_USER} access keys; delete one first"
            ));
        }
        let (new, stored) = self.new_key(account_id, user, None)?;
        self.insert_key(stored, &new.secret_key, admin)?;
        tracing::info!(account = account_id, user, access_key = %new.info.access_key, "access key created");
        Ok(new)
    }

    /// Issues a temporary credential for a user, valid for `lifetime_s` seconds.
    ///
    /// Errors: InvalidArgument (lifetime outside [`TEMPORARY_SECONDS`]), NoSuchEntity,
    /// metadata errors.
    pub fn issue_temporary(
        &self,
        account_id: &str,
        user: &str,
        lifetime_s: u64,
    ) -> S3Result<NewKey> {
        if !TEMPORARY_SECONDS.contains(&lifetime_s) {
            return Err(s3_error!(
                InvalidArgument,
                BAD_REQUEST,
                "a temporary credential lives {} to {} seconds, not {lifetime_s}",
                TEMPORARY_SECONDS.start(),
                TEMPORARY_SECONDS.end()
            ));
        }
        let _one = self.inner.change.lock();
        let admin = self.check_user(account_id, user)?;
        let (new, stored) = self.new_key(account_id, user, Some(lifetime_s))?;
        self.insert_key(stored, &new.secret_key, admin)?;
        tracing::info!(account = account_id, user, access_key = %new.info.access_key, lifetime_s, "temporary credential issued");
        Ok(new)
    }

    /// Commits the new key `stored`, then makes it usable.
    fn insert_key(&self, stored: StoredKey, secret: &str, admin: bool) -> S3Result<()> {
        let principal = principal_of(&stored, secret.to_string(), admin)
            .map_err(|e| s3_error!(InternalError, INTERNAL_SERVER_ERROR, "{e}"))?;
        let changes = vec![(key_record(&stored.info.access_key), json(&stored))];
        let ak = stored.info.access_key.clone();
        self.commit(changes, |d, l| {
            d.keys.insert(ak.clone(), stored);
            l.insert(ak, principal);
        })
    }

    fn stored_key(&self, access_key: &str) -> S3Result<StoredKey> {
        if access_key == self.inner.root_access_key {
            return Err(s3_error!(
                DeleteConflict,
                CONFLICT,
                "{access_key} is the configured root key; change it where it is configured (the credentials file, HOARD_ACCESS_KEY or the boot parameters)"
            ));
        }
        self.inner
            .directory
            .read()
            .keys
            .get(access_key)
            .cloned()
            .ok_or_else(|| no_such("access key", access_key))
    }

    /// Enables or disables a key.
    ///
    /// Errors: NoSuchEntity, DeleteConflict (the configured root key), metadata errors.
    pub fn set_key_status(&self, access_key: &str, status: KeyStatus) -> S3Result<KeyInfo> {
        let _one = self.inner.change.lock();
        let mut stored = self.stored_key(access_key)?;
        stored.info.status = status;
        let info = stored.info.clone();
        let ak = access_key.to_string();
        self.commit(vec![(key_record(access_key), json(&stored))], |d, l| {
            d.keys.insert(ak.clone(), stored);
            if let Some(p) = l.get_mut(&ak) {
                p.status = status;
            }
        })?;
        tracing::info!(access_key, ?status, "access key status changed");
        Ok(info)
    }

    /// Rotates a key: makes a new key for the same user and makes the old one Inactive, in
    /// one commit (delete it once no client uses it; enable it again to roll back).
    ///
    /// Errors: NoSuchEntity, DeleteConflict (the configured root key; a temporary
    /// credential), LimitExceeded, metadata errors.
    pub fn rotate_key(&self, access_key: &str) -> S3Result<NewKey> {
        let _one = self.inner.change.lock();
        let mut old = self.stored_key(access_key)?;
        if old.info.expires_unix_ms.is_some() {
            return Err(s3_error!(
                DeleteConflict,
                CONFLICT,
                "{access_key} is a temporary credential: issue a new one instead"
            ));
        }
        let (account_id, user) = (old.info.account_id.clone(), old.info.user.clone());
        let admin = self.check_user(&account_id, &user)?;
        if self.user_keys(&account_id, &user).len() >= MAX_KEYS_PER_USER {
            return Err(s3_error!(
                LimitExceeded,
                CONFLICT,
                "user {user} of account {account_id} already has {MAX_KEYS_PER_USER} access keys; delete one first"
            ));
        }
        let (new, stored) = self.new_key(&account_id, &user, None)?;
        old.info.status = KeyStatus::Inactive;
        let principal = principal_of(&stored, new.secret_key.clone(), admin)
            .map_err(|e| s3_error!(InternalError, INTERNAL_SERVER_ERROR, "{e}"))?;
        let changes = vec![
            (key_record(access_key), json(&old)),
            (key_record(&new.info.access_key), json(&stored)),
        ];
        let (old_ak, new_ak) = (access_key.to_string(), new.info.access_key.clone());
        self.commit(changes, |d, l| {
            d.keys.insert(old_ak.clone(), old);
            if let Some(p) = l.get_mut(&old_ak) {
                p.status = KeyStatus::Inactive;
            }
            d.keys.insert(new_ak.clone(), stored);
            l.insert(new_ak, principal);
        })?;
        tracing::info!(old = access_key, new = %new.info.access_key, "access key rotated");
        Ok(new)
    }

    /// Deletes a key.
    ///
    /// Errors: NoSuchEntity, DeleteConflict (the configured root key), metadata errors.
    pub fn delete_key(&self, access_key: &str) -> S3Result<()> {
        let _one = self.inner.change.lock();
        self.stored_key(access_key)?;
        let ak = access_key.to_string();
        self.commit(vec![(key_record(access_key), None)], |d, l| {
            d.keys.remove(&ak);
            l.remove(&ak);
        })?;
        tracing::info!(access_key, "access key deleted");
        Ok(())
    }
}

/// `None` or equal: filters that are optional.
trait NoneOrEq {
    fn is_none_or_eq(&self, v: &str) -> bool;
}

impl NoneOrEq for Option<&str> {
    fn is_none_or_eq(&self, v: &str) -> bool {
        self.map_or(true, |a| a == v)
    }
}

fn principal_of(k: &StoredKey, secret: String, admin: bool) -> Result<Principal, String> {
    let session = match (&k.session_token_sha256, k.info.expires_unix_ms) {
        (Some(h), Some(t)) => {
            let bytes = hex::decode(h).map_err(|e| format!("session token hash: {e}"))?;
            let hash: [u8; 32] = bytes
                .try_into()
                .map_err(|_| "session token hash is not 32 bytes".to_string())?;
            Some((hash, t))
        }
        (None, None) => None,
        _ => return Err("a temporary key needs both a token hash and an expiry".into()),
    };
    Ok(Principal {
        secret,
        account_id: k.info.account_id.clone(),
        user: k.info.user.clone(),
        admin,
        status: k.info.status,
        session,
    })
}

fn no_such(what: &str, name: &str) -> crate::error::S3Error {
    s3_error!(NoSuchEntity, NOT_FOUND, "no {what} {name}")
}

fn new_account_id() -> String {
    let n = u128::from_le_bytes(*uuid::Uuid::new_v4().as_bytes()) % 1_000_000_000_000;
    format!("{n:012}")
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
