//! Profiles: what the user wants, in TOML. Built-ins are embedded in the binary; files in
//! `/etc/tunerd/profiles.d/NAME.toml` add profiles or replace a built-in of the same name.
//! Everything is validated here, once, before anything is planned or written: unknown keys,
//! wrong types, out-of-range values and conflicting pairs come back as one line with
//! `file:line:column`, the key and the allowed values.
//!
//! The schema is documented in `docs/profiles.md`; in short:
//!
//! ```toml
//! description = "..."
//! inherits = "default"
//! [vm]
//! swappiness = { value = 30, reason = "why" }
//! [kernel]
//! hung_task_warnings = { value = -1, reason = "why" }
//! [[disk]]
//! rule = "vmware-disks"
//! match = { vendor = "VMware*", model = ["Virtual disk*", "VMware Virtual S*"] }
//! scsi_timeout = { value = 180, reason = "why" }
//! scheduler = ["none", "mq-deadline"]
//! [[mount]]
//! rule = "nfs"
//! match = { fstype = ["nfs", "nfs4"] }
//! bdi_strict_limit = 1
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use serde::Serialize;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::host::inventory::{Disk, DiskKind, Mount};
use crate::host::sys::{Root, CONFIG_DIR};
use crate::tune::knob::{Domain, Knob, SCHEDULERS};
use crate::util::toml::{
    check_config_dir, entries, parse_int, read_config_file, type_name, unknown_key, want_str,
    want_table, ConfigError, Doc, Location,
};

/// A knob's desired value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub(crate) enum Value {
    Int(u64),
    Text(String),
    /// Elevators in order of preference; the first one the kernel offers wins.
    Schedulers(Vec<String>),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(n) => write!(f, "{n}"),
            Value::Text(s) => f.write_str(s),
            Value::Schedulers(list) => f.write_str(&list.join(" > ")),
        }
    }
}

/// One knob's setting in a profile, with why it is there.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Setting {
    pub value: Value,
    pub reason: String,
    /// The profile accepts a data-loss risk this setting carries (write cache knobs).
    pub accept_risk: bool,
    /// Set once when the device appears, then left alone: another tool owns the value
    /// afterwards, so the daemon neither reports nor repairs its drift.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub once: bool,
    /// The profile that set it (after inheritance, maybe an ancestor).
    pub profile: String,
    #[serde(skip)]
    pub at: Location,
}

/// A glob set one rule matches on one inventory attribute: any glob may match.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Matcher {
    pub key: String,
    pub globs: Vec<String>,
}

/// A `[[disk]]` or `[[mount]]` rule.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Rule {
    pub name: String,
    #[serde(rename = "match")]
    pub matchers: Vec<Matcher>,
    pub settings: BTreeMap<Knob, Setting>,
    pub profile: String,
}

impl Rule {
    pub(crate) fn matches_disk(&self, disk: &Disk) -> bool {
        self.matchers.iter().all(|m| {
            disk.attribute(&m.key)
                .is_some_and(|v| m.globs.iter().any(|g| glob_match(g, &v)))
        })
    }

    pub(crate) fn matches_mount(&self, mount: &Mount) -> bool {
        self.matchers.iter().all(|m| {
            mount
                .attribute(&m.key)
                .is_some_and(|v| m.globs.iter().any(|g| glob_match(g, v)))
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Profile {
    pub name: String,
    pub description: String,
    pub inherits: Option<String>,
    /// `built-in` or the drop-in's path.
    pub source: String,
    /// After resolution: this profile and its ancestors, nearest first.
    pub chain: Vec<String>,
    pub vm: BTreeMap<Knob, Setting>,
    /// `[kernel]`: the hung-task detector's sysctls.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub kernel: BTreeMap<Knob, Setting>,
    pub disk: Vec<Rule>,
    pub mount: Vec<Rule>,
    /// The stall every mount should ride out (`rideout_secs`): plan names each layer that
    /// falls short, set by the profile or only audited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rideout_secs: Option<u64>,
    #[serde(skip)]
    inherits_at: Location,
}

/// Shell-style globs: `*` matches any run of characters, `?` one character, `[abc]` and
/// `[a-z]` one character of a set (`[!...]` one not in it); everything else is literal.
/// Written by hand: three wildcards over short attribute strings do not need a crate.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    // Attribute strings and patterns are nearly always ASCII: match their bytes in place. A
    // plan of 1,000 disks matches ~18,000 times; collecting both into `Vec<char>` each time
    // was a fifth of its instructions.
    if pattern.is_ascii() && text.is_ascii() {
        return glob(pattern.as_bytes(), text.as_bytes());
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    glob(&p, &t)
}

/// One pattern character: a byte of an ASCII pattern or a `char`.
trait GlobChar: Copy + PartialOrd {
    fn is(self, c: u8) -> bool;
}

impl GlobChar for u8 {
    fn is(self, c: u8) -> bool {
        self == c
    }
}

impl GlobChar for char {
    fn is(self, c: u8) -> bool {
        self == char::from(c)
    }
}

fn glob<C: GlobChar>(p: &[C], t: &[C]) -> bool {
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        let step = if pi < p.len() {
            let c = p[pi];
            if c.is(b'*') {
                star = Some((pi, ti));
                pi += 1;
                continue;
            } else if c.is(b'?') {
                Some(1)
            } else if c.is(b'[') {
                class_match(&p[pi..], t[ti])
            } else if c == t[ti] {
                Some(1)
            } else {
                None
            }
        } else {
            None
        };
        match step {
            Some(len) => {
                pi += len;
                ti += 1;
            }
            None => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    while pi < p.len() && p[pi].is(b'*') {
        pi += 1;
    }
    pi == p.len()
}

/// `[...]` at the start of `p` against `c`: the class's length in the pattern if `c` is in it.
/// An unclosed `[` is a literal `[`.
fn class_match<C: GlobChar>(p: &[C], c: C) -> Option<usize> {
    let Some(end) = p.iter().skip(2).position(|x| x.is(b']')).map(|i| i + 2) else {
        return c.is(b'[').then_some(1);
    };
    let (negate, body) = if p[1].is(b'!') || p[1].is(b'^') {
        (true, &p[2..end])
    } else {
        (false, &p[1..end])
    };
    let mut hit = false;
    let mut i = 0;
    while i < body.len() {
        if i + 2 < body.len() && body[i + 1].is(b'-') {
            hit |= body[i] <= c && c <= body[i + 2];
            i += 3;
        } else {
            hit |= body[i] == c;
            i += 1;
        }
    }
    (hit != negate).then_some(end + 1)
}

/// The built-in profiles, embedded so a bare binary can tune a machine.
pub(crate) const BUILTIN: &[(&str, &str)] = &[
    ("default", include_str!("profiles/default.toml")),
    ("vmware", include_str!("profiles/vmware.toml")),
    ("hyperv", include_str!("profiles/hyperv.toml")),
    ("azure", include_str!("profiles/azure.toml")),
    ("aws", include_str!("profiles/aws.toml")),
    ("gcp", include_str!("profiles/gcp.toml")),
    ("kvm", include_str!("profiles/kvm.toml")),
    ("iscsi-san", include_str!("profiles/iscsi-san.toml")),
    ("nfs-client", include_str!("profiles/nfs-client.toml")),
    ("local-ssd", include_str!("profiles/local-ssd.toml")),
];

fn parse_value(doc: &Doc<'_>, knob: Knob, v: &Spanned<DeValue<'_>>) -> Result<Value, ConfigError> {
    let key = knob.key();
    match knob.domain() {
        Domain::Int { min, max } => {
            let n = parse_int(doc, key, v, min, max)?;
            // The kernel keeps read-ahead in 4 KiB pages and rounds down: anything else
            // would read back different and show as drift forever.
            if matches!(knob, Knob::ReadAheadKb | Knob::BdiReadAheadKb) && n % 4 != 0 {
                return Err(doc.err(
                    v.span(),
                    format!("`{key}` must be a multiple of 4 (KiB pages; got {n})"),
                ));
            }
            Ok(Value::Int(n))
        }
        Domain::IntOrUnlimited { min, max } => {
            // -1 or "off": no limit, written the way this knob takes it.
            let unlimited = match v.get_ref() {
                DeValue::Integer(int) => int.as_str().trim() == "-1",
                DeValue::String(text) => text.as_ref() == "off",
                _ => false,
            };
            if unlimited {
                let write = knob.unlimited().map_or("-1", |(write, _)| write);
                return Ok(Value::Text(write.to_string()));
            }
            parse_int(doc, key, v, min, max).map(Value::Int).map_err(|_| {
                let got = match v.get_ref() {
                    DeValue::Integer(int) => format!("got {}", int.as_str()),
                    other => format!("not {}", type_name(other)),
                };
                doc.err(
                    v.span(),
                    format!("`{key}` must be -1 or \"off\" (no limit) or an integer from {min} to {max} ({got})"),
                )
            })
        }
        Domain::Scheduler => {
            let names: Vec<&Spanned<DeValue<'_>>> = match v.get_ref() {
                DeValue::String(_) => vec![v],
                DeValue::Array(items) if !items.is_empty() => items.iter().collect(),
                DeValue::Array(_) => {
                    return Err(doc.err(v.span(), "`scheduler` needs at least one name"));
                }
                other => {
                    return Err(doc.err(
                        v.span(),
                        format!(
                            "`scheduler` must be a name or a list of names in order of preference, not {}",
                            type_name(other)
                        ),
                    ))
                }
            };
            let mut out = Vec::new();
            for item in names {
                let name = want_str(doc, key, item)?;
                if !SCHEDULERS.contains(&name.as_str()) {
                    return Err(doc.err(
                        item.span(),
                        format!(
                            "unknown scheduler `{name}`; allowed: {} (noop means none and deadline means mq-deadline on blk-mq)",
                            SCHEDULERS.join(", ")
                        ),
                    ));
                }
                out.push(name);
            }
            Ok(Value::Schedulers(out))
        }
        Domain::Choice(allowed) => {
            let text = want_str(doc, key, v)?;
            let bare = if knob == Knob::ScsiCacheType {
                text.strip_prefix("temporary ").unwrap_or(&text)
            } else {
                &text
            };
            if allowed.contains(&bare) {
                Ok(Value::Text(text))
            } else {
                let extra = if knob == Knob::ScsiCacheType {
                    " (each optionally prefixed with \"temporary \")"
                } else {
                    ""
                };
                Err(doc.err(
                    v.span(),
                    format!(
                        "`{key}` must be one of {}{extra} (got {text:?})",
                        allowed
                            .iter()
                            .map(|a| format!("{a:?}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ))
            }
        }
    }
}

/// Parses a knob: a bare value, or `{ value = ..., reason = "...", accept_risk = true }`.
fn parse_setting(
    doc: &Doc<'_>,
    profile: &str,
    knob: Knob,
    key_span: Range<usize>,
    v: &Spanned<DeValue<'_>>,
    default_reason: &str,
) -> Result<Setting, ConfigError> {
    let mut value = None;
    let mut reason = None;
    let mut accept_risk = false;
    let mut once = false;
    if let DeValue::Table(t) = v.get_ref() {
        for (k, item) in entries(t) {
            match k.get_ref().as_ref() {
                "value" => value = Some(parse_value(doc, knob, item)?),
                "reason" => reason = Some(want_str(doc, "reason", item)?),
                "once" => {
                    once = match item.get_ref() {
                        DeValue::Boolean(b) => *b,
                        other => {
                            return Err(doc.err(
                                item.span(),
                                format!("`once` must be true or false, not {}", type_name(other)),
                            ))
                        }
                    };
                }
                "accept_risk" => {
                    if !knob.can_lose_data() {
                        return Err(doc.err(
                            k.span(),
                            format!(
                                "`accept_risk` applies only to write_cache and scsi_cache_type, not `{}`",
                                knob.key()
                            ),
                        ));
                    }
                    accept_risk = match item.get_ref() {
                        DeValue::Boolean(b) => *b,
                        other => {
                            return Err(doc.err(
                                item.span(),
                                format!(
                                    "`accept_risk` must be true or false, not {}",
                                    type_name(other)
                                ),
                            ))
                        }
                    };
                }
                other => {
                    return Err(unknown_key(
                        doc,
                        k.span(),
                        other,
                        &format!("`{}`", knob.key()),
                        &["value", "reason", "accept_risk", "once"],
                    ))
                }
            }
        }
        if value.is_none() {
            return Err(doc.err(v.span(), format!("`{}` needs a `value`", knob.key())));
        }
    } else {
        value = Some(parse_value(doc, knob, v)?);
    }
    let reason = reason.unwrap_or_else(|| default_reason.to_string());
    if reason.contains('\n') {
        return Err(doc.err(v.span(), "a reason is one line"));
    }
    Ok(Setting {
        value: value.unwrap_or(Value::Int(0)),
        reason,
        accept_risk,
        once,
        profile: profile.to_string(),
        at: doc.at(key_span),
    })
}

/// Adds a setting to a set, refusing the second of an exclusive pair in the same table.
fn insert_setting(
    doc: &Doc<'_>,
    set: &mut BTreeMap<Knob, Setting>,
    knob: Knob,
    key_span: Range<usize>,
    setting: Setting,
) -> Result<(), ConfigError> {
    if let Some(other) = knob.exclusive_with() {
        if let Some(first) = set.get(&other) {
            return Err(doc.err(
                key_span,
                format!(
                    "`{}` conflicts with `{}` (line {}): the kernel keeps only one of the pair; set one",
                    knob.key(),
                    other.key(),
                    first.at.line
                ),
            ));
        }
    }
    set.insert(knob, setting);
    Ok(())
}

fn parse_rule(
    doc: &Doc<'_>,
    profile: &str,
    section: &str,
    index: usize,
    table: &DeTable<'_>,
) -> Result<Rule, ConfigError> {
    let is_disk = section == "disk";
    let knobs: Vec<Knob> = if is_disk {
        Knob::for_disk().collect()
    } else {
        Knob::for_mount().collect()
    };
    let match_keys: &[&str] = if is_disk {
        &Disk::MATCH_KEYS
    } else {
        &Mount::MATCH_KEYS
    };
    let mut name = format!("{section}#{index}");
    let mut reason = format!("set by profile {profile}");
    // The rule's name and reason must be known before its knobs are read.
    for (k, v) in entries(table) {
        match k.get_ref().as_ref() {
            "rule" => name = want_str(doc, "rule", v)?,
            "reason" => reason = want_str(doc, "reason", v)?,
            _ => {}
        }
    }
    let context = format!("[[{section}]] rule `{name}`");
    let mut matchers = Vec::new();
    let mut settings = BTreeMap::new();
    for (k, v) in entries(table) {
        let key = k.get_ref().as_ref();
        match key {
            "rule" | "reason" => {}
            "match" => {
                for (mk, mv) in entries(want_table(doc, "match", v)?) {
                    let mkey = mk.get_ref().as_ref();
                    if !match_keys.contains(&mkey) {
                        return Err(unknown_key(
                            doc,
                            mk.span(),
                            mkey,
                            &format!("`match` of {context}"),
                            match_keys,
                        ));
                    }
                    let items: Vec<&Spanned<DeValue<'_>>> = match mv.get_ref() {
                        DeValue::Array(a) if !a.is_empty() => a.iter().collect(),
                        DeValue::Array(_) => {
                            return Err(
                                doc.err(mv.span(), format!("`{mkey}` needs at least one pattern"))
                            )
                        }
                        _ => vec![mv],
                    };
                    let mut globs = Vec::new();
                    for item in items {
                        let g = want_str(doc, mkey, item)?;
                        if mkey == "kind"
                            && !g.contains(['*', '?'])
                            && !DiskKind::ALL.iter().any(|k| k.as_str() == g)
                        {
                            let kinds: Vec<&str> =
                                DiskKind::ALL.iter().map(|k| k.as_str()).collect();
                            return Err(doc.err(
                                item.span(),
                                format!("unknown disk kind `{g}`; allowed: {}", kinds.join(", ")),
                            ));
                        }
                        globs.push(g);
                    }
                    matchers.push(Matcher {
                        key: mkey.to_string(),
                        globs,
                    });
                }
            }
            _ => {
                let Some(knob) = knobs.iter().copied().find(|kn| kn.key() == key) else {
                    let mut allowed = vec!["rule", "reason", "match"];
                    allowed.extend(knobs.iter().map(|kn| kn.key()));
                    return Err(unknown_key(doc, k.span(), key, &context, &allowed));
                };
                let setting = parse_setting(doc, profile, knob, k.span(), v, &reason)?;
                insert_setting(doc, &mut settings, knob, k.span(), setting)?;
            }
        }
    }
    Ok(Rule {
        name,
        matchers,
        settings,
        profile: profile.to_string(),
    })
}

/// Parses one profile file. `file` is how errors name it.
pub(crate) fn parse_profile(name: &str, file: &str, text: &str) -> Result<Profile, ConfigError> {
    let doc = Doc { file, text };
    let table = doc.parse()?;
    let mut profile = Profile {
        name: name.to_string(),
        description: String::new(),
        inherits: None,
        source: file.to_string(),
        chain: vec![name.to_string()],
        vm: BTreeMap::new(),
        kernel: BTreeMap::new(),
        disk: Vec::new(),
        mount: Vec::new(),
        rideout_secs: None,
        inherits_at: Location::default(),
    };
    for (k, v) in entries(table.get_ref()) {
        let key = k.get_ref().as_ref();
        match key {
            "description" => profile.description = want_str(&doc, key, v)?,
            "rideout_secs" => {
                profile.rideout_secs = Some(parse_int(&doc, key, v, 1, u64::from(u32::MAX))?)
            }
            "inherits" => {
                profile.inherits = Some(want_str(&doc, key, v)?);
                profile.inherits_at = doc.at(v.span());
            }
            "vm" | "kernel" => {
                let default_reason = format!("set by profile {name}");
                let (knobs, table): (Vec<Knob>, _) = if key == "vm" {
                    (Knob::for_vm().collect(), &mut profile.vm)
                } else {
                    (Knob::for_kernel().collect(), &mut profile.kernel)
                };
                for (vk, vv) in entries(want_table(&doc, key, v)?) {
                    let vkey = vk.get_ref().as_ref();
                    let Some(knob) = knobs.iter().copied().find(|kn| kn.key() == vkey) else {
                        let allowed: Vec<&str> = knobs.iter().map(|kn| kn.key()).collect();
                        return Err(unknown_key(
                            &doc,
                            vk.span(),
                            vkey,
                            &format!("[{key}]"),
                            &allowed,
                        ));
                    };
                    let setting = parse_setting(&doc, name, knob, vk.span(), vv, &default_reason)?;
                    insert_setting(&doc, table, knob, vk.span(), setting)?;
                }
            }
            "disk" | "mount" => {
                let DeValue::Array(items) = v.get_ref() else {
                    return Err(doc.err(
                        v.span(),
                        format!("`{key}` must be an array of tables: write [[{key}]]"),
                    ));
                };
                for (i, item) in items.iter().enumerate() {
                    let t = want_table(&doc, key, item)?;
                    let rule = parse_rule(&doc, name, key, i + 1, t)?;
                    let list = if key == "disk" {
                        &mut profile.disk
                    } else {
                        &mut profile.mount
                    };
                    if list.iter().any(|r| r.name == rule.name) {
                        return Err(doc.err(
                            item.span(),
                            format!("rule `{}` is defined twice in [[{key}]]", rule.name),
                        ));
                    }
                    list.push(rule);
                }
            }
            other => {
                return Err(unknown_key(
                    &doc,
                    k.span(),
                    other,
                    "a profile",
                    &[
                        "description",
                        "inherits",
                        "rideout_secs",
                        "vm",
                        "kernel",
                        "disk",
                        "mount",
                    ],
                ))
            }
        }
    }
    Ok(profile)
}

/// A valid profile name: what a file name can carry and a shell needs no quotes for.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// A profile drop-in as read from `etc/tunerd/profiles.d/NAME.toml`: its name, the file as
/// errors name it, and its text. What the daemon keeps of a configuration it accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub(crate) struct DropIn {
    pub name: String,
    pub file: String,
    pub text: String,
}

/// Reads every drop-in under `root` (`*.toml`, in name order), with the ownership checks of
/// `util::toml::check_owner`: a profile decides what is written to the kernel as root, so the
/// directories and files must be root's.
pub(crate) fn read_drop_ins(root: &Root) -> Result<Vec<DropIn>, ConfigError> {
    let dir = format!("{CONFIG_DIR}/profiles.d");
    check_config_dir(&root.path(CONFIG_DIR), &root.display(CONFIG_DIR))?;
    check_config_dir(&root.path(&dir), &root.display(&dir))?;
    let names = root.list(&dir).map_err(|e| ConfigError::from_sys(&e))?;
    let mut out = Vec::new();
    for file_name in names {
        let Some(stem) = file_name.strip_suffix(".toml") else {
            continue;
        };
        let rel = format!("{dir}/{file_name}");
        let display = root.display(&rel);
        if !valid_name(stem) {
            return Err(ConfigError::file(
                &display,
                format!(
                    "profile name `{stem}` (from the file name) may hold only a-z, 0-9, - and _"
                ),
            ));
        }
        let Some(text) = read_config_file(&root.path(&rel), &display)? else {
            continue; // removed since the listing
        };
        out.push(DropIn {
            name: stem.to_string(),
            file: display,
            text,
        });
    }
    Ok(out)
}

/// All profiles known on a root: the built-ins, then `etc/tunerd/profiles.d/*.toml`.
#[derive(Debug, Clone)]
pub(crate) struct ProfileSet {
    builtin: BTreeMap<String, Profile>,
    profiles: BTreeMap<String, Profile>,
}

impl ProfileSet {
    pub(crate) fn builtin() -> Result<ProfileSet, ConfigError> {
        let mut builtin = BTreeMap::new();
        for (name, text) in BUILTIN {
            let file = format!("<built-in>/{name}.toml");
            let mut p = parse_profile(name, &file, text)?;
            p.source = "built-in".to_string();
            builtin.insert(name.to_string(), p);
        }
        Ok(ProfileSet {
            profiles: builtin.clone(),
            builtin,
        })
    }

    /// Built-ins plus the drop-ins under `root`. Any invalid drop-in fails the whole load:
    /// nothing is applied from a half-understood configuration.
    pub(crate) fn load(root: &Root) -> Result<ProfileSet, ConfigError> {
        ProfileSet::from_drop_ins(&read_drop_ins(root)?)
    }

    /// The built-ins plus `drop_ins` (as [`read_drop_ins`] read them, now or when the daemon
    /// accepted them): every profile must resolve.
    pub(crate) fn from_drop_ins(drop_ins: &[DropIn]) -> Result<ProfileSet, ConfigError> {
        let mut set = ProfileSet::builtin()?;
        for d in drop_ins {
            if !valid_name(&d.name) {
                return Err(ConfigError::file(
                    &d.file,
                    format!(
                        "profile name `{}` (from the file name) may hold only a-z, 0-9, - and _",
                        d.name
                    ),
                ));
            }
            let profile = parse_profile(&d.name, &d.file, &d.text)?;
            set.profiles.insert(d.name.clone(), profile);
        }
        // Every profile must resolve, not only the one in use: a switch must never meet a
        // broken profile, and a mistake anywhere in the configuration stops everything.
        for name in set.names() {
            set.resolve(&name)?;
        }
        Ok(set)
    }

    pub(crate) fn names(&self) -> Vec<String> {
        self.profiles.keys().cloned().collect()
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Profile> {
        self.profiles.get(name)
    }

    /// Flattens `name` and its ancestors into one profile: the child's vm knobs override the
    /// parent's (setting one of an exclusive pair drops the parent's other one); a child rule
    /// with the same name replaces the parent's rule in place; new rules come after.
    pub(crate) fn resolve(&self, name: &str) -> Result<Profile, ConfigError> {
        let Some(start) = self.profiles.get(name) else {
            return Err(ConfigError::file(
                "profile",
                format!(
                    "unknown profile `{name}`; available: {}",
                    self.names().join(", ")
                ),
            ));
        };
        let mut chain: Vec<&Profile> = vec![start];
        let mut current = start;
        while let Some(parent) = &current.inherits {
            // A drop-in that replaces a built-in may inherit from the built-in it replaces.
            let next = if parent == &current.name && current.source != "built-in" {
                self.builtin.get(parent)
            } else {
                self.profiles.get(parent)
            };
            let Some(next) = next else {
                return Err(ConfigError {
                    at: current.inherits_at.clone(),
                    message: format!(
                        "unknown profile `{parent}` in `inherits`; available: {}",
                        self.names().join(", ")
                    ),
                });
            };
            if chain.iter().any(|p| std::ptr::eq(*p, next)) || chain.len() > 32 {
                let names: Vec<&str> = chain.iter().map(|p| p.name.as_str()).collect();
                return Err(ConfigError {
                    at: current.inherits_at.clone(),
                    message: format!(
                        "profiles inherit in a loop: {} -> {}",
                        names.join(" -> "),
                        next.name
                    ),
                });
            }
            chain.push(next);
            current = next;
        }
        let mut out = Profile {
            name: start.name.clone(),
            description: start.description.clone(),
            inherits: start.inherits.clone(),
            source: start.source.clone(),
            chain: chain.iter().map(|p| p.name.clone()).collect(),
            vm: BTreeMap::new(),
            kernel: BTreeMap::new(),
            disk: Vec::new(),
            mount: Vec::new(),
            rideout_secs: None,
            inherits_at: start.inherits_at.clone(),
        };
        for p in chain.iter().rev() {
            for (knob, setting) in &p.vm {
                if let Some(other) = knob.exclusive_with() {
                    out.vm.remove(&other);
                }
                out.vm.insert(*knob, setting.clone());
            }
            for (knob, setting) in &p.kernel {
                out.kernel.insert(*knob, setting.clone());
            }
            merge_rules(&mut out.disk, &p.disk);
            merge_rules(&mut out.mount, &p.mount);
            if p.rideout_secs.is_some() {
                out.rideout_secs = p.rideout_secs;
            }
        }
        check_resolved(&out)?;
        Ok(out)
    }
}

fn merge_rules(into: &mut Vec<Rule>, from: &[Rule]) {
    for rule in from {
        match into.iter_mut().find(|r| r.name == rule.name) {
            Some(slot) => *slot = rule.clone(),
            None => into.push(rule.clone()),
        }
    }
}

/// Checks that need the whole resolved profile.
fn check_resolved(p: &Profile) -> Result<(), ConfigError> {
    let pairs = [
        (Knob::DirtyBackgroundRatio, Knob::DirtyRatio),
        (Knob::DirtyBackgroundBytes, Knob::DirtyBytes),
    ];
    for (background, limit) in pairs {
        if let (Some(b), Some(l)) = (p.vm.get(&background), p.vm.get(&limit)) {
            if let (Value::Int(bv), Value::Int(lv)) = (&b.value, &l.value) {
                if bv >= lv {
                    return Err(ConfigError {
                        at: b.at.clone(),
                        message: format!(
                            "`{}` ({bv}) must be below `{}` ({lv}, {}): the kernel would silently use half of the limit",
                            background.key(),
                            limit.key(),
                            l.at
                        ),
                    });
                }
            }
        }
    }
    for rule in p.disk.iter().chain(&p.mount) {
        if let (Some(min), Some(max)) = (
            rule.settings.get(&Knob::BdiMinRatio),
            rule.settings.get(&Knob::BdiMaxRatio),
        ) {
            if let (Value::Int(a), Value::Int(b)) = (&min.value, &max.value) {
                if a > b {
                    return Err(ConfigError {
                        at: min.at.clone(),
                        message: format!(
                            "`bdi_min_ratio` ({a}) must not exceed `bdi_max_ratio` ({b})"
                        ),
                    });
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        match parse_profile("t", "t.toml", text) {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn globs() {
        assert!(glob_match("VMware*", "VMware"));
        assert!(glob_match("Virtual disk*", "Virtual disk"));
        assert!(glob_match("sd?", "sdb"));
        assert!(!glob_match("sd?", "sdaa"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b*c", "aXXbYY"));
        assert!(glob_match("loop[3-9]??", "loop300"));
        assert!(!glob_match("loop[3-9]??", "loop200"));
        assert!(glob_match("sd[!a]", "sdb"));
        assert!(!glob_match("sd[!a]", "sda"));
        assert!(glob_match("nvme[0-9]n1", "nvme0n1"));
        assert!(glob_match("a[", "a["));
    }

    #[test]
    fn builtins_parse_and_every_setting_has_its_own_reason() {
        let set = ProfileSet::builtin().expect("built-ins parse");
        for (name, _) in BUILTIN {
            let p = set.resolve(name).expect("resolves");
            let generic = format!("set by profile {name}");
            for s in p.vm.values().chain(p.kernel.values()) {
                assert_ne!(
                    s.reason, generic,
                    "{name}: a vm or kernel knob without a reason"
                );
            }
            for r in p.disk.iter().chain(&p.mount) {
                for (k, s) in &r.settings {
                    assert!(
                        !s.reason.starts_with("set by profile"),
                        "{name}/{}/{k:?} has no reason",
                        r.name
                    );
                }
            }
        }
    }

    #[test]
    fn errors_name_line_column_key_and_allowed_values() {
        let e = err("[[disk]]\nrule = \"x\"\nnr_requests = 2\n");
        assert_eq!(e, "t.toml:3:15: `nr_requests` must be at least 4 (got 2)");
        let e = err("[vm]\nswapiness = 10\n");
        assert!(
            e.starts_with("t.toml:2:1: unknown key `swapiness` in [vm]; allowed: swappiness,"),
            "{e}"
        );
        let e = err("[vm]\ndirty_ratio = 20\ndirty_bytes = 100000\n");
        assert!(
            e.starts_with("t.toml:3:1: `dirty_bytes` conflicts with `dirty_ratio` (line 2)"),
            "{e}"
        );
        let e = err("[[disk]]\nscheduler = \"cfq\"\n");
        assert!(
            e.starts_with("t.toml:2:13: unknown scheduler `cfq`; allowed: none,"),
            "{e}"
        );
        let e = err("[[disk]]\nwrite_cache = \"off\"\n");
        assert!(
            e.contains("must be one of \"write back\", \"write through\""),
            "{e}"
        );
        let e = err("[[disk]]\nmatch = { kind = \"virtio\" }\n");
        assert!(
            e.contains("unknown disk kind `virtio`; allowed: virtio-blk"),
            "{e}"
        );
        let e = err("[vm]\nswappiness = \"high\"\n");
        assert_eq!(
            e,
            "t.toml:2:14: `swappiness` must be an integer from 0 to 200, not a string"
        );
        let e = err("[[disk]]\nread_ahead_kb = 4097\n");
        assert_eq!(
            e,
            "t.toml:2:17: `read_ahead_kb` must be a multiple of 4 (KiB pages; got 4097)"
        );
        let e = err("[vm\n");
        assert!(e.starts_with("t.toml:1:"), "{e}");
        let e = err("[[disk]]\nscsi_timeout = { value = 60, accept_risk = true }\n");
        assert!(
            e.contains("`accept_risk` applies only to write_cache"),
            "{e}"
        );
    }

    #[test]
    fn inheritance_overrides_and_exclusive_pairs() {
        let mut set = ProfileSet::builtin().expect("built-ins");
        let child = parse_profile(
            "child",
            "child.toml",
            "inherits = \"default\"\n[vm]\ndirty_bytes = 1073741824\n",
        )
        .expect("parses");
        set.profiles.insert("child".into(), child);
        let p = set.resolve("child").expect("resolves");
        assert_eq!(p.chain, vec!["child", "default"]);
        assert!(p.vm.contains_key(&Knob::DirtyBytes));
        assert!(
            !p.vm.contains_key(&Knob::DirtyRatio),
            "the parent's ratio must go"
        );
        let looping = parse_profile("a", "a.toml", "inherits = \"b\"\n").expect("a");
        let looping2 = parse_profile("b", "b.toml", "inherits = \"a\"\n").expect("b");
        set.profiles.insert("a".into(), looping);
        set.profiles.insert("b".into(), looping2);
        let e = set.resolve("a").expect_err("loop");
        assert!(
            e.to_string().contains("inherit in a loop: a -> b -> a"),
            "{e}"
        );
    }

    #[test]
    fn background_must_be_below_the_limit() {
        let mut set = ProfileSet::builtin().expect("built-ins");
        let p = parse_profile(
            "x",
            "x.toml",
            "[vm]\ndirty_ratio = 10\ndirty_background_ratio = 10\n",
        )
        .expect("parses");
        set.profiles.insert("x".into(), p);
        let e = set.resolve("x").expect_err("refused").to_string();
        assert!(
            e.starts_with("x.toml:3:1: `dirty_background_ratio` (10) must be below `dirty_ratio`"),
            "{e}"
        );
    }
}
