//! Python environments for the Python peers (the Flask original, python `websockets`): a venv
//! under the target directory, made from a pinned requirements file when it is missing or was
//! made from other requirements, so that each run measures the same code.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, bail};

/// The file in the venv that records which requirements it was made from.
const STAMP: &str = "chunkstream-bench-requirements.txt";

/// A Python environment with a peer's packages installed.
#[derive(Debug, Clone)]
pub struct Venv {
    /// The venv's directory.
    pub dir: PathBuf,
    /// `python --version` of its interpreter, e.g. `Python 3.11.7`.
    pub python_version: String,
}

impl Venv {
    /// The venv in `dir`, made with `python` and `requirements` (the text of a pinned
    /// requirements file) when it is missing or was made from other requirements; says what
    /// it does, naming what it is `for_what`.
    pub fn ensure(
        dir: &Path,
        python: &str,
        requirements: &str,
        for_what: &str,
    ) -> anyhow::Result<Self> {
        let stamp = dir.join(STAMP);
        let current = fs::read_to_string(&stamp).is_ok_and(|s| s == requirements);
        if !current {
            if dir.exists() {
                println!(
                    "the Python environment in {} was made from other requirements: remaking it",
                    dir.display()
                );
                fs::remove_dir_all(dir)
                    .with_context(|| format!("cannot remove {}", dir.display()))?;
            } else {
                println!(
                    "no Python environment for {for_what} yet: making one in {} \
                     ({python} -m venv, then pip install of {} pinned packages from PyPI)",
                    dir.display(),
                    pinned(requirements).len()
                );
            }
            make(dir, python, requirements)?;
            fs::write(&stamp, requirements)?;
            println!("Python environment ready in {}", dir.display());
        }
        let out = Command::new(dir.join("bin/python"))
            .arg("--version")
            .output()
            .context("cannot run the venv's python")?;
        Ok(Self {
            dir: dir.to_path_buf(),
            python_version: String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        })
    }
}

/// `python -m venv dir`, then `pip install -r` the requirements (written next to it).
fn make(dir: &Path, python: &str, requirements: &str) -> anyhow::Result<()> {
    let status = Command::new(python)
        .args(["-m", "venv"])
        .arg(dir)
        .status()
        .with_context(|| format!("cannot run {python} (pass --python, or --skip-python)"))?;
    if !status.success() {
        bail!("`{python} -m venv {}` failed", dir.display());
    }
    let file = dir.join("requirements.txt");
    fs::write(&file, requirements)?;
    let status = Command::new(dir.join("bin/pip"))
        .args([
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
            "-r",
        ])
        .arg(&file)
        .status()
        .context("cannot run the venv's pip")?;
    if !status.success() {
        // A half-made venv must not pass for a ready one next time.
        let _ = fs::remove_dir_all(dir);
        bail!(
            "pip could not install {} (is PyPI reachable?)",
            file.display()
        );
    }
    Ok(())
}

/// The `name==version` lines of a requirements file.
pub fn pinned(requirements: &str) -> Vec<&str> {
    requirements
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

#[cfg(test)]
pub mod tests {
    /// Every requirement names one exact version.
    pub fn assert_pinned(pins: &[&str]) {
        assert!(!pins.is_empty());
        for pin in pins {
            let (name, version) = pin.split_once("==").expect("name==version");
            assert!(!name.is_empty() && !version.is_empty(), "`{pin}`");
            assert!(!version.contains(['*', '<', '>', ',']), "`{pin}`");
        }
    }
}
