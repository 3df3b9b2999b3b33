#!/bin/bash
# Runs inside the test guest of tests/it/guest.rs (installed as /usr/local/sbin/tunerd-guest-check,
# started by tunerd-guest-check.service after multi-user.target on the boot whose kernel command
# line says tunerd.guest=check: the second one, after install.sh installed the package). It
# checks tunerd as a user's machine runs it: the package's unit, the D-Bus policy, udev
# hotplug, drift repair, restart, an upgrade, revert, then remove and purge. The line
# protocol and the helpers are in lib.sh.
# shellcheck disable=SC2034
# shellcheck source=lib.sh
. /usr/local/lib/tunerd-guest/lib.sh

echo "INFO check script started at uptime $(cut -d' ' -f1 /proc/uptime) s"
figure check_start_uptime_s "$(cut -d' ' -f1 /proc/uptime)"
figure kernel "$(uname -r)"
figure dmi "sys_vendor='$(cat /sys/class/dmi/id/sys_vendor)' product_name='$(cat /sys/class/dmi/id/product_name)'"
figure sda_identity "vendor='$(cat /sys/block/sda/device/vendor 2>/dev/null)' model='$(cat /sys/block/sda/device/model 2>/dev/null)' host=$(cat /sys/block/sda/device/../../scsi_host/*/proc_name 2>/dev/null)"
figure root_mount "$(findmnt -no SOURCE,FSTYPE,OPTIONS /)"

# --- 1. the unit came up and told systemd READY ---------------------------------------
active=$(systemctl is-active tunerd.service)
check tunerd_active '[ "$active" = active ]' "is-active=$active sub=$(prop SubState) result=$(prop Result)"
# Enabled by the package on the first boot (deb-systemd-helper in its postinst, which keeps a
# record of it); nobody ran systemctl enable, and the image had no link before.
enabled=$(systemctl is-enabled tunerd.service 2>&1)
version=$(dpkg-deb -f "$DEB" Version)
check tunerd_enabled_by_package '[ "$enabled" = enabled ] && [ -e /var/lib/systemd/deb-systemd-helper-enabled/tunerd.service.dsh-also ] && [ "$(pkg_state)" = "ii $version" ]' \
    "is-enabled=$enabled; deb-systemd-helper's record: $(cat /var/lib/systemd/deb-systemd-helper-enabled/tunerd.service.dsh-also 2>&1 | tr '\n' ' '); dpkg: '$(pkg_state)'"
# What runs is what the package installed, unchanged: dpkg --verify reports only the
# configuration the administrator edited on the first boot.
verify_pkg=$(dpkg --verify tunerd 2>&1)
main_exe=$(readlink "/proc/$(prop MainPID)/exe")
check tunerd_runs_packaged_files '[ "$main_exe" = /usr/bin/tunerd ] && [ "$(readlink -f "$(prop FragmentPath)")" = /usr/lib/systemd/system/tunerd.service ] && [ -z "$(grep -v " c /etc/tunerd/tunerd.toml$" <<<"$verify_pkg")" ]' \
    "MainPID exe=$main_exe FragmentPath=$(prop FragmentPath); dpkg --verify: ${verify_pkg:-clean}"
type=$(prop Type)
status_text=$(prop StatusText)
# Type=notify: the unit leaves `activating` only on READY=1; STATUS= proves the notify socket works.
check tunerd_ready_notify '[ "$type" = notify ] && [ "$active" = active ] && [[ "$status_text" == "profile vmware"* ]]' \
    "Type=$type StatusText='$status_text'"
exec_start=$(prop ExecMainStartTimestampMonotonic)
active_enter=$(prop ActiveEnterTimestampMonotonic)
figure exec_to_ready_ms "$(((active_enter - exec_start) / 1000))"
figure tunerd_exec_start_since_boot_ms "$((exec_start / 1000))"
figure tunerd_ready_since_boot_ms "$((active_enter / 1000))"
figure dbus_active_since_boot_ms "$(($(prop ActiveEnterTimestampMonotonic dbus.service) / 1000))"
figure sysinit_target_since_boot_ms "$(($(prop ActiveEnterTimestampMonotonic sysinit.target) / 1000))"
figure local_fs_pre_target_since_boot_ms "$(($(prop ActiveEnterTimestampMonotonic local-fs-pre.target) / 1000))"
figure remount_fs_since_boot_ms "$(($(prop ActiveEnterTimestampMonotonic systemd-remount-fs.service) / 1000))"
# Installed in sysinit.target, the unit must not make the boot transaction inconsistent.
cycle=$(journalctl -b -o cat --no-pager | grep -E 'ordering cycle|Found dependency on|to break ordering cycle')
check boot_no_ordering_cycle '[ -z "$cycle" ]' "${cycle:-no ordering cycle in this boot}"
check tmpfiles_setup_ran '[ "$(prop ActiveState systemd-tmpfiles-setup.service)" = active ]' \
    "systemd-tmpfiles-setup.service ActiveState=$(prop ActiveState systemd-tmpfiles-setup.service) Result=$(prop Result systemd-tmpfiles-setup.service)"
check local_fs_target_reached '[ "$(prop ActiveState local-fs.target)" = active ]' \
    "local-fs.target ActiveState=$(prop ActiveState local-fs.target)"
# fstab mounts hang off local-fs.target: a machine whose boot lost that target's job may
# come up without them (/srv/fstab-probe is a tmpfs line in the guest's fstab).
check fstab_mount_mounted 'findmnt /srv/fstab-probe' "findmnt /srv/fstab-probe: $(findmnt -no SOURCE,FSTYPE /srv/fstab-probe || echo 'not mounted') (unit $(prop ActiveState srv-fstab\\x2dprobe.mount))"
figure tunerd_after "$(prop After)"
figure tmpfiles_effects "/run/utmp $([ -e /run/utmp ] && echo present || echo MISSING), /tmp/.X11-unix $([ -d /tmp/.X11-unix ] && echo present || echo MISSING), /var/lib/systemd/linger $([ -d /var/lib/systemd/linger ] && echo present || echo MISSING)"
figure tunerd_requires_mounts_for "$(prop RequiresMountsFor)"
figure analyze_verify "$(systemd-analyze verify tunerd.service 2>&1 | head -20)"

# --- 2. on the system bus --------------------------------------------------------------
waited=$(wait_for 60 daemon_on_bus)
check dbus_name_owned '[ "$waited" != timeout ]' "tunerctl status said 'daemon running' after ${waited} ms of waiting"
figure dbus_wait_in_check_ms "$waited (includes the first tunerctl status run itself)"
served=$(journalctl -b -u tunerd.service -o short-monotonic --no-pager | grep -m1 'serving org.tunerd.Tuner1' | sed 's/^\[ *\([0-9.]*\)\].*/\1/')
figure bus_name_taken_since_boot_s "${served:-never}"
prop_out=$(busctl get-property org.tunerd.Tuner1 /org/tunerd/Tuner1 org.tunerd.Tuner1 ActiveProfile 2>&1)
check dbus_property_active_profile '[ "$prop_out" = "s \"vmware\"" ]' "busctl get-property ActiveProfile: $prop_out"

status=$(tunerctl status 2>&1)
echo "$status" | info
check status_daemon_running 'grep -q "^daemon    running (pid " <<<"$status"' "$(head -1 <<<"$status")"
check status_platform_vmware 'grep -q "^platform  vmware " <<<"$status"' "$(grep '^platform' <<<"$status")"
check status_profile_vmware 'grep -q "^profile   vmware " <<<"$status"' "$(grep '^profile' <<<"$status")"
sjson=$(tunerctl --json status 2>&1)
figure hotplug_source "$(jq -r '.daemon.hotplug_source' <<<"$sjson" 2>&1)"
sj=$(jq -r '[.daemon.running, .daemon.platform, .daemon.profile] | join(" ")' <<<"$sjson" 2>/dev/null)
check status_json '[ "$sj" = "true vmware vmware" ]' \
    "daemon: $(jq -c '.daemon | {running, pid, platform, profile, chosen_by, health, hotplug_source, disks, knobs, drift}' <<<"$sjson" 2>&1)"
# The platform line shows what the decision rests on, in the text and in the JSON.
want_evidence='DMI sys_vendor = "VMware, Inc."'
check status_platform_evidence 'grep -qxF "platform  vmware ($want_evidence)" <<<"$status" && [ "$(jq -r ".inventory.platform.evidence[0]" <<<"$sjson")" = "$want_evidence" ]' \
    "text: $(grep '^platform' <<<"$status"); json: $(jq -c '.inventory.platform' <<<"$sjson" 2>&1)"

# The policy lets anyone read and only root change.
nobody_prop=$(setpriv --reuid=65534 --regid=65534 --clear-groups busctl get-property org.tunerd.Tuner1 /org/tunerd/Tuner1 org.tunerd.Tuner1 ActiveProfile 2>&1)
check dbus_policy_user_reads '[ "$nobody_prop" = "s \"vmware\"" ]' "as nobody, get-property ActiveProfile: $nobody_prop"
# `tunerctl status` as a user works with the package's tunerd.toml, which is root's (0600):
# it goes through the daemon, whose profile it shows.
nobody_status=$(setpriv --reuid=65534 --regid=65534 --clear-groups tunerctl status 2>&1)
check user_tunerctl_status 'grep -q "^daemon    running" <<<"$nobody_status" && grep -q "^profile   vmware" <<<"$nobody_status"' "as nobody: $(head -3 <<<"$nobody_status")"
nobody_revert=$(setpriv --reuid=65534 --regid=65534 --clear-groups busctl call org.tunerd.Tuner1 /org/tunerd/Tuner1 org.tunerd.Tuner1 Revert 2>&1)
rc=$?
check dbus_policy_user_denied '[ $rc -ne 0 ] && [ "$(timeout_of sda)" = 180 ]' "as nobody, Revert: rc=$rc $nobody_revert; sda timeout now $(timeout_of sda)"

# --- 3. the profile is in force ----------------------------------------------------------
check sda_timeout_180 '[ "$(timeout_of sda)" = 180 ]' "sda device/timeout=$(timeout_of sda)"
check sda_scheduler_none 'grep -q "\[none\]" <<<"$(sched_of sda)"' "sda queue/scheduler=$(sched_of sda)"
check vm_swappiness_30 '[ "$(cat /proc/sys/vm/swappiness)" = 30 ]' "vm.swappiness=$(cat /proc/sys/vm/swappiness)"
check vm_dirty_ratio_30 '[ "$(cat /proc/sys/vm/dirty_ratio)" = 30 ]' "vm.dirty_ratio=$(cat /proc/sys/vm/dirty_ratio)"
verify=$(tunerctl verify 2>&1)
rc=$?
check verify_clean '[ $rc = 0 ]' "exit $rc: $verify"

# What tunerd found before it wrote (it starts before anything else could read them).
orig_timeout=$(journal_value sda/scsi_timeout)
orig_sched=$(journal_value sda/scheduler)
figure originals_sda "scsi_timeout=${orig_timeout:-none} scheduler=${orig_sched:-none} (the kernel's pvscsi defaults are 30 and mq-deadline)"
check originals_recorded '[ "$orig_timeout" = 30 ] && [ "$orig_sched" = mq-deadline ]' \
    "/run/tunerd/originals.json: sda/scsi_timeout=${orig_timeout:-none} sda/scheduler=${orig_sched:-none}"
# The guest's /etc/sysctl.d sets vm.dirty_ratio = 25: that, not the kernel's 20, is the
# value the machine has without tunerd, so it is the original to record and to revert to.
orig_dirty=$(journal_value vm/dirty_ratio)
check originals_vm_from_sysctl_d '[ "$orig_dirty" = 25 ]' \
    "originals.json vm/dirty_ratio=${orig_dirty:-none} (sysctl.d says 25, the kernel default is 20); systemd-sysctl finished at $(($(prop ActiveEnterTimestampMonotonic systemd-sysctl.service) / 1000)) ms, tunerd started at $((exec_start / 1000)) ms"
figure originals_count "$(jq '.originals | length' /run/tunerd/originals.json 2>&1)"

# --- 4. drift behind tunerd's back is repaired ---------------------------------------------
interval=$(jq -r '.daemon.drift_interval_secs' <<<"$sjson" 2>/dev/null)
stdbuf -oL busctl monitor --system org.tunerd.Tuner1 >/run/tunerd-signals.txt 2>&1 &
monitor=$!
sleep 1
echo 30 >/sys/block/sda/device/timeout
echo mq-deadline >/sys/block/sda/queue/scheduler
figure drift_written "timeout=$(timeout_of sda) scheduler=$(sched_of sda) (drift_interval_secs=$interval)"
waited=$(wait_for 40 sh -c '[ "$(cat /sys/block/sda/device/timeout)" = 180 ] && grep -q "\[none\]" /sys/block/sda/queue/scheduler')
check drift_repaired '[ "$waited" != timeout ]' "after ${waited} ms: timeout=$(timeout_of sda) scheduler=$(sched_of sda)"
figure drift_repair_ms "$waited"
sleep 1
kill $monitor 2>/dev/null
wait $monitor 2>/dev/null
check dbus_drift_signal 'grep -q Member=DriftDetected /run/tunerd-signals.txt' \
    "DriftDetected signals seen by busctl monitor: $(grep -c 'Member=DriftDetected' /run/tunerd-signals.txt)"
figure drift_journal "$(journalctl -b -u tunerd.service --no-pager -o cat | grep -m2 'drift: sda')"

# --- 5. a disk hot-added from the host is tuned --------------------------------------------
echo "MARK READY-FOR-HOTPLUG"
waited=$(wait_for 30 test -e /sys/block/sdb)
rescanned=no
if [ "$waited" = timeout ]; then
    # No hotplug message from the controller: ask the SCSI layer (not tunerd's business).
    for scan in /sys/class/scsi_host/host*/scan; do echo '- - -' >"$scan"; done
    rescanned=yes
    waited=$(wait_for 30 test -e /sys/block/sdb)
fi
figure hotplug_disk_appeared_ms "$waited (SCSI host rescan needed: $rescanned)"
if [ "$waited" = timeout ]; then
    check hotplug_disk_seen false "no sdb 60 s after READY-FOR-HOTPLUG; lsblk: $(lsblk -dno NAME,MODEL)"
else
    figure sdb_identity "vendor='$(cat /sys/block/sdb/device/vendor)' model='$(cat /sys/block/sdb/device/model)'"
    tuned=$(wait_for 10 sh -c '[ "$(cat /sys/block/sdb/device/timeout)" = 180 ] && grep -q "\[none\]" /sys/block/sdb/queue/scheduler')
    figure hotplug_tuned_ms "$tuned (from sdb appearing in sysfs)"
    check hotplug_timeout_180 '[ "$tuned" != timeout ] && [ "$tuned" -le 5000 ]' \
        "sdb after ${tuned} ms: timeout=$(timeout_of sdb) scheduler=$(sched_of sdb)"
    check hotplug_scheduler_none 'grep -q "\[none\]" <<<"$(sched_of sdb)"' "sdb queue/scheduler=$(sched_of sdb)"
    check hotplug_journal 'journalctl -b -u tunerd.service --no-pager -o cat | grep -q "^sdb: .*knobs set"' \
        "$(journalctl -b -u tunerd.service --no-pager -o cat | grep -m1 '^sdb')"
    verify=$(tunerctl verify 2>&1)
    rc=$?
    check verify_clean_with_sdb '[ $rc = 0 ]' "exit $rc: $verify"
fi

# --- 6. the watchdog is armed and fed -------------------------------------------------------
wd=$(prop WatchdogUSec)
fed() { [ $(($(prop WatchdogTimestampMonotonic) - $(prop ExecMainStartTimestampMonotonic))) -gt 5000000 ]; }
waited=$(wait_for 25 fed)
check watchdog_armed '[ "$wd" = 30s ]' "WatchdogUSec=$wd"
check watchdog_fed '[ "$waited" != timeout ]' \
    "WatchdogTimestampMonotonic-ExecMainStart=$((($(prop WatchdogTimestampMonotonic) - $(prop ExecMainStartTimestampMonotonic)) / 1000)) ms (waited ${waited} ms for a WATCHDOG=1)"

# --- 7. resources ------------------------------------------------------------------------
pid=$(prop MainPID)
figure rss "$(grep -E '^(VmRSS|VmHWM|VmLck|Threads)' "/proc/$pid/status" | tr -s ' \t' ' ' | tr '\n' ' ')"
figure cgroup_memory_bytes "$(prop MemoryCurrent)"
figure cpu_usage_ms "$(($(prop CPUUsageNSec) / 1000000)) (uptime $(cut -d' ' -f1 /proc/uptime) s)"

# --- 8. restart keeps the journal of originals -------------------------------------------------
before_sum=$(md5sum </run/tunerd/originals.json 2>&1)
systemctl restart tunerd.service
rc=$?
pid2=$(prop MainPID)
after_sum=$(md5sum </run/tunerd/originals.json 2>&1)
check restart_active '[ $rc = 0 ] && [ "$(systemctl is-active tunerd.service)" = active ] && [ "$pid2" != "$pid" ]' \
    "systemctl restart rc=$rc, is-active=$(systemctl is-active tunerd.service), pid $pid -> $pid2"
check restart_keeps_originals '[ -s /run/tunerd/originals.json ] && [ "$before_sum" = "$after_sum" ]' \
    "originals.json md5 before=$before_sum after=$after_sum"
waited=$(wait_for 40 daemon_on_bus)
check restart_back_on_bus '[ "$waited" != timeout ]' "daemon answered on the bus after ${waited} ms"

# --- 8b. an upgrade to a newer build: restarted once, after the new files are in ------------
# /root/tunerd-newer.deb holds the same files as /root/tunerd.deb under a higher version: a
# newer build for dpkg. The originals in /run/tunerd and the administrator's configuration
# must come through; systemd's own journal entries for the unit count its stops and starts.
newer=$(dpkg-deb -f "$NEWER_DEB" Version)
before_sum=$(md5sum </run/tunerd/originals.json 2>&1)
pid_before=$(prop MainPID)
inv_before=$(prop InvocationID)
started_before=$(prop ExecMainStartTimestamp)
cursor=$(journal_cursor)
t0=$(now_ms)
apt_get install "$NEWER_DEB"
rc=$?
figure upgrade_ms "$(($(now_ms) - t0)) (apt-get install of the newer .deb, under TCG)"
unit_log=$(journalctl --after-cursor="$cursor" --no-pager -o cat _PID=1 UNIT=tunerd.service 2>&1)
starts=$(grep -c '^Started tunerd.service' <<<"$unit_log")
stops=$(grep -c '^Stopped tunerd.service' <<<"$unit_log")
echo "INFO ---- systemd about tunerd.service during the upgrade ----"
info <<<"$unit_log"
pid_after=$(prop MainPID)
check upgrade_apt_exit_0 '[ $rc = 0 ]' "apt-get install $NEWER_DEB: exit $rc"
check upgrade_installed '[ "$(pkg_state)" = "ii $newer" ] && dpkg --compare-versions "$newer" gt "$version"' "dpkg: '$(pkg_state)' (from $version)"
check upgrade_restarted_once '[ "$starts" = 1 ] && [ "$stops" = 1 ] && [ "$pid_after" != "$pid_before" ] && [ "$(prop InvocationID)" != "$inv_before" ] && [ "$(systemctl is-active tunerd.service)" = active ]' \
    "systemd stopped the unit $stops and started it $starts times; MainPID $pid_before -> $pid_after; ExecMainStartTimestamp '$started_before' -> '$(prop ExecMainStartTimestamp)'; NRestarts=$(prop NRestarts); is-active=$(systemctl is-active tunerd.service)"
after_sum=$(md5sum </run/tunerd/originals.json 2>&1)
check upgrade_keeps_originals '[ -s /run/tunerd/originals.json ] && [ "$before_sum" = "$after_sum" ]' \
    "originals.json md5 before=$before_sum after=$after_sum ($(jq '.originals | length' /run/tunerd/originals.json 2>&1) originals)"
check upgrade_keeps_config 'grep -qx "drift_interval_secs = 2" /etc/tunerd/tunerd.toml && [ "$(stat -c "%a %U:%G" /etc/tunerd/tunerd.toml)" = "600 root:root" ] && ! ls /etc/tunerd/tunerd.toml.dpkg-* >/dev/null 2>&1' \
    "$(grep -n '^drift_interval_secs' /etc/tunerd/tunerd.toml || echo 'the edit is gone'); $(stat -c '%a %U:%G' /etc/tunerd/tunerd.toml 2>&1); $(ls /etc/tunerd/)"
waited=$(wait_for 40 daemon_on_bus)
check upgrade_back_on_bus '[ "$waited" != timeout ]' "daemon answered on the bus after ${waited} ms"
verify=$(tunerctl verify 2>&1)
rc=$?
check upgrade_verify_clean '[ $rc = 0 ]' "exit $rc: $verify"

# --- 9. revert puts the pre-tunerd values back ---------------------------------------------
revert=$(tunerctl --json revert 2>&1)
rc=$?
t_now=$(timeout_of sda)
s_now=$(sched_of sda)
sw_now=$(cat /proc/sys/vm/swappiness)
after_of() { jq -r --arg t "$1" '.outcomes[] | select(.target == $t) | .after' <<<"$revert" 2>/dev/null | head -1; }
figure revert_outcomes "$(jq -c '[.outcomes[] | {target, before, after, status}]' <<<"$revert" 2>&1)"
figure revert_read_back "sda timeout=$t_now scheduler=$s_now vm.swappiness=$sw_now"
# The daemon's drift check may re-apply within drift_interval_secs; the revert report's own
# read-back (`after`) is the authority, the sysfs reading just after it is shown beside it.
ok_t=0
{ [ "$t_now" = 30 ] || [ "$(after_of 'sda scsi_timeout')" = 30 ]; } && ok_t=1
ok_s=0
{ grep -q '\[mq-deadline\]' <<<"$s_now" || grep -qx '\[mq-deadline\].*\|mq-deadline' <<<"$(after_of 'sda scheduler')"; } && ok_s=1
check revert_vm_dirty_ratio_sysctl_d '[ "$(after_of "vm dirty_ratio")" = 25 ]' \
    "report.after=$(after_of 'vm dirty_ratio') (sysctl.d says 25)"
check revert_exit_0 '[ $rc = 0 ]' "tunerctl revert exit $rc"
check revert_sda_timeout_30 '[ $ok_t = 1 ]' "sysfs=$t_now report.after=$(after_of 'sda scsi_timeout') original=${orig_timeout:-none}"
check revert_sda_scheduler_mq_deadline '[ $ok_s = 1 ]' "sysfs=$s_now report.after=$(after_of 'sda scheduler') original=${orig_sched:-none}"
sleep $((2 * ${interval:-2} + 1))
figure after_revert_plus_2_intervals "sda timeout=$(timeout_of sda) scheduler=$(sched_of sda) originals.json=$([ -e /run/tunerd/originals.json ] && echo present || echo absent)"

# --- 11. storage failures become incidents --------------------------------------------------
# A real SCSI failure chain: ext4 (errors=remount-ro) on the hotplugged sdb, then the device is
# offlined: the kernel rejects I/O, ext4 aborts its journal and remounts read-only.
if [ -e /sys/block/sdb ]; then
    # A fresh monitor: the one of section 4 followed the daemon that was restarted since.
    stdbuf -oL busctl monitor --system org.tunerd.Tuner1 >/run/tunerd-signals-2.txt 2>&1 &
    sleep 1
    mkdir -p /mnt/failing
    mkfs.ext4 -q -F /dev/sdb && mount -o errors=remount-ro /dev/sdb /mnt/failing
    # The samplers re-read the mount table each tick and fanotify marks every new ext4
    # filesystem: a mark on sdb's superblock proves both run under the unit. fdinfo shows the
    # kernel's dev_t (major << 20 | minor) in hex, as `sdev:`.
    fan_pid=$(prop MainPID)
    sdb_dev=$(mountpoint -d /mnt/failing 2>/dev/null)
    sdb_sdev=$(printf '%x' $(( (${sdb_dev%%:*} << 20) | ${sdb_dev##*:} )) 2>/dev/null)
    fan_marked() {
        local fd
        for fd in /proc/"$fan_pid"/fd/*; do
            [ "$(readlink "$fd")" = 'anon_inode:[fanotify]' ] || continue
            grep -q "^fanotify sdev:$sdb_sdev " /proc/"$fan_pid"/fdinfo/"${fd##*/}" && return 0
        done
        return 1
    }
    waited=$(wait_for 10 fan_marked)
    check source_fanotify_marks_new_mount '[ "$waited" != timeout ]' \
        "after ${waited} ms: fanotify mark on sdb (sdev:$sdb_sdev, $sdb_dev) in tunerd's fdinfo: $(grep -h '^fanotify' /proc/"$fan_pid"/fdinfo/* 2>/dev/null | cut -d' ' -f1-3 | tr '\n' ';')"
    dd if=/dev/zero of=/mnt/failing/a bs=64k count=16 conv=fsync 2>/dev/null
    echo offline >/sys/block/sdb/device/state
    dd if=/dev/zero of=/mnt/failing/b bs=64k count=16 conv=fsync 2>/dev/null
    sync
    has_incident() { tunerctl events --json 2>/dev/null | jq -e '.open[] | select(.disk == "sdb" and (.mounts | index("/mnt/failing")))' >/dev/null; }
    waited=$(wait_for 20 has_incident)
    check incident_scsi_offline_ext4 '[ "$waited" != timeout ]' \
        "after ${waited} ms: $(tunerctl events --json 2>&1 | jq -c '[.open[] | {id, kind, severity, disk, mounts, count}]' 2>&1)"
    figure incident_ms "$waited"
    check incident_dbus_signal 'grep -q Member=Incident /run/tunerd-signals-2.txt' \
        "Incident signals seen by busctl monitor: $(grep -c 'Member=Incident' /run/tunerd-signals-2.txt)"
    check incident_journal_entry 'journalctl -b TUNERD_DISK=sdb --no-pager -o cat | grep -q "storage incident"' \
        "$(journalctl -b TUNERD_DISK=sdb --no-pager -o cat | head -1)"
    events_rc=0
    tunerctl events >/dev/null 2>&1 || events_rc=$?
    check events_exit_5 '[ $events_rc = 5 ]' "tunerctl events exit $events_rc while an incident is open"
    dmesg | grep -E 'sdb|EXT4-fs' | tail -8 | info
    umount -l /mnt/failing
fi
# A storage daemon's line in the journal (multipathd) is read from the journal.
logger -t multipathd "mpathz: remaining active paths: 0"
has_mpath() { tunerctl events --json 2>/dev/null | jq -e '.open[] | select(.kind == "multipath_no_paths")' >/dev/null; }
waited=$(wait_for 15 has_mpath)
check incident_multipathd_journal '[ "$waited" != timeout ]' \
    "after ${waited} ms: $(tunerctl events --json 2>&1 | jq -c '[.open[] | {kind, device}]' 2>&1)"

# A [[watch.rule]] for a program the daemon does not follow, added to the packaged tunerd.toml
# while it runs: the reload makes it follow the program (journalctl started again after the
# last entry read), the program's line opens the rule's incident, and its end line ends it.
cat >>/etc/tunerd/tunerd.toml <<'EOF'

[[watch.rule]]
kind = "san_replica_lost"
pattern = "volume {device}: replica * lost*"
severity = "critical"
end = "volume {device}: replica * back in sync"
program = "sanagent"
EOF
systemctl reload tunerd
journal_args() { pgrep -P "$(prop MainPID)" -x journalctl | xargs -r ps -o args= -p; }
follows() { journal_args | grep -q -- '--identifier sanagent'; }
waited=$(wait_for 15 follows)
check rule_program_followed_after_reload '[ "$waited" != timeout ]' \
    "after ${waited} ms: $(journal_args | grep -o -- '--identifier [^ ]*' | tr '\n' ' ')"
logger -t sanagent "volume vol7: replica r2 lost (peer 10.0.0.9 unreachable)"
has_rule() { tunerctl events --json 2>/dev/null | jq -e '.open[] | select(.kind == "san_replica_lost" and .device == "vol7")' >/dev/null; }
waited=$(wait_for 15 has_rule)
check incident_rule_program_journal '[ "$waited" != timeout ]' \
    "after ${waited} ms: $(tunerctl events --json 2>&1 | jq -c '[.open[] | {kind, device, source}]' 2>&1)"
logger -t sanagent "volume vol7: replica r2 back in sync"
rule_ended() { tunerctl events --json 2>/dev/null | jq -e '([.open[] | select(.kind == "san_replica_lost")] == []) and any(.recent[]; .kind == "san_replica_lost" and .state == "resolved")' >/dev/null; }
waited=$(wait_for 15 rule_ended)
check incident_rule_program_ended '[ "$waited" != timeout ]' \
    "after ${waited} ms: $(tunerctl events --json 2>&1 | jq -c '[.recent[] | select(.kind == "san_replica_lost") | {state, evidence}]' 2>&1)"

# --- 12. every detection source is live under the unit ---------------------------------------
# The sandbox can quietly take a source away (the syscall filter once cost fanotify): the
# daemon then logs why and goes on with the others. None of those lines may appear, and each
# source must show it works. The samplers have no log line of their own: the fanotify mark on
# a new mount in section 11 is their proof (they re-read the mount table that adds it).
pid=$(prop MainPID)
tlog=$(journalctl -b -u tunerd.service --no-pager -o cat)
lost=$(grep -E 'kernel log not watched|no fanotify FS_ERROR events|fanotify: cannot watch|storage daemons.? journal not followed|mount table:' <<<"$tlog" | sort -u)
check sources_none_lost '[ -z "$lost" ]' "${lost:-no source refused in this boot}"
fan_fds=$(for fd in /proc/"$pid"/fd/*; do readlink "$fd"; done 2>/dev/null | grep -c 'anon_inode:\[fanotify\]')
check source_fanotify_open '[ "$fan_fds" -ge 1 ]' "fanotify groups open in tunerd (pid $pid): $fan_fds"
kmsg_records=$(tunerctl --json status 2>/dev/null | jq -r '.daemon.kmsg_records' 2>/dev/null)
check source_kmsg_read '[ "${kmsg_records:-0}" -gt 0 ] 2>/dev/null' "kernel log records read by the running daemon: ${kmsg_records:-none}"
journal_child=$(pgrep -P "$pid" -x journalctl)
check source_journal_followed '[ -n "$journal_child" ]' "journalctl child of tunerd: ${journal_child:-none}; $(ps -o args= -p "${journal_child:-1}" 2>/dev/null | cut -c1-200)"

# --- 10. the journal, hardening, health -----------------------------------------------------
line=$(journalctl -b -u tunerd.service --no-pager -o cat | grep -m1 '^profile vmware')
check journal_profile_line '[ -n "$line" ]' "$line"
security=$(systemd-analyze security tunerd.service --no-pager 2>&1)
exposure=$(grep -o 'Overall exposure level for tunerd.service: [0-9.]* [A-Z]*' <<<"$security" | awk '{print $6, $7}')
check security_exposure_reported '[ -n "$exposure" ]' "systemd-analyze security: ${exposure:-$(tail -2 <<<"$security")}"
figure security_exposure "$exposure"
figure security_weakest "$(grep -E '^ *✗' <<<"$security" | awk '{print $2, $NF}' | sort -k2 -rn | head -12 | tr '\n' ';')"
grep -E '^ *✗' <<<"$security" | head -40 | info
check tunerd_never_restarted '[ "$(prop NRestarts)" = 0 ]' "NRestarts=$(prop NRestarts) Result=$(prop Result)"

# --- 10b. what the package gives the administrator ------------------------------------------
man_out=$(MANWIDTH=80 man -P cat tunerctl 2>&1)
check man_tunerctl 'grep -q "^NAME" <<<"$man_out" && grep -q "tunerctl - " <<<"$man_out" && grep -qw revert <<<"$man_out"' \
    "man -w tunerctl: $(man -w tunerctl 2>&1); $(grep -A1 '^NAME' <<<"$man_out" | tail -1)"
man_out=$(MANWIDTH=80 man -P cat 5 tunerd.toml 2>&1)
check man_tunerd_toml 'grep -q "^NAME" <<<"$man_out" && grep -q drift_interval_secs <<<"$man_out"' \
    "man -w 5 tunerd.toml: $(man -w 5 tunerd.toml 2>&1); $(grep -A1 '^NAME' <<<"$man_out" | tail -1)"
# Tab after `tunerctl sta`, as bash-completion does it: its loader finds the package's file
# in /usr/share/bash-completion/completions on the first Tab, then the function completes.
completion=$(bash -c '
    . /usr/share/bash-completion/bash_completion
    _completion_loader tunerctl
    spec=$(complete -p tunerctl) || exit 1
    echo "spec: $spec"
    func=$(sed -n "s/.* -F \([^ ]*\) .*/\1/p" <<<"$spec")
    COMP_WORDS=(tunerctl sta); COMP_CWORD=1; COMP_LINE="tunerctl sta"; COMP_POINT=${#COMP_LINE}
    "$func" tunerctl sta tunerctl
    echo "sta: ${COMPREPLY[*]}"
    COMP_WORDS=(tunerctl profile ""); COMP_CWORD=2; COMP_LINE="tunerctl profile "; COMP_POINT=${#COMP_LINE}
    "$func" tunerctl "" profile
    echo "profile: ${COMPREPLY[*]}"
' 2>&1)
check bash_completion_tunerctl 'grep -qx "sta: status" <<<"$completion" && grep -q "^spec: complete .*-F _tunerctl.* tunerctl$" <<<"$completion"' \
    "$completion"
conffiles=$(dpkg-query -W -f='${Conffiles}' tunerd 2>&1)
check conffile_0600 'grep -q "^ /etc/tunerd/tunerd.toml [0-9a-f]\{32\}$" <<<"$conffiles" && [ "$(stat -c "%a %U:%G" /etc/tunerd/tunerd.toml)" = "600 root:root" ]' \
    "Conffiles:$conffiles; $(stat -c '%n %a %U:%G' /etc/tunerd/tunerd.toml 2>&1)"
warnings=$(journalctl -b -u tunerd.service --no-pager -o cat -p warning)
figure tunerd_warnings "${warnings:-none}"
figure failed_units "$(systemctl --failed --no-legend --plain | awk '{print $1}' | tr '\n' ' ')"

echo "INFO ---- journalctl -u tunerd (last 50) ----"
journalctl -b -u tunerd.service --no-pager -o short-monotonic | tail -50 | info
if [ "$failed" -gt 0 ]; then
    echo "INFO ---- systemctl status tunerd ----"
    systemctl status tunerd.service --no-pager -l 2>&1 | info
    echo "INFO ---- journalctl -p warning (last 40) ----"
    journalctl -b -p warning --no-pager -o short-monotonic | tail -40 | info
fi

# --- 13. remove, then purge: last, nothing of tunerd is left to check after them ------------
pid=$(prop MainPID)
apt_get remove tunerd
rc=$?
active=$(systemctl is-active tunerd.service 2>&1)
check remove_apt_exit_0 '[ $rc = 0 ]' "apt-get remove tunerd: exit $rc"
check remove_stopped '[ "$active" != active ] && [ "$active" != activating ] && [ "$pid" -gt 0 ] && ! kill -0 "$pid" && [ -z "$(pgrep -x tunerd)" ]' \
    "is-active=$active; pid $pid $(kill -0 "$pid" 2>/dev/null && echo 'still runs' || echo gone); tunerd processes: $(pgrep -x tunerd | tr '\n' ' ')"
check remove_keeps_etc '[ "$(pkg_state)" = "rc $newer" ] && grep -qx "drift_interval_secs = 2" /etc/tunerd/tunerd.toml && [ ! -e /usr/bin/tunerd ]' \
    "dpkg: '$(pkg_state)'; /etc/tunerd: $(ls /etc/tunerd 2>&1); /usr/bin/tunerd $([ -e /usr/bin/tunerd ] && echo present || echo absent)"
check remove_keeps_run '[ -d /run/tunerd ]' "/run/tunerd: $(ls -A /run/tunerd 2>&1 | tr '\n' ' ')"
apt_get purge tunerd
rc=$?
check purge_apt_exit_0 '[ $rc = 0 ]' "apt-get purge tunerd: exit $rc"
check purge_removes_etc '[ ! -e /etc/tunerd ] && [[ "$(pkg_state)" != [ir]* ]]' "dpkg: '$(pkg_state)'; /etc/tunerd: $(ls -d /etc/tunerd 2>&1)"
check purge_removes_run '[ ! -e /run/tunerd ]' "/run/tunerd: $(ls -d /run/tunerd 2>&1)"
left=$(find /etc/systemd/system /var/lib/systemd/deb-systemd-helper-enabled /var/lib/systemd/deb-systemd-helper-masked -name 'tunerd.service*' 2>/dev/null)
check purge_removes_enablement '[ -z "$left" ]' "${left:-no tunerd.service link or record left in /etc/systemd/system nor in the state of deb-systemd-helper}"
finish
