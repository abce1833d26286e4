//! Per-operator preferences of the GUI (issue 20): the interface language an operator chose at
//! log-in. One small file per operator, `DATA/preferences/<hex of the operator name>`, 0600 in a
//! 0700 directory, replaced atomically (`registry::files`). The file holds no secret and no
//! personal data of holders; it is written only for an operator who has just logged in.

use std::path::{Path, PathBuf};

use crate::error::StationError;

fn file(data_dir: &Path, operator: &str) -> PathBuf {
    // Hex keeps any operator name a plain file name.
    data_dir
        .join("preferences")
        .join(hex::encode(operator.as_bytes()))
}

/// A language tag as the GUI writes it (`uz-Latn`, `ru`): 2 to 16 ASCII letters, digits and
/// hyphens.
fn check_tag(tag: &str) -> Result<(), StationError> {
    if (2..=16).contains(&tag.len()) && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        Ok(())
    } else {
        Err(StationError::Invalid {
            field: "language".into(),
            rule: format!("{tag:?} is not a language tag (2 to 16 letters, digits or hyphens)"),
        })
    }
}

/// The language `operator` chose last, if any (an unreadable or malformed file counts as none).
pub fn language(data_dir: &Path, operator: &str) -> Option<String> {
    let text = std::fs::read_to_string(file(data_dir, operator)).ok()?;
    let tag = text.lines().find_map(|l| l.strip_prefix("language = "))?;
    let tag = tag.trim().trim_matches('"').to_owned();
    check_tag(&tag).ok().map(|()| tag)
}

/// Remember `tag` as `operator`'s language.
pub fn set_language(data_dir: &Path, operator: &str, tag: &str) -> Result<(), StationError> {
    check_tag(tag)?;
    let path = file(data_dir, operator);
    if let Some(dir) = path.parent() {
        registry::files::create_dir_private(dir).map_err(|e| StationError::io(dir, e))?;
    }
    crate::datadir::write_atomic(&path, format!("language = \"{tag}\"\n").as_bytes())
        .map_err(|e| StationError::io(&path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_language_is_remembered_per_operator_in_a_private_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(language(dir.path(), "clerk"), None);
        set_language(dir.path(), "clerk", "uz-Cyrl").expect("set");
        set_language(dir.path(), "clerk2", "ru").expect("set");
        assert_eq!(language(dir.path(), "clerk").as_deref(), Some("uz-Cyrl"));
        assert_eq!(language(dir.path(), "clerk2").as_deref(), Some("ru"));
        set_language(dir.path(), "clerk", "en").expect("replace");
        assert_eq!(language(dir.path(), "clerk").as_deref(), Some("en"));
        let f = file(dir.path(), "clerk");
        let mode = std::fs::metadata(&f).expect("file").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let d = std::fs::metadata(f.parent().expect("dir")).expect("dir");
        assert_eq!(d.permissions().mode() & 0o777, 0o700);
        let e = set_language(dir.path(), "clerk", "../x").expect_err("not a tag");
        assert!(e.to_string().contains("language"), "{e}");
    }
}
