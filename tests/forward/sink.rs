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
    /// `status` with this `Location` (a redirect).
    Redirect(u16, &'static str),
    /// A sink that misbehaves as real endpoints do, at random (seeded): per request one of 200,
    /// 500, 502, 503, 429 with Retry-After: 0, 301 to another path, a connection closed with no
    /// answer, or 200 after up to 300 ms. `good` in 100 of the requests answer 200 at once.
    Chaos {
        seed: u64,
        good: u64,
    },
}

/// A small generator for the chaos (no crate needed).
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// What the sink does with one request.
enum Act {
    Answer(u16, Option<&'static str>, Option<&'static str>),
    Close,
    Slow(u16, Duration),
}

pub struct Sink {
    pub port: u16,
    got: Arc<Mutex<Vec<Request>>>,
}

impl Sink {
    pub fn start(answer: Answer) -> Sink {
        Sink::start_on(0, answer)
    }

    /// On `port` (0: any free one).
    pub fn start_on(port: u16, answer: Answer) -> Sink {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
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

    /// Each request's webhook-id, in the order they came.
    pub fn ids(&self) -> Vec<String> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.header("webhook-id").expect("a webhook-id").to_string())
            .collect()
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
        let act = {
            let mut g = got.lock().unwrap();
            let n = g.len();
            let act = match answer {
                Answer::Ok => Act::Answer(200, None, None),
                Answer::Delay(d) => Act::Slow(200, *d),
                Answer::Always(s) => Act::Answer(*s, None, None),
                Answer::FailFirst(k, s, ra) if n < *k => Act::Answer(*s, *ra, None),
                Answer::FailFirst(..) => Act::Answer(200, None, None),
                Answer::Redirect(s, l) => Act::Answer(*s, None, Some(*l)),
                Answer::Chaos { seed, good } => {
                    let mut r = XorShift(
                        seed.wrapping_add((n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1,
                    );
                    let (a, b) = (r.next() % 100, r.next());
                    if a < *good {
                        Act::Answer(200, None, None)
                    } else {
                        match b % 8 {
                            0 => Act::Answer(500, None, None),
                            1 => Act::Answer(502, None, None),
                            2 => Act::Answer(503, None, None),
                            3 => Act::Answer(429, Some("0"), None),
                            4 => Act::Answer(301, None, Some("/moved")),
                            5 => Act::Close,
                            _ => Act::Slow(200, Duration::from_millis(b % 300)),
                        }
                    }
                }
            };
            let status = match act {
                Act::Answer(s, ..) | Act::Slow(s, _) => s,
                Act::Close => 0,
            };
            g.push(Request {
                path,
                headers,
                body,
                status,
                at: std::time::Instant::now(),
            });
            act
        };
        let (status, retry_after, location) = match act {
            Act::Close => return,
            Act::Slow(s, d) => {
                std::thread::sleep(d);
                (s, None, None)
            }
            Act::Answer(s, ra, l) => (s, ra, l),
        };
        let mut reply = format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\n");
        if let Some(ra) = retry_after {
            reply.push_str(&format!("retry-after: {ra}\r\n"));
        }
        if let Some(l) = location {
            reply.push_str(&format!("location: {l}\r\n"));
        }
        reply.push_str("\r\nok");
        if w.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}
