//! Where UNC paths live on this machine, and where the connector may write.
//!
//! A push unpacks into its command's `share_path`, a UNC path such as
//! `\\FS01\Sources$\incoming\App`. The **share map** translates UNC prefixes into local paths for
//! machines that see the share under another path (and for the simulator, where the "share" is a
//! local directory). The **allowed roots** bound where the portal can make the connector write:
//! a share path outside every allowed root is refused, whatever the command says.
//!
//! Matching is case-insensitive (as Windows) and on whole path segments: `\\fs\src` does not
//! cover `\\fs\src2`. A writable path lies strictly **below** a root — unpacking replaces the
//! target folder, so a root itself is never a target — and has no segment that Windows would
//! resolve to `.` or `..` (segments made only of dots and spaces are refused).

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// One UNC prefix and the local directory it is reached at.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareMapping {
    /// `\\server\share[\folder…]`
    pub unc: String,
    /// The directory that prefix is, on this machine.
    pub local: PathBuf,
}

/// UNC → local translations and the roots the connector may write under.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shares {
    mappings: Vec<ShareMapping>,
    allowed_roots: Vec<String>,
}

/// Why a share path cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShareError {
    #[error("{path} is outside the allowed share roots ({roots})")]
    NotAllowed { path: String, roots: String },
    #[error("{0} is not a UNC path")]
    NotUnc(String),
    #[error("{0} is an allowed share root itself; a package goes into a folder below it")]
    IsRoot(String),
    #[error("{path} has the segment {segment:?}, which Windows resolves to '.' or '..'")]
    DotSegment { path: String, segment: String },
}

/// Splits a UNC path into lower-cased segments for comparison.
fn segments(unc: &str) -> Option<Vec<String>> {
    let rest = unc.strip_prefix("\\\\")?;
    Some(
        rest.split('\\')
            .filter(|s| !s.is_empty())
            .map(str::to_lowercase)
            .collect(),
    )
}

/// The segments of `path` after `prefix`, if `prefix` covers `path`.
fn strip<'a>(path: &'a str, prefix: &str) -> Option<Vec<&'a str>> {
    let prefix = segments(prefix)?;
    let original: Vec<&str> = path
        .strip_prefix("\\\\")?
        .split('\\')
        .filter(|s| !s.is_empty())
        .collect();
    if original.len() < prefix.len() {
        return None;
    }
    let covered = original
        .iter()
        .zip(&prefix)
        .all(|(a, b)| a.to_lowercase() == *b);
    covered.then(|| original[prefix.len()..].to_vec())
}

impl Shares {
    pub fn new(mappings: Vec<ShareMapping>, allowed_roots: Vec<String>) -> Shares {
        Shares {
            mappings,
            allowed_roots,
        }
    }

    /// Whether `unc` lies under an allowed root (no roots configured: nothing is allowed).
    pub fn check_allowed(&self, unc: &str) -> Result<(), ShareError> {
        let Some(all) = segments(unc) else {
            return Err(ShareError::NotUnc(unc.to_string()));
        };
        // Windows drops trailing dots and spaces from a name: "..", ". ." and "... " all walk up.
        if let Some(segment) = all.iter().find(|s| s.chars().all(|c| c == '.' || c == ' ')) {
            return Err(ShareError::DotSegment {
                path: unc.to_string(),
                segment: segment.clone(),
            });
        }
        let below: Vec<usize> = self
            .allowed_roots
            .iter()
            .filter_map(|root| strip(unc, root).map(|rest| rest.len()))
            .collect();
        if below.iter().any(|&depth| depth > 0) {
            Ok(())
        } else if !below.is_empty() {
            Err(ShareError::IsRoot(unc.to_string()))
        } else {
            Err(ShareError::NotAllowed {
                path: unc.to_string(),
                roots: if self.allowed_roots.is_empty() {
                    "none configured".into()
                } else {
                    self.allowed_roots.join(", ")
                },
            })
        }
    }

    /// Where `unc` is on this machine: through the longest matching mapping, or the UNC path
    /// itself (Windows opens UNC paths directly).
    pub fn to_local(&self, unc: &str) -> PathBuf {
        let best = self
            .mappings
            .iter()
            .filter_map(|m| strip(unc, &m.unc).map(|rest| (m, rest)))
            .max_by_key(|(m, _)| segments(&m.unc).map_or(0, |s| s.len()));
        match best {
            Some((mapping, rest)) => rest
                .iter()
                .fold(mapping.local.clone(), |path, segment| path.join(segment)),
            None => PathBuf::from(unc),
        }
    }

    /// `to_local` after `check_allowed`.
    pub fn writable_local(&self, unc: &str) -> Result<PathBuf, ShareError> {
        self.check_allowed(unc)?;
        Ok(self.to_local(unc))
    }

    /// The UNC roots the connector may write under.
    pub fn allowed_roots(&self) -> &[String] {
        &self.allowed_roots
    }

    pub fn mappings(&self) -> &[ShareMapping] {
        &self.mappings
    }
}

/// Whether `path` is `root` or lies beneath it, after normalising `.` and `..` lexically.
pub fn is_within(path: &Path, root: &Path) -> bool {
    fn normal(p: &Path) -> Vec<std::path::Component<'_>> {
        let mut out = Vec::new();
        for c in p.components() {
            match c {
                std::path::Component::CurDir => {}
                std::path::Component::ParentDir => {
                    out.pop();
                }
                other => out.push(other),
            }
        }
        out
    }
    let (path, root) = (normal(path), normal(root));
    path.len() >= root.len() && path[..root.len()] == root[..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shares() -> Shares {
        Shares::new(
            vec![
                ShareMapping {
                    unc: "\\\\FS01\\Sources$".into(),
                    local: PathBuf::from("/srv/sources"),
                },
                ShareMapping {
                    unc: "\\\\fs01\\sources$\\incoming".into(),
                    local: PathBuf::from("/mnt/incoming"),
                },
            ],
            vec!["\\\\FS01\\Sources$\\incoming".into()],
        )
    }

    #[test]
    fn the_longest_mapping_wins_case_insensitively() {
        let s = shares();
        assert_eq!(
            s.to_local("\\\\fs01\\SOURCES$\\incoming\\App 1"),
            PathBuf::from("/mnt/incoming/App 1")
        );
        assert_eq!(
            s.to_local("\\\\FS01\\Sources$\\other"),
            PathBuf::from("/srv/sources/other")
        );
        assert_eq!(s.to_local("\\\\FS02\\x"), PathBuf::from("\\\\FS02\\x"));
    }

    #[test]
    fn only_allowed_roots_are_writable() {
        let s = shares();
        assert!(
            s.writable_local("\\\\FS01\\Sources$\\incoming\\App")
                .is_ok()
        );
        assert!(matches!(
            s.check_allowed("\\\\FS01\\Sources$\\incoming"),
            Err(ShareError::IsRoot(_))
        ));
        assert!(matches!(
            s.check_allowed("\\\\fs01\\SOURCES$\\incoming\\"),
            Err(ShareError::IsRoot(_))
        ));
        for sneaky in ["..", ". .", "... ", "."] {
            assert!(
                matches!(
                    s.check_allowed(&format!("\\\\FS01\\Sources$\\incoming\\{sneaky}\\x")),
                    Err(ShareError::DotSegment { .. })
                ),
                "{sneaky:?}"
            );
        }
        assert!(matches!(
            s.check_allowed("\\\\FS01\\Sources$\\incoming2\\x"),
            Err(ShareError::NotAllowed { .. })
        ));
        assert!(matches!(
            s.check_allowed("\\\\FS01\\Sources$\\other"),
            Err(ShareError::NotAllowed { .. })
        ));
        assert!(matches!(
            s.check_allowed("C:\\x"),
            Err(ShareError::NotUnc(_))
        ));
        assert!(Shares::default().check_allowed("\\\\a\\b").is_err());
    }

    #[test]
    fn lexical_containment() {
        assert!(is_within(Path::new("/a/b/c"), Path::new("/a/b")));
        assert!(is_within(Path::new("/a/b"), Path::new("/a/b")));
        assert!(!is_within(Path::new("/a/b/../c"), Path::new("/a/b")));
        assert!(!is_within(Path::new("/a/bc"), Path::new("/a/b")));
    }
}
