//! HTTPS for the API, as `pebble run --https` serves it: TLS 1.3 only; the server's chain is
//! a short-lived leaf (one hour, renewed a minute before it ends) signed by a ten-year
//! identity CA certificate (`tls/identity.pem`) whose key is the daemon's ed25519 identity
//! key (`identity/key.pem`), both kept in the Pebble directory with Pebble's permissions.
//! Every client must present exactly one certificate; it is not checked against any CA
//! (there is none to check against), only proven (the handshake's signature) and compared
//! with the `cert` identities, per request, to find the caller's access.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ED25519, SerialNumber,
};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};
use time::OffsetDateTime;

/// Why HTTPS cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The identity key or certificate cannot be read or written.
    #[error("cannot {action}: {reason}")]
    Files {
        /// What was being done.
        action: String,
        /// Why it failed.
        reason: String,
    },
    /// A certificate or key cannot be made.
    #[error("cannot create certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("cannot configure TLS: {0}")]
    Config(#[from] rustls::Error),
}

/// How long the identity certificate is valid (Pebble's ten 366-day years).
const ID_CERT_VALIDITY: Duration = Duration::from_secs(10 * 366 * 24 * 3600);
/// How long a TLS (leaf) certificate is valid.
const TLS_CERT_VALIDITY: Duration = Duration::from_secs(3600);
/// A leaf this close to its end is replaced.
const TLS_CERT_RENEW_WINDOW: Duration = Duration::from_secs(60);
/// The name the certificates' subjects start with, as Pebble's (clients see a Pebble).
const PROGRAM: &str = "pebble";

/// The TLS configuration of the HTTPS listener of the Pebble directory `dir`: its identity
/// key and certificate are read, or made and saved on first use.
pub fn server_config(dir: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let key = identity_key(&dir.join("identity"))?;
    let fingerprint = fingerprint(&key);
    let (id_der, issuer) = identity_certificate(&dir.join("tls"), key, &fingerprint)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = AnyOneClientCert {
        algorithms: provider.signature_verification_algorithms,
    };
    let resolver = Leaves {
        provider: provider.clone(),
        issuer,
        id_der,
        subject: subject(&fingerprint),
        current: Mutex::new(None),
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The SHA-256 of a certificate, by which a TLS caller is known.
pub(crate) fn cert_digest(der: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, der);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn files_err(action: impl Into<String>) -> impl FnOnce(String) -> TlsError {
    let action = action.into();
    move |reason| TlsError::Files { action, reason }
}

/// Refuses `path` unless its permission bits are exactly `perm` (Pebble's check: keys
/// readable by others are not used).
fn expect_permission(path: &Path, perm: u32) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    let actual = meta.permissions().mode() & 0o777;
    if actual != perm {
        return Err(format!(
            "expected permission 0o{perm:o} (got 0o{actual:o}) for {:?}",
            path.display().to_string()
        ));
    }
    Ok(())
}

/// `dir`, made 0700 if missing, else checked to be 0700.
fn private_dir(dir: &Path) -> Result<(), String> {
    match std::fs::symlink_metadata(dir) {
        Ok(_) => expect_permission(dir, 0o700),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(dir)
                .map_err(|e| e.to_string())?;
            // The umask may have taken bits away; never added any.
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Writes `data` to `path` with mode 0600: a temporary file, synced, renamed over it.
fn write_private(path: &Path, data: &[u8]) -> Result<(), String> {
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(parent) = path.parent() {
            std::fs::File::open(parent)?.sync_all()?;
        }
        Ok(())
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        e.to_string()
    })
}

/// A private file's text, refused unless it is 0600 (as Pebble refuses it).
fn read_private(path: &Path) -> Result<String, String> {
    expect_permission(path, 0o600)?;
    std::fs::read_to_string(path).map_err(|e| e.to_string())
}

/// The daemon's ed25519 identity key (`identity/key.pem`, PKCS #8), made on first use.
fn identity_key(dir: &Path) -> Result<KeyPair, TlsError> {
    private_dir(dir).map_err(files_err("prepare identity key directory"))?;
    let path = dir.join("key.pem");
    if path.exists() {
        let pem = read_private(&path).map_err(files_err("load identity key"))?;
        let key = KeyPair::from_pem(&pem)
            .map_err(|e| format!("{e} in {:?}", path.display().to_string()))
            .map_err(files_err("load identity key"))?;
        if key.algorithm() != &PKCS_ED25519 {
            return Err(files_err("load identity key")(
                "ed25519 type private key expected".into(),
            ));
        }
        return Ok(key);
    }
    let key = KeyPair::generate_for(&PKCS_ED25519)?;
    write_private(&path, key.serialize_pem().as_bytes()).map_err(files_err("save identity key"))?;
    Ok(key)
}

/// Base32 (no padding) of the SHA-384 of the identity's public key, as Pebble's.
fn fingerprint(key: &KeyPair) -> String {
    let hash = ring::digest::digest(&ring::digest::SHA384, key.public_key_raw());
    base32(hash.as_ref())
}

fn base32(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in data {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// `pebble-<first 8 of the fingerprint>`, the certificates' common name.
fn subject(fingerprint: &str) -> String {
    format!("{PROGRAM}-{}", &fingerprint[..fingerprint.len().min(8)])
}

/// A random 128-bit serial number.
fn serial() -> Result<SerialNumber, TlsError> {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).map_err(|_| {
        TlsError::Files {
            action: "create certificate".into(),
            reason: "no randomness".into(),
        }
    })?;
    bytes[0] &= 0x7f;
    Ok(SerialNumber::from_slice(&bytes))
}

/// Whether a DER certificate carries `key`'s public key (its ed25519 SubjectPublicKeyInfo).
fn derived_from(der: &[u8], key: &KeyPair) -> bool {
    let mut spki = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    spki.extend_from_slice(key.public_key_raw());
    der.windows(spki.len()).any(|w| w == spki.as_slice())
}

/// The identity CA certificate (`tls/identity.pem`): loaded if it was made from this key,
/// else made (and saved) anew.
fn identity_certificate(
    dir: &Path,
    key: KeyPair,
    fingerprint: &str,
) -> Result<(CertificateDer<'static>, Issuer<'static, KeyPair>), TlsError> {
    private_dir(dir).map_err(files_err("create TLS directory"))?;
    let path = dir.join("identity.pem");
    if path.exists() {
        let pem = read_private(&path).map_err(files_err("load identity certificate"))?;
        let der = cairn_supervisor::identities::certificate_der(&pem)
            .map_err(files_err("load identity certificate"))?;
        if derived_from(&der, &key) {
            let der = CertificateDer::from(der);
            let issuer = Issuer::from_ca_cert_der(&der, key)?;
            return Ok((der, issuer));
        }
    }
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    params.serial_number = Some(serial()?);
    params
        .distinguished_name
        .push(DnType::CommonName, subject(fingerprint));
    params.not_before = now;
    params.not_after = now + ID_CERT_VALIDITY;
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let cert = params.self_signed(&key)?;
    write_private(&path, cert.pem().as_bytes()).map_err(files_err("save identity certificate"))?;
    Ok((cert.der().clone(), Issuer::new(params, key)))
}

/// Serves a leaf certificate signed by the identity certificate, made anew when the last
/// one is about to end.
struct Leaves {
    provider: Arc<rustls::crypto::CryptoProvider>,
    issuer: Issuer<'static, KeyPair>,
    id_der: CertificateDer<'static>,
    subject: String,
    current: Mutex<Option<(Arc<CertifiedKey>, OffsetDateTime)>>,
}

impl std::fmt::Debug for Leaves {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leaves")
            .field("subject", &self.subject)
            .finish()
    }
}

impl Leaves {
    fn make(&self) -> Result<(Arc<CertifiedKey>, OffsetDateTime), TlsError> {
        let now = OffsetDateTime::now_utc();
        let key = KeyPair::generate_for(&PKCS_ED25519)?;
        let mut params = CertificateParams::default();
        params.serial_number = Some(serial()?);
        params
            .distinguished_name
            .push(DnType::CommonName, self.subject.clone());
        params.not_before = now;
        params.not_after = now + TLS_CERT_VALIDITY;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.is_ca = IsCa::ExplicitNoCa;
        let cert = params.signed_by(&key, &self.issuer)?;
        let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signing = self.provider.key_provider.load_private_key(private)?;
        let chain = vec![cert.der().clone(), self.id_der.clone()];
        Ok((
            Arc::new(CertifiedKey::new(chain, signing)),
            params.not_after,
        ))
    }
}

impl ResolvesServerCert for Leaves {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = |end: &OffsetDateTime| OffsetDateTime::now_utc() + TLS_CERT_RENEW_WINDOW < *end;
        if let Some((key, end)) = current.as_ref()
            && fresh(end)
        {
            return Some(key.clone());
        }
        match self.make() {
            Ok(made) => {
                let key = made.0.clone();
                *current = Some(made);
                Some(key)
            }
            Err(e) => {
                tracing::warn!("Cannot create TLS certificate: {e}");
                None
            }
        }
    }
}

/// Asks every client for one certificate and takes any that the client proves it holds:
/// which identity (if any) it is decides the access, request by request.
#[derive(Debug)]
struct AnyOneClientCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyOneClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if !intermediates.is_empty() {
            return Err(rustls::Error::General(format!(
                "expected one client certificate, received {}",
                intermediates.len() + 1
            )));
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_is_rfc4648_without_padding() {
        assert_eq!(base32(b""), "");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
    }

    #[test]
    fn identity_key_and_certificate_are_kept_and_reused() {
        let dir = cairn_testutil::TempDir::new("tls-identity");
        server_config(&dir).unwrap();
        let key = std::fs::read(dir.join("identity/key.pem")).unwrap();
        let cert = std::fs::read(dir.join("tls/identity.pem")).unwrap();
        for (p, mode) in [
            ("identity", 0o700),
            ("identity/key.pem", 0o600),
            ("tls", 0o700),
            ("tls/identity.pem", 0o600),
        ] {
            assert_eq!(expect_permission(&dir.join(p), mode), Ok(()), "{p}");
        }
        // A second start uses both as they are.
        server_config(&dir).unwrap();
        assert_eq!(std::fs::read(dir.join("identity/key.pem")).unwrap(), key);
        assert_eq!(std::fs::read(dir.join("tls/identity.pem")).unwrap(), cert);
        // A key others may read is refused, as Pebble refuses it.
        std::fs::set_permissions(
            dir.join("identity/key.pem"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let e = server_config(&dir).unwrap_err().to_string();
        assert!(
            e.starts_with("cannot load identity key: expected permission 0o600 (got 0o644)"),
            "{e}"
        );
    }

    #[test]
    fn an_identity_certificate_of_another_key_is_made_anew() {
        let dir = cairn_testutil::TempDir::new("tls-rekey");
        server_config(&dir).unwrap();
        let cert = std::fs::read(dir.join("tls/identity.pem")).unwrap();
        std::fs::remove_file(dir.join("identity/key.pem")).unwrap();
        server_config(&dir).unwrap();
        assert_ne!(std::fs::read(dir.join("tls/identity.pem")).unwrap(), cert);
    }
}
