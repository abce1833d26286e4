//! The card image: the chip's whole persistent state in one JSON file, written atomically
//! (temporary file in the same directory, fsync, rename over the old image, fsync of the
//! directory), so that a `vchip` killed at any instant leaves either the old or the new image.
//!
//! Secret material (PIN, PUK, management key, private keys) is sealed: AES-256-CBC with an
//! HMAC-SHA256 tag (encrypt-then-MAC) under keys derived with HMAC-SHA256 from a fixed chip
//! secret compiled into `vchip` and a random salt chosen when the image is created. The tag
//! also covers the public part, so a hand-edited image is refused. This keeps `vchip show`
//! and casual readers out; it is NOT protection against anyone who has this source code.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::ChipError;

/// Format name written into every image.
pub const FORMAT: &str = "idstation-vchip-image";
/// Image format version written by this vchip. 2 added the LDS application
/// (`applications.lds`); version 1 images still load (without the LDS application).
pub const VERSION: u32 = 2;

/// The fixed chip secret (see the module documentation for what this does and does not do).
const CHIP_SECRET: &[u8; 32] = b"idstation vchip image secret v1.";

/// On-disk form of an image.
#[derive(Serialize, Deserialize)]
pub(crate) struct ImageFile {
    pub body: serde_json::Value,
    pub sealed: Sealed,
}

/// Sealed secrets.
#[derive(Serialize, Deserialize)]
pub(crate) struct Sealed {
    pub salt: String,
    pub iv: String,
    pub ciphertext: String,
    pub mac: String,
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], parts: &[&[u8]]) -> Result<Zeroizing<[u8; 32]>, ChipError> {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key)
        .map_err(|_| ChipError::Image("seal: HMAC key rejected".into()))?;
    for p in parts {
        mac.update(p);
    }
    let out = mac.finalize().into_bytes();
    let mut arr = Zeroizing::new([0u8; 32]);
    arr.copy_from_slice(&out);
    Ok(arr)
}

struct SealKeys {
    enc: Zeroizing<[u8; 32]>,
    mac: Zeroizing<[u8; 32]>,
}

fn derive(salt: &[u8]) -> Result<SealKeys, ChipError> {
    let root = hmac(CHIP_SECRET, &[b"idstation-vchip-image-v1", salt])?;
    Ok(SealKeys {
        enc: hmac(root.as_slice(), &[b"enc"])?,
        mac: hmac(root.as_slice(), &[b"mac"])?,
    })
}

fn random(n: usize) -> Result<Vec<u8>, ChipError> {
    let mut v = vec![0u8; n];
    getrandom::fill(&mut v).map_err(|e| ChipError::Random(e.to_string()))?;
    Ok(v)
}

/// A fresh random salt for a new image.
pub(crate) fn new_salt() -> Result<Vec<u8>, ChipError> {
    random(16)
}

/// Seal `secrets` together with the public `body`.
pub(crate) fn seal(
    body: serde_json::Value,
    secrets: &[u8],
    salt: &[u8],
) -> Result<ImageFile, ChipError> {
    let keys = derive(salt)?;
    let iv = random(16)?;
    let ct = cbc::Encryptor::<aes::Aes256>::new_from_slices(keys.enc.as_slice(), &iv)
        .map_err(|_| ChipError::Image("seal: cipher key/iv length".into()))?
        .encrypt_padded_vec::<Pkcs7>(secrets);
    let body_bytes = serde_json::to_vec(&body)
        .map_err(|e| ChipError::Image(format!("body: cannot serialize: {e}")))?;
    let tag = hmac(keys.mac.as_slice(), &[&body_bytes, salt, &iv, &ct])?;
    Ok(ImageFile {
        body,
        sealed: Sealed {
            salt: hex::encode(salt),
            iv: hex::encode(&iv),
            ciphertext: hex::encode(&ct),
            mac: hex::encode(tag.as_slice()),
        },
    })
}

/// Check the tag and open the sealed secrets; returns them and the salt.
pub(crate) fn open(file: &ImageFile) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>), ChipError> {
    let field = |name: &str, s: &str| {
        hex::decode(s).map_err(|_| ChipError::Image(format!("sealed.{name}: not hex")))
    };
    let salt = field("salt", &file.sealed.salt)?;
    let iv = field("iv", &file.sealed.iv)?;
    let ct = field("ciphertext", &file.sealed.ciphertext)?;
    let tag = field("mac", &file.sealed.mac)?;
    if salt.len() != 16 || iv.len() != 16 {
        return Err(ChipError::Image(
            "sealed.salt and sealed.iv must be 16 bytes".into(),
        ));
    }
    let keys = derive(&salt)?;
    let body_bytes = serde_json::to_vec(&file.body)
        .map_err(|e| ChipError::Image(format!("body: cannot serialize: {e}")))?;
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(keys.mac.as_slice())
        .map_err(|_| ChipError::Image("seal: HMAC key rejected".into()))?;
    for p in [&body_bytes[..], &salt, &iv, &ct] {
        mac.update(p);
    }
    mac.verify_slice(&tag).map_err(|_| ChipError::Integrity)?;
    let plain = cbc::Decryptor::<aes::Aes256>::new_from_slices(keys.enc.as_slice(), &iv)
        .map_err(|_| ChipError::Image("seal: cipher key/iv length".into()))?
        .decrypt_padded_vec::<Pkcs7>(&ct)
        .map_err(|_| ChipError::Integrity)?;
    Ok((Zeroizing::new(plain), salt))
}

/// Write `bytes` to `path` atomically: temp file in the same directory, fsync, rename, fsync
/// of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ChipError> {
    let io = |e: std::io::Error| ChipError::Io {
        path: path.display().to_string(),
        source: e,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| ChipError::Image(format!("{}: not a file path", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    {
        let mut f = File::create(&tmp).map_err(io)?;
        f.write_all(bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    fs::rename(&tmp, path).map_err(io)?;
    File::open(&dir).and_then(|d| d.sync_all()).map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_round_trip_and_are_not_in_clear() {
        let salt = new_salt().unwrap();
        let body = serde_json::json!({"serial": 7});
        let file = seal(body, b"{\"pin\":\"313233343536ffff\"}", &salt).unwrap();
        let text = serde_json::to_string(&file).unwrap();
        assert!(!text.contains("313233343536ffff"));
        let (plain, salt2) = open(&file).unwrap();
        assert_eq!(salt2, salt);
        assert_eq!(&plain[..], b"{\"pin\":\"313233343536ffff\"}");
    }

    #[test]
    fn edited_public_body_is_refused() {
        let salt = new_salt().unwrap();
        let mut file = seal(serde_json::json!({"lifecycle": "locked"}), b"x", &salt).unwrap();
        file.body = serde_json::json!({"lifecycle": "blank"});
        assert!(matches!(open(&file), Err(ChipError::Integrity)));
    }
}
