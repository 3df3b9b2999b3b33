//! Webhooks over HTTP(S): tunerd's own JSON body with Standard Webhooks headers, and
//! Alertmanager's API v2.
//!
//! Disk independence: a hung root disk must not stall delivery. So the TLS roots are read once
//! at start (the system bundle through the [`Root`], else the Mozilla roots compiled in), and
//! host names are resolved on helper threads and served from a cache ([`DnsCache`]): a
//! delivery never calls `getaddrinfo` (which reads nsswitch.conf, /etc/hosts and resolv.conf)
//! itself. Answers are refreshed in the background every 5 minutes and after a failed connect
//! (at most every 30 s); a lookup that hangs keeps the last good addresses in use.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

use super::config::Endpoint;
use super::{lock, truncate_at, Attempt};
use crate::detect::types::{Incident, IncidentState, Notification};
use crate::host::sys::Root;
use crate::util::time::{now_ms, parse_retry_after, rfc3339_ms};

/// CA bundles of the distributions tunerd runs on, first found wins.
const CA_BUNDLES: &[&str] = &[
    "etc/ssl/certs/ca-certificates.crt",
    "etc/pki/tls/certs/ca-bundle.crt",
    "etc/ssl/ca-bundle.pem",
    "etc/ssl/cert.pem",
];
/// How long cached addresses are used before a background refresh.
const DNS_TTL: Duration = Duration::from_secs(300);
/// Refresh after a failed connect, but not more often than this.
const DNS_RETRY_GAP: Duration = Duration::from_secs(30);
/// A `Retry-After` beyond this is capped: tunerd would rather ask again.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The TLS roots, read once: the system bundle (so a private CA installed with
/// update-ca-certificates works), else webpki-roots (compiled in, no file at all).
pub(crate) fn load_roots(root: &Root) -> ureq::tls::TlsConfig {
    use ureq::tls::{parse_pem, PemItem, RootCerts, TlsConfig};
    for rel in CA_BUNDLES {
        let Ok(Some(text)) = root.read_opt(rel) else {
            continue;
        };
        let certs: Vec<_> = parse_pem(text.as_bytes())
            .filter_map(|item| match item {
                Ok(PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        if certs.is_empty() {
            continue;
        }
        crate::log!(
            info,
            "alert: {} TLS root certificates loaded from {}",
            certs.len(),
            root.display(rel)
        );
        return TlsConfig::builder()
            .root_certs(RootCerts::Specific(Arc::new(certs)))
            .build();
    }
    crate::log!(
        info,
        "alert: no CA bundle under {}; using the built-in Mozilla roots",
        root.display("etc/ssl")
    );
    TlsConfig::builder().root_certs(RootCerts::WebPki).build()
}

#[derive(Debug, Default)]
struct DnsState {
    addrs: Vec<SocketAddr>,
    resolving: bool,
    started: Option<Instant>,
    resolved: Option<Instant>,
    error: Option<String>,
}

/// One host's addresses, looked up off the delivery path.
#[derive(Debug)]
pub(crate) struct DnsCache {
    host: String,
    port: u16,
    /// An IP literal: nothing to look up.
    fixed: bool,
    state: Mutex<DnsState>,
    changed: Condvar,
}

impl DnsCache {
    pub(crate) fn new(host: &str, port: u16) -> Arc<DnsCache> {
        let mut state = DnsState::default();
        let fixed = match host.parse::<IpAddr>() {
            Ok(ip) => {
                state.addrs = vec![SocketAddr::new(ip, port)];
                true
            }
            Err(_) => false,
        };
        Arc::new(DnsCache {
            host: host.to_string(),
            port,
            fixed,
            state: Mutex::new(state),
            changed: Condvar::new(),
        })
    }

    /// Starts a lookup on a helper thread, unless one is running (maybe hung on the disk) or
    /// one started less than `gap` ago.
    pub(crate) fn refresh(self: &Arc<Self>, gap: Duration) {
        if self.fixed {
            return;
        }
        {
            let mut st = lock(&self.state);
            if st.resolving || st.started.is_some_and(|t| t.elapsed() < gap) {
                return;
            }
            st.resolving = true;
            st.started = Some(Instant::now());
        }
        let me = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("alert-dns".into())
            .spawn(move || {
                let result = (me.host.as_str(), me.port)
                    .to_socket_addrs()
                    .map(|it| it.collect::<Vec<_>>());
                let mut st = lock(&me.state);
                st.resolving = false;
                match result {
                    Ok(addrs) if !addrs.is_empty() => {
                        st.addrs = addrs;
                        st.resolved = Some(Instant::now());
                        st.error = None;
                    }
                    Ok(_) => st.error = Some("no address".to_string()),
                    Err(e) => st.error = Some(e.to_string()),
                }
                me.changed.notify_all();
            });
        if let Err(e) = spawned {
            let mut st = lock(&self.state);
            st.resolving = false;
            st.error = Some(format!("cannot start a lookup thread: {e}"));
        }
    }

    /// The cached addresses; with none yet, waits up to `wait` for a lookup.
    fn addrs(self: &Arc<Self>, wait: Duration) -> Result<Vec<SocketAddr>, String> {
        let stale = {
            let st = lock(&self.state);
            if !st.addrs.is_empty() {
                let stale = !self.fixed && st.resolved.is_none_or(|t| t.elapsed() > DNS_TTL);
                let addrs = st.addrs.clone();
                drop(st);
                if stale {
                    self.refresh(DNS_RETRY_GAP);
                }
                return Ok(addrs);
            }
            true
        };
        if stale {
            self.refresh(Duration::ZERO);
        }
        let deadline = Instant::now() + wait;
        let mut st = lock(&self.state);
        while st.addrs.is_empty() && st.resolving {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            st = self
                .changed
                .wait_timeout(st, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        if st.addrs.is_empty() {
            Err(match (&st.error, st.resolving) {
                (_, true) => format!("looking up {} takes too long", self.host),
                (Some(e), false) => format!("cannot resolve {}: {e}", self.host),
                (None, false) => format!("cannot resolve {}", self.host),
            })
        } else {
            Ok(st.addrs.clone())
        }
    }

    fn error(&self) -> Option<String> {
        lock(&self.state).error.clone()
    }
}

/// ureq's resolver hook, answering from the cache.
#[derive(Debug)]
struct CachedResolver {
    dns: Arc<DnsCache>,
    wait: Duration,
}

impl Resolver for CachedResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        _config: &ureq::config::Config,
        _timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let host = uri
            .host()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'));
        if host != Some(self.dns.host.as_str()) {
            // Each agent talks to its one URL; anything else is not ours to look up.
            return Err(ureq::Error::HostNotFound);
        }
        let addrs = self
            .dns
            .addrs(self.wait)
            .map_err(|_| ureq::Error::HostNotFound)?;
        let mut out = self.empty();
        for a in addrs.into_iter().take(16) {
            out.push(a);
        }
        Ok(out)
    }
}

/// One HTTP(S) receiver.
pub(crate) struct HttpSink {
    agent: ureq::Agent,
    url: String,
    key: Option<Vec<u8>>,
    headers: Vec<(String, String)>,
    dns: Arc<DnsCache>,
    /// With a Retry-After, never ask again sooner than this.
    min_retry: Duration,
}

impl HttpSink {
    pub(crate) fn new(
        url: &str,
        target: &Endpoint,
        timeout: Duration,
        tls: Option<ureq::tls::TlsConfig>,
        key: Option<Vec<u8>>,
        headers: Vec<(String, String)>,
        min_retry: Duration,
    ) -> HttpSink {
        let dns = DnsCache::new(&target.host, target.port);
        // Resolve now, at start, not on the first delivery.
        dns.refresh(Duration::ZERO);
        let mut builder = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .timeout_global(Some(timeout))
            .user_agent(format!("tunerd/{}", env!("CARGO_PKG_VERSION")))
            .max_idle_connections_per_host(2);
        if let Some(tls) = tls {
            builder = builder.tls_config(tls);
        }
        let resolver = CachedResolver {
            dns: Arc::clone(&dns),
            wait: timeout,
        };
        let agent = ureq::Agent::with_parts(builder.build(), DefaultConnector::default(), resolver);
        HttpSink {
            agent,
            url: url.to_string(),
            key,
            headers,
            dns,
            min_retry,
        }
    }

    /// POSTs one JSON body. `id` is the `webhook-id` (percent-encoded, see [`header_id`]): the
    /// same on every retry.
    pub(crate) fn post(&self, id: &str, body: &[u8]) -> Attempt {
        let id = header_id(id);
        let id: &str = &id;
        let ts = now_ms() / 1000;
        let mut req = self
            .agent
            .post(&self.url)
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string());
        if let Some(key) = &self.key {
            req = req.header("webhook-signature", signature(key, id, ts, body));
        }
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        match req.send(body) {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                if (200..300).contains(&status) {
                    return Attempt::Delivered;
                }
                let retry_after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, now_ms()))
                    .map(|d| d.max(self.min_retry).min(MAX_RETRY_AFTER));
                let location = resp
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let mut snippet = Vec::new();
                let _ = resp
                    .body_mut()
                    .as_reader()
                    .take(200)
                    .read_to_end(&mut snippet);
                let snippet = String::from_utf8_lossy(&snippet);
                let snippet: String = snippet.split_whitespace().collect::<Vec<_>>().join(" ");
                let why = if snippet.is_empty() {
                    format!("HTTP {status}")
                } else {
                    format!("HTTP {status}: {snippet}")
                };
                match status {
                    408 | 425 | 429 | 500..=599 => Attempt::Retry {
                        why,
                        after: retry_after,
                    },
                    300..=399 => Attempt::Reject(format!(
                        "{why}; redirects are not followed: configure the final URL{}",
                        location.map(|l| format!(" ({l})")).unwrap_or_default()
                    )),
                    _ => Attempt::Reject(why),
                }
            }
            Err(ureq::Error::Http(e)) => {
                Attempt::Reject(format!("the request cannot be made: {e}"))
            }
            Err(ureq::Error::HostNotFound) => {
                self.dns.refresh(DNS_RETRY_GAP);
                let why = self
                    .dns
                    .error()
                    .map(|e| format!("cannot resolve {}: {e}", self.dns.host))
                    .unwrap_or_else(|| format!("no address for {} yet", self.dns.host));
                Attempt::Retry { why, after: None }
            }
            Err(e) => {
                if matches!(
                    e,
                    ureq::Error::Io(_) | ureq::Error::ConnectionFailed | ureq::Error::Timeout(_)
                ) {
                    self.dns.refresh(DNS_RETRY_GAP);
                }
                Attempt::Retry {
                    why: e.to_string(),
                    after: None,
                }
            }
        }
    }
}

/// A notification id as a header value: ids embed device names from the kernel log, which may
/// hold any byte (a control character made every webhook refuse the notification as an
/// invalid header). Everything outside visible ASCII, and `%` itself, is percent-encoded
/// (UTF-8 bytes, upper-case hex), so an id is sent whole and decodes back to itself; ids of
/// visible ASCII (all of them but such names) are sent as they are. The signature covers the
/// header value, as Standard Webhooks receivers compute it; the JSON body keeps the id as is.
pub(crate) fn header_id(id: &str) -> Cow<'_, str> {
    let plain = |b: u8| b.is_ascii_graphic() && b != b'%';
    if id.bytes().all(plain) {
        return Cow::Borrowed(id);
    }
    let mut out = String::with_capacity(id.len() + 16);
    for b in id.bytes() {
        if plain(b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    Cow::Owned(out)
}

/// Standard Webhooks: `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")).
pub(crate) fn signature(key: &[u8], id: &str, ts: u64, body: &[u8]) -> String {
    use base64::Engine;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(id.as_bytes());
    ctx.update(b".");
    ctx.update(ts.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(ctx.sign().as_ref())
    )
}

/// tunerd's webhook body, version 1 (docs/alerts.md). New fields may be added within a
/// version; a field changing meaning or going away makes version 2.
#[derive(Serialize)]
struct TunerdBody<'a> {
    version: u32,
    id: &'a str,
    event: IncidentState,
    host: &'a str,
    created_at: String,
    sent_at: String,
    incident: &'a Incident,
}

pub(crate) fn tunerd_body(n: &Notification, host: &str, sent_ms: u64) -> Vec<u8> {
    let body = TunerdBody {
        version: 1,
        id: &n.id,
        event: n.event,
        host,
        created_at: rfc3339_ms(n.created_ms),
        sent_at: rfc3339_ms(sent_ms),
        incident: &n.incident,
    };
    // Serializing plain structs of strings and numbers cannot fail.
    serde_json::to_vec(&body).unwrap_or_default()
}

/// An alert Alertmanager knows about as firing: what to re-send, and the labels to resolve
/// it with (even if the incident's disk or mounts changed meanwhile).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ActiveAlert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: String,
    /// Its resolution is queued: stop re-sending it.
    #[serde(default)]
    pub resolving: bool,
}

#[derive(Serialize)]
struct PostableAlert<'a> {
    labels: &'a BTreeMap<String, String>,
    annotations: &'a BTreeMap<String, String>,
    #[serde(rename = "startsAt")]
    starts_at: &'a str,
    #[serde(rename = "endsAt")]
    ends_at: String,
    #[serde(rename = "generatorURL", skip_serializing_if = "Option::is_none")]
    generator_url: Option<&'a str>,
}

/// Alertmanager's identity of an incident: `alertname` (the kind), `instance` (the host),
/// `severity`, `incident_id`, and `disk`, `device`, `mount` when known.
pub(crate) fn am_labels(inc: &Incident, host: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    labels.insert("alertname".to_string(), inc.kind.name());
    labels.insert("instance".to_string(), host.to_string());
    labels.insert("severity".to_string(), inc.severity.as_str().to_string());
    labels.insert("incident_id".to_string(), inc.id.clone());
    labels.insert("job".to_string(), "tunerd".to_string());
    let optional = [
        ("disk", inc.disk.clone()),
        ("device", inc.device.clone()),
        ("mount", Some(inc.mounts.join(","))),
    ];
    for (k, v) in optional {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            labels.insert(k.to_string(), v);
        }
    }
    labels
}

pub(crate) fn am_annotations(inc: &Incident) -> BTreeMap<String, String> {
    let mut a = BTreeMap::new();
    a.insert("summary".to_string(), inc.summary.clone());
    let mut description = inc.evidence.join("\n");
    truncate_at(&mut description, 4000);
    if !description.is_empty() {
        a.insert("description".to_string(), description);
    }
    a.insert("source".to_string(), inc.source.clone());
    a.insert("count".to_string(), inc.count.to_string());
    if let Some(fs) = &inc.fstype {
        a.insert("fstype".to_string(), fs.clone());
    }
    a
}

/// An Alertmanager (API v2) receiver.
pub(crate) struct Alertmanager {
    pub http: HttpSink,
    pub resend: Duration,
    pub generator_url: Option<String>,
    pub host: String,
}

impl Alertmanager {
    /// `endsAt` of a firing alert: 4 resend intervals ahead (as Prometheus does), so it
    /// stays firing between re-sends whatever Alertmanager's `resolve_timeout`.
    fn firing_until(&self, now: u64) -> String {
        rfc3339_ms(now + 4 * self.resend.as_millis() as u64)
    }

    /// The request for one notification, and the alert's state once it is delivered
    /// (`None`: no longer firing).
    pub(crate) fn payload(
        &self,
        n: &Notification,
        prev: Option<&ActiveAlert>,
        now: u64,
    ) -> (Vec<u8>, Option<ActiveAlert>) {
        let inc = &n.incident;
        let generator = self.generator_url.as_deref();
        let annotations = am_annotations(inc);
        match n.event {
            IncidentState::Firing => {
                let state = ActiveAlert {
                    labels: am_labels(inc, &self.host),
                    annotations,
                    starts_at: rfc3339_ms(inc.started.saturating_mul(1000)),
                    resolving: false,
                };
                let mut alerts = vec![PostableAlert {
                    labels: &state.labels,
                    annotations: &state.annotations,
                    starts_at: &state.starts_at,
                    ends_at: self.firing_until(now),
                    generator_url: generator,
                }];
                // The incident's identity changed (escalated severity, a new mount): the
                // old alert ends now instead of lingering until its endsAt.
                if let Some(p) = prev.filter(|p| p.labels != state.labels) {
                    alerts.push(PostableAlert {
                        labels: &p.labels,
                        annotations: &p.annotations,
                        starts_at: &p.starts_at,
                        ends_at: rfc3339_ms(now),
                        generator_url: generator,
                    });
                }
                let body = serde_json::to_vec(&alerts).unwrap_or_default();
                (body, Some(state))
            }
            IncidentState::Resolved => {
                let labels = prev
                    .map(|p| p.labels.clone())
                    .unwrap_or_else(|| am_labels(inc, &self.host));
                let starts_at = prev
                    .map(|p| p.starts_at.clone())
                    .unwrap_or_else(|| rfc3339_ms(inc.started.saturating_mul(1000)));
                let ended = inc
                    .ended
                    .map(|s| s.saturating_mul(1000))
                    .unwrap_or(n.created_ms)
                    .max(inc.started.saturating_mul(1000));
                let alerts = [PostableAlert {
                    labels: &labels,
                    annotations: &annotations,
                    starts_at: &starts_at,
                    ends_at: rfc3339_ms(ended),
                    generator_url: generator,
                }];
                (serde_json::to_vec(&alerts).unwrap_or_default(), None)
            }
        }
    }

    /// Re-sends every firing alert, so Alertmanager keeps them active.
    pub(crate) fn resend(&self, alerts: &[ActiveAlert], now: u64) -> Attempt {
        let until = self.firing_until(now);
        let list: Vec<PostableAlert<'_>> = alerts
            .iter()
            .map(|a| PostableAlert {
                labels: &a.labels,
                annotations: &a.annotations,
                starts_at: &a.starts_at,
                ends_at: until.clone(),
                generator_url: self.generator_url.as_deref(),
            })
            .collect();
        let body = serde_json::to_vec(&list).unwrap_or_default();
        self.http
            .post(&format!("resend-{}-{now}", self.host), &body)
    }
}

/// `{base}/api/v2/alerts`, unless the URL already names it.
pub(crate) fn alertmanager_url(base: &str) -> String {
    let (path, query) = match base.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (base, None),
    };
    let path = path.trim_end_matches('/');
    let mut url = if path.ends_with("/api/v2/alerts") {
        path.to_string()
    } else {
        format!("{path}/api/v2/alerts")
    };
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_webhooks_test_vector() {
        // From the Standard Webhooks specification's reference implementations.
        let key = super::super::config::secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .expect("key");
        assert_eq!(
            signature(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn ids_are_percent_encoded_in_headers() {
        assert_eq!(
            header_id("disk/sda/1795330000/firing"),
            "disk/sda/1795330000/firing"
        );
        assert!(matches!(header_id("a-b_c.d:e"), Cow::Borrowed(_)));
        assert_eq!(
            header_id("disk/\u{1b}]0;OWNED\u{7}x/firing"),
            "disk/%1B]0;OWNED%07x/firing"
        );
        assert_eq!(
            header_id("100% b\u{fc}cher\x7f\n"),
            "100%25%20b%C3%BCcher%7F%0A"
        );
    }

    /// The review's finding: a device name with ESC made the `webhook-id` header invalid and
    /// every webhook refused the notification. It is delivered, the header percent-encoded, the
    /// signature over the header value, the body's id unchanged.
    #[test]
    fn an_id_with_control_characters_is_delivered() {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("addr").port();
        let server = std::thread::spawn(move || {
            let (conn, _) = listener.accept().expect("accept");
            let mut reader = BufReader::new(conn.try_clone().expect("clone"));
            let mut headers = Vec::new();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let line = line.trim_end().to_string();
                if line.is_empty() {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                headers.push(line);
            }
            let mut body = vec![0u8; length];
            let _ = reader.read_exact(&mut body);
            let mut conn = conn;
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            (headers, body)
        });
        let target = Endpoint {
            https: false,
            host: "127.0.0.1".into(),
            port,
        };
        let key = b"k".to_vec();
        let sink = HttpSink::new(
            &format!("http://127.0.0.1:{port}/hook"),
            &target,
            Duration::from_secs(10),
            None,
            Some(key.clone()),
            Vec::new(),
            Duration::ZERO,
        );
        let id = "buffer_io_error/\u{1b}]0;OWNED\u{7}\u{1b}[2Ksdq1/1795330000/firing";
        let body = serde_json::to_vec(&serde_json::json!({ "id": id })).expect("body");
        let got = sink.post(id, &body);
        assert!(matches!(got, Attempt::Delivered), "{got:?}");
        let (headers, received) = server.join().expect("server");
        let want = "buffer_io_error/%1B]0;OWNED%07%1B[2Ksdq1/1795330000/firing";
        assert!(
            headers.iter().any(|h| h == &format!("webhook-id: {want}")),
            "{headers:?}"
        );
        assert_eq!(received, body, "the body is sent unchanged");
        let ts: u64 = headers
            .iter()
            .find_map(|h| h.strip_prefix("webhook-timestamp: "))
            .and_then(|t| t.parse().ok())
            .expect("timestamp");
        let sig = format!("webhook-signature: {}", signature(&key, want, ts, &body));
        assert!(
            headers.contains(&sig),
            "signed over the header value: {headers:?}"
        );
    }

    #[test]
    fn alertmanager_urls() {
        assert_eq!(
            alertmanager_url("http://am:9093"),
            "http://am:9093/api/v2/alerts"
        );
        assert_eq!(
            alertmanager_url("http://am:9093/prefix/"),
            "http://am:9093/prefix/api/v2/alerts"
        );
        assert_eq!(
            alertmanager_url("http://am:9093/api/v2/alerts/"),
            "http://am:9093/api/v2/alerts"
        );
        assert_eq!(
            alertmanager_url("http://am/x?tenant=a"),
            "http://am/x/api/v2/alerts?tenant=a"
        );
    }

    #[test]
    fn dns_cache_resolves_names_on_a_helper_thread() {
        // A lookup only (getaddrinfo, /etc/hosts): nothing is connected to.
        let dns = DnsCache::new("localhost", 8080);
        dns.refresh(Duration::ZERO);
        let addrs = dns
            .addrs(Duration::from_secs(10))
            .expect("localhost resolves");
        assert!(!addrs.is_empty());
        assert!(
            addrs
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 8080),
            "{addrs:?}"
        );
        // Cached: served without a new lookup.
        let started = lock(&dns.state).started;
        assert_eq!(dns.addrs(Duration::ZERO), Ok(addrs));
        assert_eq!(lock(&dns.state).started, started);
    }

    #[test]
    fn dns_cache_serves_ip_literals_without_lookups() {
        let dns = DnsCache::new("127.0.0.1", 8080);
        dns.refresh(Duration::ZERO);
        assert!(!lock(&dns.state).resolving);
        assert_eq!(
            dns.addrs(Duration::ZERO),
            Ok(vec!["127.0.0.1:8080".parse().expect("addr")])
        );
        let dns = DnsCache::new("::1", 443);
        assert_eq!(
            dns.addrs(Duration::ZERO),
            Ok(vec!["[::1]:443".parse().expect("addr")])
        );
    }
}
