//! The Flask original as a peer: its Python environment (a venv under the target directory,
//! made from `bench/flask-requirements.txt` when missing or stale) and its gunicorn command
//! line (gevent workers, one per core, as Flask is deployed for streaming).

use std::{
    fs,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, bail};

/// The pinned requirements, from `bench/flask-requirements.txt`.
const REQUIREMENTS: &str = include_str!("../flask-requirements.txt");
/// The file in the venv that records which requirements it was made from.
const STAMP: &str = "chunkstream-bench-requirements.txt";

/// A Python environment with Flask, gunicorn and gevent installed.
#[derive(Debug, Clone)]
pub struct Venv {
    /// The venv's directory.
    pub dir: PathBuf,
    /// `python --version` of its interpreter, e.g. `Python 3.11.7`.
    pub python_version: String,
}

impl Venv {
    /// The venv in `dir`, made with `python` and the pinned requirements when it is missing
    /// or was made from other requirements; says what it does.
    pub fn ensure(dir: &Path, python: &str) -> anyhow::Result<Self> {
        let stamp = dir.join(STAMP);
        let current = fs::read_to_string(&stamp).is_ok_and(|s| s == REQUIREMENTS);
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
                    "no Python environment for the Flask original yet: making one in {} \
                     ({python} -m venv, then pip install of bench/flask-requirements.txt from PyPI)",
                    dir.display()
                );
            }
            make(dir, python)?;
            fs::write(&stamp, REQUIREMENTS)?;
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

    /// The pinned `name==version` requirements, for the results' header.
    pub fn pinned() -> Vec<&'static str> {
        pinned(REQUIREMENTS)
    }
}

/// `python -m venv dir`, then `pip install -r` the requirements (written next to it).
fn make(dir: &Path, python: &str) -> anyhow::Result<()> {
    let status = Command::new(python)
        .args(["-m", "venv"])
        .arg(dir)
        .status()
        .with_context(|| format!("cannot run {python} (pass --python, or --skip-python)"))?;
    if !status.success() {
        bail!("`{python} -m venv {}` failed", dir.display());
    }
    let requirements = dir.join("requirements.txt");
    fs::write(&requirements, REQUIREMENTS)?;
    let status = Command::new(dir.join("bin/pip"))
        .args([
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
            "-r",
        ])
        .arg(&requirements)
        .status()
        .context("cannot run the venv's pip")?;
    if !status.success() {
        // A half-made venv must not pass for a ready one next time.
        let _ = fs::remove_dir_all(dir);
        bail!("pip could not install bench/flask-requirements.txt (is PyPI reachable?)");
    }
    Ok(())
}

/// The `name==version` lines of a requirements file.
fn pinned(requirements: &str) -> Vec<&str> {
    requirements
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// How to serve `bench/flask_app.py` with gunicorn.
#[derive(Debug, Clone)]
pub struct Gunicorn {
    /// The Python environment.
    pub venv: Venv,
    /// The directory of `flask_app.py`.
    pub app_dir: PathBuf,
    /// Worker processes (one per core).
    pub workers: usize,
    /// Connections each gevent worker serves at once (gunicorn's default is 1 000).
    pub worker_connections: u64,
}

impl Gunicorn {
    /// The command line, for the results' header.
    pub fn args(&self, addr: &str) -> Vec<String> {
        vec![
            "--worker-class".into(),
            "gevent".into(),
            "--workers".into(),
            self.workers.to_string(),
            "--worker-connections".into(),
            self.worker_connections.to_string(),
            "--bind".into(),
            addr.into(),
            // gunicorn 27 opens a control socket in the home directory by default: two
            // servers at once would share it.
            "--no-control-socket".into(),
            "--chdir".into(),
            self.app_dir.display().to_string(),
            "flask_app:app".into(),
        ]
    }

    /// The command that serves the app on `addr`.
    pub fn command(&self, addr: SocketAddr) -> Command {
        let mut c = Command::new(self.venv.dir.join("bin/gunicorn"));
        c.args(self.args(&addr.to_string()));
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_requirement_is_pinned_to_a_version() {
        let pins = pinned(REQUIREMENTS);
        for name in ["flask", "gunicorn", "gevent", "werkzeug", "greenlet"] {
            assert!(
                pins.iter().any(|p| p.starts_with(&format!("{name}=="))),
                "{name} is not pinned"
            );
        }
        for pin in pins {
            let (name, version) = pin.split_once("==").expect("name==version");
            assert!(!name.is_empty() && !version.is_empty(), "`{pin}`");
            assert!(!version.contains(['*', '<', '>', ',']), "`{pin}`");
        }
    }

    #[test]
    fn gunicorn_runs_gevent_workers_of_the_app_in_bench() {
        let g = Gunicorn {
            venv: Venv {
                dir: PathBuf::from("/v"),
                python_version: String::new(),
            },
            app_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")),
            workers: 2,
            worker_connections: 19_000,
        };
        let args = g.args("127.0.0.1:3003").join(" ");
        assert!(args.contains("--worker-class gevent --workers 2"), "{args}");
        assert!(args.ends_with("flask_app:app"), "{args}");
        assert!(g.app_dir.join("flask_app.py").is_file());
    }
}
