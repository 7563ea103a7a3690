//! A static HTTP/1.1 file server on 127.0.0.1 for the tests that stand in for PyPI's JSON
//! API, the PyTorch wheel indexes and a registry's tag list: `GET /a/b?x` answers the file
//! `ROOT/a/b` (`ROOT/a/b/index.html` for `/a/b/` or a directory), 404 otherwise. Each
//! request path is recorded, so a test can check what was asked.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A running server; it stops with the test process.
pub struct FileServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    asked: Arc<Mutex<Vec<String>>>,
}

impl FileServer {
    /// Serve `root`.
    pub fn start(root: &Path) -> FileServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let asked = Arc::new(Mutex::new(Vec::new()));
        let (root, log) = (root.to_path_buf(), asked.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (root, log) = (root.clone(), log.clone());
                std::thread::spawn(move || serve(conn, &root, &log));
            }
        });
        FileServer { url, asked }
    }

    /// The paths asked for so far, in order (without the query).
    pub fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}

/// The file a request path maps to under `root`.
pub fn file_for(root: &Path, path: &str) -> PathBuf {
    let path = path.split(['?', '#']).next().unwrap_or("");
    let mut p = root.join(path.trim_start_matches('/'));
    if path.ends_with('/') || p.is_dir() {
        p = p.join("index.html");
    }
    p
}

fn serve(conn: TcpStream, root: &Path, log: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(conn.try_clone().expect("clone the stream"));
    let mut conn = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        // Headers, up to the blank line (GET requests have no body).
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" || h == "\n" {
                break;
            }
        }
        log.lock()
            .unwrap()
            .push(path.split('?').next().unwrap_or("").to_string());
        let file = file_for(root, &path);
        let (status, body) = match std::fs::read(&file) {
            Ok(b) if !path.contains("..") => ("200 OK", b),
            _ => ("404 Not Found", b"not found".to_vec()),
        };
        let kind = if file.extension().is_some_and(|e| e == "html") {
            "text/html"
        } else {
            "application/json"
        };
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        if conn.write_all(head.as_bytes()).is_err() || conn.write_all(&body).is_err() {
            return;
        }
    }
}
