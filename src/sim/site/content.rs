//! Content locations: UNC paths resolved through the site's share map to local directories, and
//! the files ConfigMgr would capture from them.

use super::config::SiteConfig;
use super::state::ContentFile;
use std::path::{Path, PathBuf};

/// At most this many files are captured from one content folder.
const MAX_FILES: usize = 100_000;

/// The local directory a UNC path stands for, if a share of the map covers it and the path has
/// no `.`/`..`/empty segments (a trailing `\` is allowed).
pub fn resolve_unc(config: &SiteConfig, unc: &str) -> Option<PathBuf> {
    if !unc.starts_with("\\\\") {
        return None;
    }
    let lower = unc.to_lowercase();
    config.shares.iter().find_map(|share| {
        let prefix = share.unc.trim_end_matches('\\').to_lowercase();
        let rest = lower.strip_prefix(&prefix)?;
        if !(rest.is_empty() || rest.starts_with('\\')) {
            return None;
        }
        // Take the rest from the original spelling (the share map is case-insensitive, the
        // folders below it are whatever the directory holds).
        let original_rest = &unc[unc.len() - rest.len()..];
        let trimmed = original_rest.trim_start_matches('\\');
        let trimmed = trimmed.strip_suffix('\\').unwrap_or(trimmed);
        let mut path = share.local.clone();
        if !trimmed.is_empty() {
            for segment in trimmed.split('\\') {
                if segment.is_empty() || segment == "." || segment == ".." || segment.contains('/')
                {
                    return None;
                }
                path.push(segment);
            }
        }
        Some(path)
    })
}

/// The files below `dir`, relative names `\`-separated, sorted; `None` if `dir` is not a
/// readable directory.
pub fn scan(dir: &Path) -> Option<Vec<ContentFile>> {
    if !dir.is_dir() {
        return None;
    }
    let mut files = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((path, prefix)) = stack.pop() {
        let entries = std::fs::read_dir(&path).ok()?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let relative = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}\\{name}")
            };
            let Ok(meta) = std::fs::metadata(entry.path()) else {
                continue;
            };
            if meta.is_dir() {
                stack.push((entry.path(), relative));
            } else {
                files.push(ContentFile {
                    name: relative,
                    size: meta.len(),
                });
                if files.len() >= MAX_FILES {
                    break;
                }
            }
        }
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Some(files)
}

#[cfg(test)]
mod tests {
    use super::super::config::{InitOptions, SiteConfig};
    use super::*;

    fn config(local: &Path) -> SiteConfig {
        SiteConfig::from_options(
            local,
            &InitOptions {
                shares: vec![("\\\\WIN-2HDJCBHRRVB\\Sources$".into(), local.to_path_buf())],
                ..InitOptions::default()
            },
        )
        .expect("config")
    }

    #[test]
    fn unc_paths_map_case_insensitively_and_refuse_escapes() {
        let config = config(Path::new("/srv/sources"));
        assert_eq!(
            resolve_unc(
                &config,
                "\\\\win-2hdjcbhrrvb\\SOURCES$\\incoming\\App (x)\\"
            ),
            Some(PathBuf::from("/srv/sources/incoming/App (x)"))
        );
        assert_eq!(
            resolve_unc(&config, "\\\\WIN-2HDJCBHRRVB\\Sources$"),
            Some(PathBuf::from("/srv/sources"))
        );
        for bad in [
            "\\\\WIN-2HDJCBHRRVB\\Sources$\\..\\etc",
            "\\\\WIN-2HDJCBHRRVB\\Sources$\\a\\\\b",
            "\\\\WIN-2HDJCBHRRVB\\Sources$x\\a",
            "\\\\OTHER\\Sources$\\a",
            "C:\\Sources\\a",
            "\\\\WIN-2HDJCBHRRVB\\Sources$\\a/../../b",
        ] {
            assert_eq!(resolve_unc(&config, bad), None, "{bad}");
        }
    }

    #[test]
    fn scanning_lists_files_recursively() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("Files")).expect("mkdir");
        std::fs::write(dir.path().join("Deploy-Application.exe"), b"MZ").expect("write");
        std::fs::write(dir.path().join("Files").join("setup.msi"), b"abc").expect("write");
        let files = scan(dir.path()).expect("a directory");
        assert_eq!(
            files,
            vec![
                ContentFile {
                    name: "Deploy-Application.exe".into(),
                    size: 2
                },
                ContentFile {
                    name: "Files\\setup.msi".into(),
                    size: 3
                }
            ]
        );
        assert_eq!(scan(&dir.path().join("missing")), None);
    }
}
