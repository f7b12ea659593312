//! Ed25519 signatures of an export's chain head: keys (PKCS#8 / SPKI PEM, as `openssl genpkey
//! -algorithm ed25519` writes them), `audit keygen`, and the exact signed bytes.
//!
//! The signed message ([`signed_message`]) is ASCII, one value per line, each line ending in
//! `\n`:
//!
//! ```text
//! sccm-connector-audit-v1
//! <head: 64 lower-case hex>
//! <count: decimal>
//! <first_seq: decimal>
//! <last_seq: decimal>
//! <chain_base: 64 lower-case hex>
//! <content_sha256: 64 lower-case hex>
//! ```
//!
//! so `openssl pkeyutl -verify -pubin -inkey audit-signing.pub.pem -rawin -in message.txt
//! -sigfile signature.bin` checks it with nothing of this program.

use super::AuditError;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer as _, Verifier as _};
use std::path::{Path, PathBuf};

pub use ed25519_dalek::{SigningKey, VerifyingKey};

/// First line of the signed message.
pub const SIGNED_MESSAGE_TAG: &str = "sccm-connector-audit-v1";

/// File names `audit keygen` writes.
pub const PRIVATE_KEY_FILE: &str = "audit-signing.pem";
pub const PUBLIC_KEY_FILE: &str = "audit-signing.pub.pem";

/// The exact bytes an export's signature covers (see the module documentation).
#[must_use]
pub fn signed_message(
    head: &str,
    count: u64,
    first_seq: u64,
    last_seq: u64,
    chain_base: &str,
    content_sha256: &str,
) -> Vec<u8> {
    format!(
        "{SIGNED_MESSAGE_TAG}\n{head}\n{count}\n{first_seq}\n{last_seq}\n{chain_base}\n{content_sha256}\n"
    )
    .into_bytes()
}

/// Signs `message`; returns the 64 signature bytes.
#[must_use]
pub fn sign(key: &SigningKey, message: &[u8]) -> [u8; 64] {
    key.sign(message).to_bytes()
}

/// Whether `signature` is `key`'s signature of `message` (strict verification).
#[must_use]
pub fn verify(key: &VerifyingKey, message: &[u8], signature: &[u8]) -> bool {
    let Ok(bytes) = <[u8; 64]>::try_from(signature) else {
        return false;
    };
    let signature = Signature::from_bytes(&bytes);
    key.verify_strict(message, &signature).is_ok() && key.verify(message, &signature).is_ok()
}

fn key_error(path: &Path, what: &str, detail: impl std::fmt::Display) -> AuditError {
    AuditError::Key(format!("{}: {what}: {detail}", path.display()))
}

/// Reads a PKCS#8 PEM Ed25519 private key (`-----BEGIN PRIVATE KEY-----`).
///
/// # Errors
/// [`AuditError::Key`] naming the file.
pub fn read_signing_key(path: &Path) -> Result<SigningKey, AuditError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| key_error(path, "cannot read the signing key", e))?;
    SigningKey::from_pkcs8_pem(text.trim())
        .map_err(|e| key_error(path, "not a PKCS#8 PEM Ed25519 private key", e))
}

/// Reads an SPKI PEM Ed25519 public key (`-----BEGIN PUBLIC KEY-----`).
///
/// # Errors
/// [`AuditError::Key`] naming the file.
pub fn read_verifying_key(path: &Path) -> Result<VerifyingKey, AuditError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| key_error(path, "cannot read the public key", e))?;
    VerifyingKey::from_public_key_pem(text.trim())
        .map_err(|e| key_error(path, "not an SPKI PEM Ed25519 public key", e))
}

/// A new key from the operating system's random source.
///
/// # Errors
/// [`AuditError::Key`] when no randomness is available.
pub fn generate() -> Result<SigningKey, AuditError> {
    let mut secret = [0u8; 32];
    getrandom::getrandom(&mut secret)
        .map_err(|e| AuditError::Key(format!("no random source for a new key: {e}")))?;
    let key = SigningKey::from_bytes(&secret);
    secret.fill(0);
    Ok(key)
}

/// The private key as PKCS#8 PEM.
///
/// # Errors
/// [`AuditError::Key`] if encoding fails.
pub fn private_pem(key: &SigningKey) -> Result<String, AuditError> {
    key.to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .map(|pem| pem.to_string())
        .map_err(|e| AuditError::Key(format!("cannot encode the private key: {e}")))
}

/// The public key as SPKI PEM.
///
/// # Errors
/// [`AuditError::Key`] if encoding fails.
pub fn public_pem(key: &VerifyingKey) -> Result<String, AuditError> {
    key.to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .map_err(|e| AuditError::Key(format!("cannot encode the public key: {e}")))
}

/// Creates a file that must not exist yet, readable by its owner only on Unix.
fn create_new(path: &Path, private: bool) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    options.open(path)
}

/// `audit keygen --out DIR`: writes [`PRIVATE_KEY_FILE`] (mode 0600 on Unix) and
/// [`PUBLIC_KEY_FILE`] into `dir` (created if missing). Refuses to overwrite either.
///
/// # Errors
/// [`AuditError::Key`] naming the file.
pub fn keygen(dir: &Path) -> Result<(PathBuf, PathBuf), AuditError> {
    use std::io::Write as _;
    std::fs::create_dir_all(dir).map_err(|e| key_error(dir, "cannot create the directory", e))?;
    let private = dir.join(PRIVATE_KEY_FILE);
    let public = dir.join(PUBLIC_KEY_FILE);
    for path in [&private, &public] {
        if path.exists() {
            return Err(key_error(path, "refusing to overwrite", "the file exists"));
        }
    }
    let key = generate()?;
    let private_text = private_pem(&key)?;
    let public_text = public_pem(&key.verifying_key())?;
    let mut file =
        create_new(&private, true).map_err(|e| key_error(&private, "cannot create", e))?;
    file.write_all(private_text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| key_error(&private, "cannot write", e))?;
    let mut file =
        create_new(&public, false).map_err(|e| key_error(&public, "cannot create", e))?;
    file.write_all(public_text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| key_error(&public, "cannot write", e))?;
    Ok((private, public))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_pem_and_sign() {
        let dir = tempfile::tempdir().expect("temp");
        let (private, public) = keygen(dir.path()).expect("keygen");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&private)
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(keygen(dir.path()).is_err(), "never overwrites");
        let key = read_signing_key(&private).expect("private key");
        let pubkey = read_verifying_key(&public).expect("public key");
        assert_eq!(key.verifying_key(), pubkey);
        let message = signed_message(&"a".repeat(64), 3, 1, 3, &"0".repeat(64), &"b".repeat(64));
        assert_eq!(
            String::from_utf8_lossy(&message),
            format!(
                "sccm-connector-audit-v1\n{}\n3\n1\n3\n{}\n{}\n",
                "a".repeat(64),
                "0".repeat(64),
                "b".repeat(64)
            )
        );
        let signature = sign(&key, &message);
        assert!(verify(&pubkey, &message, &signature));
        let mut bad = signature;
        bad[0] ^= 1;
        assert!(!verify(&pubkey, &message, &bad));
        assert!(!verify(&pubkey, b"other", &signature));
        assert!(!verify(&pubkey, &message, &signature[..63]));
        let other = generate().expect("key").verifying_key();
        assert!(!verify(&other, &message, &signature));
        assert!(read_signing_key(&public).is_err());
        assert!(read_verifying_key(&private).is_err());
    }
}
