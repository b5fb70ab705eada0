//! `hoard admin`: calls a running server's admin requests (`/_hoard/...`), signed with SigV4
//! by an admin credential, and prints the JSON or text it answers. The credential is
//! `--access-key`/`--secret-key` (or `HOARD_ACCESS_KEY`/`HOARD_SECRET_KEY`), else the
//! credentials file `hoard serve` keeps in `--data`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use http_body_util::{BodyExt, Empty};

/// `hoard admin` options.
#[derive(Args, Debug)]
pub struct AdminArgs {
    /// The server's S3 endpoint: `http://HOST:PORT` or `https://HOST:PORT`.
    #[arg(long, env = "HOARD_ENDPOINT", default_value = "http://127.0.0.1:9000")]
    pub endpoint: String,
    /// HTTPS: trust the certificates (PEM) of this CA file instead of the system's roots.
    #[arg(long)]
    pub ca_cert: Option<PathBuf>,
    /// HTTPS: trust exactly the server certificate with this SHA-256 fingerprint (`AB:CD:...`,
    /// as the appliance prints on its console), whatever names it; for a self-signed one.
    #[arg(long, env = "HOARD_FINGERPRINT")]
    pub fingerprint: Option<String>,
    /// Admin access key ID.
    #[arg(long, env = "HOARD_ACCESS_KEY")]
    pub access_key: Option<String>,
    /// Its secret key.
    #[arg(long, env = "HOARD_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// Where `hoard serve` keeps its credentials file, used when no key is given.
    #[arg(long, default_value = "./hoard-data")]
    pub data: PathBuf,
    /// A credentials file (access key, then secret key, one a line), used when no key is
    /// given; default: `DATA/credentials`.
    #[arg(long)]
    pub credentials: Option<PathBuf>,
    /// Region of the signature.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// What to do.
    #[command(subcommand)]
    pub action: AdminAction,
}

/// `hoard admin ...`
#[derive(Subcommand, Debug)]
pub enum AdminAction {
    /// The store's status document (XML).
    Status,
    /// The appliance's network settings (JSON); with any option, change them (kept in the
    /// store; the host name at once, the addressing at the next boot).
    Network {
        /// `dhcp`, or a static `A.B.C.D/N`.
        #[arg(long)]
        ip: Option<String>,
        /// The static address's gateway (empty: none).
        #[arg(long)]
        gateway: Option<String>,
        /// The host name.
        #[arg(long)]
        hostname: Option<String>,
        /// Bond two or more NICs (active-backup).
        #[arg(long)]
        bond: Option<bool>,
    },
    /// Turn an HDD bay's locate LED on or off (an SES backplane's).
    Locate {
        /// The bay (the HDD slot it holds).
        bay: u32,
        /// On (`true`) or off (`false`).
        #[arg(long, action = clap::ArgAction::Set)]
        on: bool,
    },
    /// The appliance's time settings (JSON); with `--ntp` or `--trust-rtc`, change them (kept
    /// in the store, in force at once).
    Time {
        /// NTP servers, `ADDR[:PORT],...` (IP literals; port 123 unless given; empty: the
        /// DHCP lease's).
        #[arg(long)]
        ntp: Option<String>,
        /// Trust the hardware clock before the first NTP synchronisation.
        #[arg(long)]
        trust_rtc: Option<bool>,
    },
    /// Start a scrub pass now.
    Scrub,
    /// List accounts.
    Accounts,
    /// Make an account (tenant); prints its ID.
    CreateAccount {
        /// Its name (1 to 64 of A-Z a-z 0-9 + = , . @ _ -).
        name: String,
    },
    /// Delete an account with its users and keys (it must own no buckets).
    DeleteAccount {
        /// Account ID (12 digits).
        account: String,
    },
    /// List the users of an account.
    Users {
        /// Account ID.
        account: String,
    },
    /// Make a user in an account.
    CreateUser {
        /// Account ID.
        account: String,
        /// User name.
        name: String,
        /// The user may call admin requests.
        #[arg(long)]
        admin: bool,
    },
    /// Delete a user and its keys.
    DeleteUser {
        /// Account ID.
        account: String,
        /// User name.
        name: String,
    },
    /// List access keys (never secrets), of one account or all.
    Keys {
        /// Only this account's.
        #[arg(long)]
        account: Option<String>,
    },
    /// Make an access key for a user; prints the secret, this once.
    CreateKey {
        /// Account ID.
        account: String,
        /// User name.
        user: String,
    },
    /// Issue a temporary credential (key, secret, session token) for a user.
    Temporary {
        /// Account ID.
        account: String,
        /// User name.
        user: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        seconds: u64,
    },
    /// Disable a key (it can be enabled again).
    DisableKey {
        /// Access key ID.
        access_key: String,
    },
    /// Enable a disabled key.
    EnableKey {
        /// Access key ID.
        access_key: String,
    },
    /// Make a new key for the key's user and disable the old one, in one step.
    RotateKey {
        /// Access key ID.
        access_key: String,
    },
    /// Delete a key.
    DeleteKey {
        /// Access key ID.
        access_key: String,
    },
    /// List the QoS limits set.
    Limits,
    /// Set the QoS limits of an account or a bucket (a rate left out is unlimited).
    SetLimits {
        /// `account` or `bucket`.
        #[arg(value_parser = ["account", "bucket"])]
        kind: String,
        /// Account ID or bucket name.
        name: String,
        /// Requests per second.
        #[arg(long)]
        requests_per_s: Option<f64>,
        /// Bytes per second (in and out together).
        #[arg(long)]
        bytes_per_s: Option<f64>,
    },
    /// Remove the QoS limits of an account or a bucket.
    ClearLimits {
        /// `account` or `bucket`.
        #[arg(value_parser = ["account", "bucket"])]
        kind: String,
        /// Account ID or bucket name.
        name: String,
    },
    /// Usage per hour, account and bucket.
    Usage {
        /// Only this account's.
        #[arg(long)]
        account: Option<String>,
        /// Only this bucket's.
        #[arg(long)]
        bucket: Option<String>,
        /// From this hour (YYYYMMDDHH, UTC).
        #[arg(long)]
        from: Option<String>,
        /// To this hour (YYYYMMDDHH, UTC).
        #[arg(long)]
        to: Option<String>,
        /// As CSV instead of JSON.
        #[arg(long)]
        csv: bool,
    },
    /// The Prometheus metrics.
    Metrics,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The request an action makes: (method, path under `/_hoard/`, query).
fn request_of(action: &AdminAction) -> (&'static str, String, Vec<(String, String)>) {
    let enc = |s: &str| hoard_s3::protocol::uri::uri_encode(s, false);
    let q = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
    match action {
        AdminAction::Status => ("GET", "status".into(), vec![]),
        AdminAction::Network {
            ip,
            gateway,
            hostname,
            bond,
        } => {
            let query: Vec<(String, String)> = [
                ("ip", ip.clone()),
                ("gateway", gateway.clone()),
                ("hostname", hostname.clone()),
                ("bond", bond.map(|b| b.to_string())),
            ]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
            .collect();
            let method = if query.is_empty() { "GET" } else { "PUT" };
            (method, "settings/network".into(), query)
        }
        AdminAction::Locate { bay, on } => (
            "PUT",
            format!("bays/{bay}/locate"),
            q("on", &on.to_string()),
        ),
        AdminAction::Time { ntp, trust_rtc } => {
            let mut query = Vec::new();
            if let Some(list) = ntp {
                query.push(("ntp".to_string(), list.clone()));
            }
            if let Some(trust) = trust_rtc {
                query.push(("trust_rtc".to_string(), trust.to_string()));
            }
            let method = if query.is_empty() { "GET" } else { "PUT" };
            (method, "settings/time".into(), query)
        }
        AdminAction::Scrub => ("POST", "scrub".into(), vec![]),
        AdminAction::Accounts => ("GET", "accounts".into(), vec![]),
        AdminAction::CreateAccount { name } => ("POST", "accounts".into(), q("name", name)),
        AdminAction::DeleteAccount { account } => {
            ("DELETE", format!("accounts/{}", enc(account)), vec![])
        }
        AdminAction::Users { account } => {
            ("GET", format!("accounts/{}/users", enc(account)), vec![])
        }
        AdminAction::CreateUser {
            account,
            name,
            admin,
        } => {
            let mut query = q("name", name);
            if *admin {
                query.push(("admin".into(), "true".into()));
            }
            ("POST", format!("accounts/{}/users", enc(account)), query)
        }
        AdminAction::DeleteUser { account, name } => (
            "DELETE",
            format!("accounts/{}/users/{}", enc(account), enc(name)),
            vec![],
        ),
        AdminAction::Keys { account } => (
            "GET",
            "keys".into(),
            account
                .iter()
                .map(|a| ("account".into(), a.clone()))
                .collect(),
        ),
        AdminAction::CreateKey { account, user } => (
            "POST",
            format!("accounts/{}/users/{}/keys", enc(account), enc(user)),
            vec![],
        ),
        AdminAction::Temporary {
            account,
            user,
            seconds,
        } => (
            "POST",
            format!(
                "accounts/{}/users/{}/temporary-credentials",
                enc(account),
                enc(user)
            ),
            q("seconds", &seconds.to_string()),
        ),
        AdminAction::DisableKey { access_key } => (
            "POST",
            format!("keys/{}", enc(access_key)),
            q("status", "Inactive"),
        ),
        AdminAction::EnableKey { access_key } => (
            "POST",
            format!("keys/{}", enc(access_key)),
            q("status", "Active"),
        ),
        AdminAction::RotateKey { access_key } => (
            "POST",
            format!("keys/{}", enc(access_key)),
            q("rotate", "true"),
        ),
        AdminAction::DeleteKey { access_key } => {
            ("DELETE", format!("keys/{}", enc(access_key)), vec![])
        }
        AdminAction::Limits => ("GET", "qos".into(), vec![]),
        AdminAction::SetLimits {
            kind,
            name,
            requests_per_s,
            bytes_per_s,
        } => {
            let mut query = Vec::new();
            if let Some(r) = requests_per_s {
                query.push(("requests_per_s".to_string(), r.to_string()));
            }
            if let Some(b) = bytes_per_s {
                query.push(("bytes_per_s".to_string(), b.to_string()));
            }
            ("PUT", format!("qos/{kind}s/{}", enc(name)), query)
        }
        AdminAction::ClearLimits { kind, name } => {
            ("DELETE", format!("qos/{kind}s/{}", enc(name)), vec![])
        }
        AdminAction::Usage {
            account,
            bucket,
            from,
            to,
            csv,
        } => {
            let mut query: Vec<(String, String)> = [
                ("account", account),
                ("bucket", bucket),
                ("from", from),
                ("to", to),
            ]
            .into_iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k.to_string(), v.clone())))
            .collect();
            if *csv {
                query.push(("format".into(), "csv".into()));
            }
            ("GET", "usage".into(), query)
        }
        AdminAction::Metrics => ("GET", "metrics".into(), vec![]),
    }
}

/// Runs `hoard admin`: prints the answer's body; an error answer is printed to stderr and
/// fails.
///
/// Errors: no credential, a bad endpoint, a refused connection, an error answer.
pub fn run(args: AdminArgs) -> Result<(), BoxError> {
    let (access_key, secret_key) = match (&args.access_key, &args.secret_key) {
        (Some(a), Some(s)) => (a.clone(), s.clone()),
        _ => {
            let path = args
                .credentials
                .clone()
                .unwrap_or_else(|| args.data.join("credentials"));
            let text = std::fs::read_to_string(&path).map_err(|e| {
                format!(
                    "no --access-key/--secret-key and no credentials file {}: {e}",
                    path.display()
                )
            })?;
            let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
            match (lines.next(), lines.next()) {
                (Some(a), Some(s)) => (a.to_string(), s.to_string()),
                _ => return Err(format!("{} holds no key pair", path.display()).into()),
            }
        }
    };
    let (tls, authority) = match (
        args.endpoint.strip_prefix("http://"),
        args.endpoint.strip_prefix("https://"),
    ) {
        (Some(a), _) => (None, a),
        (_, Some(a)) => (Some(tls_client(&args)?), a),
        _ => {
            return Err(format!(
                "endpoint {} must start with http:// or https://",
                args.endpoint
            )
            .into())
        }
    };
    let authority = authority.trim_end_matches('/').to_string();
    let (method, path, query) = request_of(&args.action);
    let raw_path = format!("/_hoard/{path}");
    let amz_date = hoard_s3::protocol::dates::amz_date(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs(),
    );
    let headers = hoard_s3::auth::sigv4::sign_empty_request(
        method,
        &authority,
        &raw_path,
        &query,
        &args.region,
        &access_key,
        &secret_key,
        &amz_date,
    );
    let query_string = query
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                hoard_s3::protocol::uri::uri_encode(k, false),
                hoard_s3::protocol::uri::uri_encode(v, false)
            )
        })
        .collect::<Vec<_>>()
        .join("&");
    let uri = match query_string.is_empty() {
        true => raw_path,
        false => format!("{raw_path}?{query_string}"),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (status, body) = runtime.block_on(async {
        let stream = tokio::net::TcpStream::connect(&authority)
            .await
            .map_err(|e| format!("cannot connect to {authority}: {e}"))?;
        let mut sender = match tls {
            None => {
                let (sender, connection) =
                    hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                        .await?;
                tokio::spawn(connection);
                sender
            }
            Some(config) => {
                let host = authority
                    .rsplit_once(':')
                    .map_or(authority.as_str(), |(h, _)| h)
                    .trim_start_matches('[')
                    .trim_end_matches(']');
                let name = rustls::pki_types::ServerName::try_from(host.to_string())
                    .map_err(|e| format!("{host} is not a server name: {e}"))?;
                let stream = tokio_rustls::TlsConnector::from(config)
                    .connect(name, stream)
                    .await
                    .map_err(|e| format!("TLS with {authority}: {e}"))?;
                let (sender, connection) =
                    hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                        .await?;
                tokio::spawn(connection);
                sender
            }
        };
        let mut request = hyper::Request::builder().method(method).uri(&uri);
        for (k, v) in &headers {
            request = request.header(k, v);
        }
        let response = sender
            .send_request(request.body(Empty::<bytes::Bytes>::new())?)
            .await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok::<_, BoxError>((status, body))
    })?;
    let text = String::from_utf8_lossy(&body);
    if !status.is_success() {
        return Err(format!("{method} {uri}: {status}\n{text}").into());
    }
    if !text.is_empty() {
        println!("{}", text.trim_end());
    }
    Ok(())
}

/// The TLS client of an `https://` endpoint: the system's roots (Debian's
/// `/etc/ssl/certs/ca-certificates.crt`), or `--ca-cert`'s, or exactly the certificate of
/// `--fingerprint`.
///
/// Errors: an unreadable or empty CA file; a malformed fingerprint.
fn tls_client(args: &AdminArgs) -> Result<std::sync::Arc<rustls::ClientConfig>, BoxError> {
    use rustls::pki_types::pem::PemObject;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let config = match &args.fingerprint {
        Some(fp) => {
            let want = fp.trim().to_ascii_uppercase().replace(':', "");
            if want.len() != 64 || !want.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!(
                    "--fingerprint {fp}: a SHA-256 fingerprint is 32 bytes in hex, AB:CD:..."
                )
                .into());
            }
            builder
                .dangerous()
                .with_custom_certificate_verifier(std::sync::Arc::new(Pinned {
                    sha256_hex: want,
                    schemes: provider.signature_verification_algorithms,
                }))
                .with_no_client_auth()
        }
        None => {
            let path = args
                .ca_cert
                .clone()
                .unwrap_or_else(|| PathBuf::from("/etc/ssl/certs/ca-certificates.crt"));
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls::pki_types::CertificateDer::pem_file_iter(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?
            {
                roots.add(cert.map_err(|e| format!("{}: {e}", path.display()))?)?;
            }
            if roots.is_empty() {
                return Err(format!("{} holds no certificate", path.display()).into());
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    Ok(std::sync::Arc::new(config))
}

/// Trusts exactly one server certificate, by its SHA-256 (certificate pinning), and checks
/// the handshake's signatures with its key as any verifier does.
#[derive(Debug)]
struct Pinned {
    sha256_hex: String,
    schemes: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let got = hoard_s3::tls::fingerprint_of(end_entity).replace(':', "");
        match got == self.sha256_hex {
            true => Ok(rustls::client::danger::ServerCertVerified::assertion()),
            false => Err(rustls::Error::General(format!(
                "the server's certificate has SHA-256 fingerprint {got}, not the one given"
            ))),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.schemes)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.schemes)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.schemes.supported_schemes()
    }
}
