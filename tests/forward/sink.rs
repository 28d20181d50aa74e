//! A sink for the forwarder's tests: an HTTP/1.1 server on 127.0.0.1 that records every request
//! (keep-alive connections included) and answers as told.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Request {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// What the sink answered.
    pub status: u16,
    /// When it arrived.
    pub at: std::time::Instant,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// How the sink answers.
#[derive(Clone)]
pub enum Answer {
    Ok,
    /// `status` for every request.
    Always(u16),
    /// `status` (with this Retry-After) for the first `n` requests, then 200.
    FailFirst(usize, u16, Option<&'static str>),
    /// 200 after a pause.
    Delay(Duration),
}

pub struct Sink {
    pub port: u16,
    got: Arc<Mutex<Vec<Request>>>,
}

impl Sink {
    pub fn start(answer: Answer) -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let got: Arc<Mutex<Vec<Request>>> = Arc::default();
        let g = got.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (g, answer) = (g.clone(), answer.clone());
                std::thread::spawn(move || serve(conn, &g, &answer));
            }
        });
        Sink { port, got }
    }

    pub fn requests(&self) -> Vec<Request> {
        self.got.lock().unwrap().clone()
    }

    /// Each request's webhook-id and when it arrived.
    pub fn arrivals(&self) -> Vec<(String, std::time::Instant)> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|r| (r.header("webhook-id").unwrap_or("").to_string(), r.at))
            .collect()
    }
}

fn serve(conn: TcpStream, got: &Mutex<Vec<Request>>, answer: &Answer) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(60)));
    let mut w = conn.try_clone().unwrap();
    let mut r = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((n, v)) = h.split_once(':') {
                headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let len: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let (status, retry_after) = {
            let mut g = got.lock().unwrap();
            let n = g.len();
            let (status, ra) = match answer {
                Answer::Ok | Answer::Delay(_) => (200, None),
                Answer::Always(s) => (*s, None),
                Answer::FailFirst(k, s, ra) if n < *k => (*s, *ra),
                Answer::FailFirst(..) => (200, None),
            };
            g.push(Request {
                path,
                headers,
                body,
                status,
                at: std::time::Instant::now(),
            });
            (status, ra)
        };
        if let Answer::Delay(d) = answer {
            std::thread::sleep(*d);
        }
        let mut reply = format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\n");
        if let Some(ra) = retry_after {
            reply.push_str(&format!("retry-after: {ra}\r\n"));
        }
        reply.push_str("\r\nok");
        if w.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}
