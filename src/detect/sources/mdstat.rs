//! `/proc/mdstat`, parsed: what the md sampler ([`super::samplers`]) adds to what
//! `/sys/block/mdN/md/` says, and where it stands in for it.
//!
//! sysfs is the source of record (`md/degraded`, `md/dev-*/state`): it has everything mdstat
//! prints. What mdstat gives a person in one read is the array's line as every admin knows it:
//! the member map (`[2/1] [U_]`: which slot is missing), the members with their flags (`(F)`
//! faulty, `(S)` spare, `(R)` replacement, `(W)` write-mostly) and the progress of a rebuild
//! (`recovery = 19.6% ... finish=1420.1min`), which the incident's message carries. When an
//! array's `md/degraded` cannot be read (a /sys not mounted or without the md directory), its
//! missing count is taken from the map (`_` per missing slot).
//!
//! Format (drivers/md/md.c `md_seq_show`, 2.6 to 6.x): an array's first line `md0 : active
//! raid1 sdb1[1] sda1[0](F)` (`inactive`, `(read-only)`, `(auto-read-only)` possible), then
//! indented lines: `N blocks ... [n/m] [UU_]` (redundant levels only), a progress line
//! `[==>....]  recovery = 12.6% (x/y) finish=10.2min speed=1000K/sec` (also `resync`, `check`,
//! `repair`, `reshape`) or `resync=DELAYED` / `resync=PENDING`, and `bitmap: ...`. Pure: no I/O,
//! no panics on any input.

/// One array of /proc/mdstat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MdArray {
    /// `md0`, `md127`.
    pub name: String,
    /// `active` or `inactive`.
    pub state: String,
    /// The personality (`raid1`, `raid6`), when printed.
    pub level: Option<String>,
    pub members: Vec<Member>,
    /// `[n/m]`: the devices the array has, and those working.
    pub raid_disks: Option<u32>,
    pub working: Option<u32>,
    /// `UU_`: one letter per slot, `_` for a missing one.
    pub map: Option<String>,
    /// A rebuild or check in progress: `recovery 19.6% finish=1420.1min`, `resync=DELAYED`.
    pub progress: Option<String>,
}

/// One member on an array's first line: `sdb1[1](F)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Member {
    pub name: String,
    /// The number in brackets (md's descriptor number, not always the slot).
    pub index: Option<u32>,
    /// The letters of its flags: `F` faulty, `S` spare, `R` replacement, `W` write-mostly, ...
    pub flags: String,
}

impl MdArray {
    /// Slots the map shows missing (`_`), if it has a map.
    pub(crate) fn missing(&self) -> Option<u64> {
        self.map
            .as_ref()
            .map(|m| m.bytes().filter(|&c| c == b'_').count() as u64)
    }

    /// Members flagged faulty (`(F)`).
    pub(crate) fn faulty(&self) -> Vec<&str> {
        self.members
            .iter()
            .filter(|m| m.flags.contains('F'))
            .map(|m| m.name.as_str())
            .collect()
    }
}

/// Every array of a /proc/mdstat text, in order.
pub(crate) fn parse_mdstat(text: &str) -> Vec<MdArray> {
    let mut out: Vec<MdArray> = Vec::new();
    for raw in text.lines() {
        let line = raw.trim();
        if let Some(array) = array_line(line) {
            out.push(array);
            continue;
        }
        let Some(cur) = out.last_mut() else {
            continue;
        };
        if line.is_empty() || line.starts_with("unused devices") || line.starts_with("bitmap:") {
            continue;
        }
        if line.contains(" blocks") {
            status_line(line, cur);
        } else if let Some(p) = progress_line(line) {
            cur.progress = Some(p);
        }
    }
    out
}

/// `md0 : active raid1 sdb1[1] sda1[0](F)`.
fn array_line(line: &str) -> Option<MdArray> {
    let (name, rest) = line.split_once(" : ")?;
    let name = name.trim();
    if !name.starts_with("md") || name.len() > 32 || name.contains(' ') {
        return None;
    }
    let mut words = rest.split_whitespace().peekable();
    let state = words.next()?;
    if state != "active" && state != "inactive" {
        return None;
    }
    let mut array = MdArray {
        name: name.to_string(),
        state: state.to_string(),
        ..MdArray::default()
    };
    while words.peek().is_some_and(|w| w.starts_with('(')) {
        words.next();
    }
    for w in words {
        match w.find('[') {
            Some(open) => {
                let name = &w[..open];
                let after = &w[open + 1..];
                let (index, flags) = match after.split_once(']') {
                    Some((i, f)) => (i.parse().ok(), f),
                    None => (None, ""),
                };
                let flags: String = flags.chars().filter(|c| c.is_ascii_alphabetic()).collect();
                if !name.is_empty() {
                    array.members.push(Member {
                        name: name.to_string(),
                        index,
                        flags,
                    });
                }
            }
            None if array.level.is_none() && array.members.is_empty() => {
                array.level = Some(w.to_string());
            }
            None => {}
        }
    }
    Some(array)
}

/// `1953382208 blocks super 1.2 [2/1] [U_]`: the counts and the map.
fn status_line(line: &str, array: &mut MdArray) {
    for w in line.split_whitespace() {
        let Some(inner) = w.strip_prefix('[').and_then(|w| w.strip_suffix(']')) else {
            continue;
        };
        if let Some((n, m)) = inner.split_once('/') {
            if let (Ok(n), Ok(m)) = (n.parse(), m.parse()) {
                array.raid_disks = Some(n);
                array.working = Some(m);
            }
        } else if !inner.is_empty() && inner.bytes().all(|c| c == b'U' || c == b'_') {
            array.map = Some(inner.to_string());
        }
    }
}

/// `[===>....]  recovery = 19.6% (288381540/1465135936) finish=1420.1min speed=13810K/sec`
/// -> `recovery 19.6% finish=1420.1min`; `resync=DELAYED` as it is.
fn progress_line(line: &str) -> Option<String> {
    for what in ["recovery", "resync", "reshape", "check", "repair"] {
        if let Some(i) = line.find(&format!("{what} = ")) {
            let r = &line[i + what.len() + 3..];
            let pct = r.split_whitespace().next().unwrap_or_default();
            let finish = r.split_whitespace().find(|w| w.starts_with("finish="));
            return Some(match finish {
                Some(f) => format!("{what} {pct} {f}"),
                None => format!("{what} {pct}"),
            });
        }
        if let Some(state) = line.strip_prefix(&format!("{what}=")) {
            return Some(format!("{what}={}", state.trim()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real /proc/mdstat texts from public reports, verbatim (their indentation as posted).
    #[test]
    fn degraded_raid6_rebuilding() {
        // https://github.com/glensc/nagios-plugin-check_raid/issues/43 (description)
        let text = "    Personalities : [raid6] [raid5] [raid4]
    md0 : active raid6 sde1[6] sdf1[7] sdb1[0] sdg1[3] sdd1[2] sdc[1]
      5860543744 blocks level 6, 4k chunk, algorithm 2 [6/4] [UUUU__]
      [===>.................]  recovery = 19.6% (288381540/1465135936) finish=1420.1min speed=13810K/sec

    unused devices: <none>
";
        let a = parse_mdstat(text);
        assert_eq!(a.len(), 1, "{a:?}");
        let md0 = &a[0];
        assert_eq!(
            (md0.name.as_str(), md0.state.as_str(), md0.level.as_deref()),
            ("md0", "active", Some("raid6"))
        );
        assert_eq!((md0.raid_disks, md0.working), (Some(6), Some(4)));
        assert_eq!(md0.map.as_deref(), Some("UUUU__"));
        assert_eq!(md0.missing(), Some(2));
        assert_eq!(md0.members.len(), 6);
        assert_eq!(md0.members[5].name, "sdc");
        assert_eq!(md0.members[5].index, Some(1));
        assert!(md0.faulty().is_empty());
        assert_eq!(
            md0.progress.as_deref(),
            Some("recovery 19.6% finish=1420.1min")
        );
    }

    #[test]
    fn a_replacement_and_a_spare_are_not_missing() {
        // https://github.com/prometheus/procfs/pull/676 (description): `mdadm --replace`
        let text = "Personalities : [raid6] [raid5] [raid4] [raid0] [raid1] [raid10]
md0 : active raid5 sdk1[6](R) sdf1[5](S) sdg1[4] sdc1[2] sde1[1] sdb1[0]
      14650718208 blocks super 1.2 level 5, 512k chunk, algorithm 2 [4/4] [UUUU]
      [>....................]  recovery =  1.4% (72694748/4883572736) finish=1601.3min speed=50071K/sec
      bitmap: 0/37 pages [0KB], 65536KB chunk

unused devices: <none>
";
        let a = parse_mdstat(text);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].missing(), Some(0));
        assert_eq!(a[0].members[0].flags, "R");
        assert_eq!(a[0].members[1].flags, "S");
        assert_eq!(
            a[0].progress.as_deref(),
            Some("recovery 1.4% finish=1601.3min")
        );
    }

    #[test]
    fn several_arrays_delayed_and_checking() {
        // https://github.com/centreon/centreon-plugins/issues/18 (description)
        let text = "Personalities : [raid1]
md1 : active raid1 sdb2[1] sda2[0]
      524224 blocks super 1.0 [2/2] [UU]
        resync=DELAYED

md2 : active raid1 sdb3[1] sda3[0]
      1936208832 blocks super 1.0 [2/2] [UU]
      [========>............]  check = 42.0% (813827328/1936208832) finish=1236.1min speed=15131K/sec

md0 : active raid1 sdb1[1] sda1[0]
      16777088 blocks super 1.0 [2/2] [UU]
        resync=DELAYED

unused devices: <none>
";
        let a = parse_mdstat(text);
        let names: Vec<&str> = a.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(names, ["md1", "md2", "md0"]);
        assert!(a.iter().all(|x| x.missing() == Some(0)));
        assert_eq!(a[0].progress.as_deref(), Some("resync=DELAYED"));
        assert_eq!(
            a[1].progress.as_deref(),
            Some("check 42.0% finish=1236.1min")
        );
    }

    #[test]
    fn raid0_has_no_map() {
        // https://github.com/netdata/netdata/pull/2195 (comment of 2017-05-17)
        let text = "Personalities : [raid1] [raid0]
md2 : active raid0 md0[0] md1[1]
      3906764288 blocks super 1.2 64k chunks

md1 : active raid1 sdd1[2] sde1[1]
      1953382208 blocks super 1.2 [2/2] [UU]

md0 : active raid1 sdb1[0] sdc1[1]
      1953382208 blocks super 1.2 [2/2] [UU]

unused devices: <none>
";
        let a = parse_mdstat(text);
        assert_eq!(a.len(), 3);
        assert_eq!(a[0].level.as_deref(), Some("raid0"));
        assert_eq!(a[0].missing(), None, "no redundancy, no map");
        assert_eq!(a[1].missing(), Some(0));
    }

    #[test]
    fn faulty_members_and_odd_text() {
        // mdstat as md.c prints a RAID1 whose member failed (`(F)`), and garbage.
        let a = parse_mdstat(
            "md127 : active (auto-read-only) raid1 sdb1[1](F) sda1[0]\n      1 blocks [2/1] [U_]\n",
        );
        assert_eq!(a[0].level.as_deref(), Some("raid1"));
        assert_eq!(a[0].faulty(), ["sdb1"]);
        assert_eq!(a[0].missing(), Some(1));
        for text in [
            "",
            "md0 :",
            "md0 : broken",
            "x : active raid1",
            "      1 blocks [2/1] [U_]",
            "md0 : active raid1 [ ](",
            "md0 : active raid1 sda[\n [/] [] [UX]",
        ] {
            let a = parse_mdstat(text);
            assert!(a.iter().all(|x| x.missing().unwrap_or(0) == 0), "{text}");
        }
    }
}
