//! The Flask original as a peer: its Python environment (a venv under the target directory,
//! made from `bench/flask-requirements.txt` when missing or stale) and its gunicorn command
//! line (gevent workers, one per core, as Flask is deployed for streaming).

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
};

use crate::venv::Venv;

/// The pinned requirements, from `bench/flask-requirements.txt`.
const REQUIREMENTS: &str = include_str!("../flask-requirements.txt");

/// The Flask original's venv in `dir`, made with `python` when missing or stale.
pub fn venv(dir: &Path, python: &str) -> anyhow::Result<Venv> {
    Venv::ensure(dir, python, REQUIREMENTS, "the Flask original")
}

/// The pinned `name==version` requirements, for the results' header.
pub fn pinned() -> Vec<&'static str> {
    crate::venv::pinned(REQUIREMENTS)
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
        let pins = pinned();
        for name in ["flask", "gunicorn", "gevent", "werkzeug", "greenlet"] {
            assert!(
                pins.iter().any(|p| p.starts_with(&format!("{name}=="))),
                "{name} is not pinned"
            );
        }
        crate::venv::tests::assert_pinned(&pins);
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
