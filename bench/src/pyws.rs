//! python `websockets` as a peer in the compression scenario: its venv (from
//! `bench/websockets-requirements.txt`) and the command that serves `bench/ws_held.py`, which
//! holds chunk streams with the library's defaults, compressed or not.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
};

use crate::venv::Venv;

/// The pinned requirements, from `bench/websockets-requirements.txt`.
const REQUIREMENTS: &str = include_str!("../websockets-requirements.txt");

/// How to serve `bench/ws_held.py`.
#[derive(Debug, Clone)]
pub struct PyWs {
    /// The Python environment with `websockets`.
    pub venv: Venv,
    /// The directory of `ws_held.py`.
    pub app_dir: PathBuf,
}

impl PyWs {
    /// The peer, with its venv in `dir` made with `python` when missing or stale.
    pub fn ensure(dir: &Path, python: &str) -> anyhow::Result<Self> {
        Ok(Self {
            venv: Venv::ensure(dir, python, REQUIREMENTS, "python websockets")?,
            app_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")),
        })
    }

    /// The pinned `name==version` requirements, for the results.
    pub fn pinned() -> Vec<&'static str> {
        crate::venv::pinned(REQUIREMENTS)
    }

    /// The command that serves on `addr`, with permessage-deflate as the library's default
    /// or declined.
    pub fn command(&self, addr: SocketAddr, compression: bool) -> Command {
        let mut c = Command::new(self.venv.dir.join("bin/python"));
        c.arg(self.app_dir.join("ws_held.py")).arg(addr.to_string());
        if !compression {
            c.arg("--no-compression");
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websockets_is_pinned_and_the_script_is_there() {
        crate::venv::tests::assert_pinned(&PyWs::pinned());
        assert!(PyWs::pinned().iter().any(|p| p.starts_with("websockets==")));
        assert!(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("ws_held.py")
                .is_file()
        );
    }
}
