#!/bin/bash
# Runs inside the test guest of tests/it/guest.rs on its lab boot (kernel command line
# tunerd.guest=lab; installed as /usr/local/sbin/tunerd-guest-lab, started by
# tunerd-guest-lab.service after multi-user.target): real storage inside the guest, all on
# its own 127.0.0.1 (QEMU runs with -nic none): a tgt iSCSI target, open-iscsi sessions to
# it, a dm-multipath map over two of them, nftables stalls of one portal, and an NFS server
# mounted back soft and hard. tunerd runs the iscsi-san profile; the checks are issue 10's:
# every layer's give-up time tuned, audited and shown as one ride-out figure per mount, and
# real stalls that the figure predicts. Line protocol and helpers: lib.sh.
# shellcheck disable=SC2034
# shellcheck source=lib.sh
. /usr/local/lib/tunerd-guest/lib.sh

figure lab_start_uptime_s "$(cut -d' ' -f1 /proc/uptime)"
LAB=/srv/lab
mkdir -p $LAB
# The portals: the multipath map's two paths on 3260 and 3261, the lone session on 3262 (so
# that a stall of the lone session's portal leaves the map alone).
LONE_IQN=iqn.2026-12.org.tunerd:lone
MP_IQN=iqn.2026-12.org.tunerd:mpath
LONE_PORT=3262

# --- 0. tunerd with the iscsi-san profile ----------------------------------------------------
# The package comes from /root/tunerd.deb when no earlier boot left it installed (this boot
# alone, TUNERD_GUEST_BOOTS=lab); after the full suite, the cloud-broken boot leaves the
# version cloud-init installed from the image's repository, the same build: it is kept.
if [ "$(pkg_state)" != "ii $(dpkg-deb -f "$DEB" Version)" ]; then
    apt_get install "$DEB"
fi
figure lab_package "$(pkg_state)"
rm -f /etc/tunerd/profiles.d/*.toml
install -m 0600 /dev/stdin /etc/tunerd/tunerd.toml <<'EOF'
# tests/guest/lab.sh: the iSCSI SAN profile, drift looked for every 2 s.
profile = "iscsi-san"

[daemon]
drift_interval_secs = 2
EOF
rm -f /run/tunerd/accepted.json
systemctl restart tunerd.service
waited=$(wait_for 60 daemon_on_bus)
sjson=$(tunerctl --json status 2>&1)
check lab_tunerd_iscsi_san '[ "$waited" != timeout ] && [ "$(jq -r .daemon.profile <<<"$sjson")" = iscsi-san ] && [ "$(jq -r .daemon.drift_interval_secs <<<"$sjson")" = 2 ]' \
    "after ${waited} ms: $(jq -c '.daemon | {running, profile, chosen_by, drift_interval_secs, config}' <<<"$sjson" 2>&1)"

# The parts of the lab this boot runs (tunerd.lab= on the kernel command line, from the host's
# TUNERD_GUEST_LAB; by default all): iscsi (1-4 below), knobs (5), md (6), freeze (7).
LAB_PARTS=$(sed -n 's/.*tunerd\.lab=\([^ ]*\).*/\1/p' /proc/cmdline)
part() { [ -z "$LAB_PARTS" ] || [[ ",$LAB_PARTS," == *",$1,"* ]]; }
figure lab_parts "${LAB_PARTS:-all}"

# Helpers. The session of a portal (its connection's persistent_port), its sd disk, the
# ride-out of a mount as the daemon reports it.
session_of_port() {
    local c
    for c in /sys/class/iscsi_connection/connection*; do
        [ "$(cat "$c/persistent_port" 2>/dev/null)" = "$1" ] || continue
        c=${c##*/connection}
        echo "session${c%%:*}"
        return 0
    done
    return 1
}
disk_of_session() {
    local b
    for b in /sys/class/iscsi_session/"$1"/device/target*/*/block/*; do
        [ -e "$b" ] && echo "${b##*/}" && return 0
    done
    return 1
}
tmo_of() { cat "/sys/class/iscsi_session/$1/recovery_tmo" 2>/dev/null || echo absent; }
rideout_of() { tunerctl --json status 2>/dev/null | jq -c --arg m "$1" '[.daemon.rideout[]?, .rideout[]?] | map(select(.mount == $m)) | .[0]'; }

# --- 1. the target, and a lone session that tunerd tunes when its disk appears ---------------
lab_iscsi() {
truncate -s 256M $LAB/lone.img $LAB/mpath.img
systemd-run --unit=lab-tgtd --quiet tgtd -f --iscsi portal=127.0.0.1:3260
wait_for 20 tgtadm --lld iscsi --mode target --op show >/dev/null
tgt() { tgtadm --lld iscsi "$@" 2>&1 | info; }
tgt --mode portal --op new --param portal=127.0.0.1:3261
tgt --mode portal --op new --param portal=127.0.0.1:$LONE_PORT
tgt --mode target --op new --tid 1 --targetname $LONE_IQN
tgt --mode logicalunit --op new --tid 1 --lun 1 --backing-store $LAB/lone.img
tgt --mode target --op new --tid 2 --targetname $MP_IQN
tgt --mode logicalunit --op new --tid 2 --lun 1 --backing-store $LAB/mpath.img
tgt --mode target --op bind --tid 1 --initiator-address ALL
tgt --mode target --op bind --tid 2 --initiator-address ALL
tgtadm --lld iscsi --mode target --op show 2>&1 | grep -E 'Target|Backing store path|portal' | info
tgtadm --lld iscsi --mode portal --op show 2>&1 | info

systemctl start iscsid.service 2>&1 | info
iscsid_tmo=$(sed -n 's/^node.session.timeo.replacement_timeout *= *//p' /etc/iscsi/iscsid.conf)
figure iscsid_conf_replacement_timeout "${iscsid_tmo:-unset}"
# Discovery would return only the first portal: node records for each portal by hand.
iscsiadm -m node -o new -T $LONE_IQN -p 127.0.0.1:$LONE_PORT 2>&1 | info
t_login=$(now_ms)
out=$(iscsiadm -m node -T $LONE_IQN -p 127.0.0.1:$LONE_PORT --login 2>&1)
rc=$?
login_ms=$(($(now_ms) - t_login))
info <<<"$out"
LONE_S=$(session_of_port $LONE_PORT)
wait_for 20 disk_of_session "$LONE_S" >/dev/null
LONE_D=$(disk_of_session "$LONE_S")
figure lone_session "rc=$rc session=$LONE_S disk=$LONE_D login took ${login_ms} ms"
lone_is_180() { [ "$(tmo_of "$LONE_S")" = 180 ]; }
tuned_ms=$(wait_for 20 lone_is_180)
figure lone_recovery_tmo_180_ms "$([ "$tuned_ms" = timeout ] && echo timeout || echo $((tuned_ms + login_ms))) ms from the login command to recovery_tmo 180 (the login itself took ${login_ms} ms)"
check lab_lone_recovery_tmo_180 '[ "$tuned_ms" != timeout ]' \
    "$LONE_S ($LONE_D): recovery_tmo $(tmo_of "$LONE_S") after $tuned_ms ms; tunerd: $(journalctl -b -u tunerd.service -o cat --no-pager | grep -m3 -E "$LONE_D|$LONE_S" | tr '\n' ' ')"

# What the fixtures model (tests/fixtures/make_fixtures.py iscsi-san): the session's
# attributes and the disk's path.
echo "INFO ---- capture: /sys/class/iscsi_session/$LONE_S ----"
for a in /sys/class/iscsi_session/"$LONE_S"/*; do
    [ -f "$a" ] && echo "INFO capture session ${a##*/}=$(head -c 200 "$a" 2>&1 | tr '\n' ' ')"
done
echo "INFO capture session_link $(readlink -f /sys/class/iscsi_session/"$LONE_S")"
echo "INFO capture disk_path $(readlink -f /sys/block/"$LONE_D")"
echo "INFO capture disk_device $(readlink -f /sys/block/"$LONE_D"/device)"
echo "INFO capture proc_name $(cat /sys/block/"$LONE_D"/device/../../../scsi_host/*/proc_name 2>&1) $(ls /sys/class/iscsi_host/ 2>&1)"
for a in timeout eh_timeout vendor model state; do
    echo "INFO capture sd $a=$(cat /sys/block/"$LONE_D"/device/$a 2>&1)"
done
for a in /sys/class/iscsi_connection/connection"${LONE_S#session}":0/*; do
    [ -f "$a" ] && echo "INFO capture connection ${a##*/}=$(head -c 100 "$a" 2>&1 | tr '\n' ' ')"
done

mkfs.ext4 -q -F /dev/"$LONE_D"
mkdir -p /mnt/lone
mount -o errors=remount-ro /dev/"$LONE_D" /mnt/lone
grep " /mnt/lone " /proc/self/mountinfo | sed 's/^/capture mountinfo /' | info
# The daemon's figure for the new mount: it follows mounts on its samples.
lone_rides_180() { rideout_of /mnt/lone | jq -e '.seconds == 180 and ([.layers[] | select(.layer == "iscsi" and .seconds == 180)] | length == 1)'; }
waited=$(wait_for 15 lone_rides_180)
r=$(rideout_of /mnt/lone)
check lab_lone_rideout_180 '[ "$waited" != timeout ]' "after $waited ms: $r"
figure lone_rideout "$(jq -r '"\(.seconds) s; weakest: \(.weakest); on give-up: \(.on_give_up)"' <<<"$r" 2>&1)"

revert=$(tunerctl --json revert 2>&1)
rc=$?
orig=$(tmo_of "$LONE_S")
figure lone_revert "rc=$rc $(jq -c --arg d "$LONE_D" '[.outcomes[] | select(.target | startswith($d)) | {target, before, after, status}]' <<<"$revert" 2>&1)"
check lab_lone_revert_to_iscsid '[ $rc = 0 ] && [ "$orig" = "${iscsid_tmo:-120}" ]' \
    "after tunerctl revert: recovery_tmo $orig (iscsid.conf replacement_timeout ${iscsid_tmo:-unset})"
apply=$(tunerctl --json apply 2>&1)
rc=$?
check lab_lone_apply_again '[ $rc = 0 ] && [ "$(tmo_of "$LONE_S")" = 180 ]' "tunerctl apply: rc=$rc recovery_tmo $(tmo_of "$LONE_S")"

figure lab_mpath_start_uptime_s "$(cut -d' ' -f1 /proc/uptime)"
# --- 2. dm-multipath over two sessions to one target -----------------------------------------
cat >/etc/multipath.conf <<'EOF'
# tests/guest/lab.sh: the lab's map only; the guest's own disks stay out.
defaults {
    find_multipaths yes
    user_friendly_names yes
    polling_interval 5
    no_path_retry 6
}
blacklist {
    device {
        vendor "QEMU"
        product ".*"
    }
    device {
        vendor "VMware"
        product ".*"
    }
    device {
        vendor "Msft"
        product ".*"
    }
}
EOF
systemctl start multipathd.service 2>&1 | info
for p in 3260 3261; do
    iscsiadm -m node -o new -T $MP_IQN -p 127.0.0.1:$p 2>&1 | info
    iscsiadm -m node -T $MP_IQN -p 127.0.0.1:$p --login 2>&1 | info
done
S1=$(session_of_port 3260)
S2=$(session_of_port 3261)
map_up() { [ -n "$(ls /sys/block/"$(disk_of_session "$S1")"/holders 2>/dev/null)" ] && [ -e /dev/mapper/mpatha ]; }
waited=$(wait_for 60 map_up)
MAP_DM=$(ls /sys/block/"$(disk_of_session "$S1")"/holders 2>/dev/null | head -1)
MAP=$(cat /sys/block/"$MAP_DM"/dm/name 2>/dev/null)
multipath -ll 2>&1 | info
table=$(dmsetup table "$MAP" 2>&1)
figure mpath_map "after $waited ms: $MAP ($MAP_DM) over $S1 $(disk_of_session "$S1"), $S2 $(disk_of_session "$S2")"
echo "INFO capture dmsetup_table $MAP $table"
echo "INFO capture dm_uuid $(cat /sys/block/"$MAP_DM"/dm/uuid 2>&1) slaves $(ls /sys/block/"$MAP_DM"/slaves 2>&1 | tr '\n' ' ')"
paths_at_5() { [ "$(tmo_of "$S1")" = 5 ] && [ "$(tmo_of "$S2")" = 5 ]; }
waited=$(wait_for 30 paths_at_5)
check lab_mpath_paths_recovery_tmo_5 '[ "$waited" != timeout ]' \
    "after $waited ms: $S1 recovery_tmo $(tmo_of "$S1"), $S2 $(tmo_of "$S2"); fast_io_fail_tmo as multipathd shows: $(multipathd show config 2>/dev/null | grep -m1 fast_io_fail_tmo | tr -s ' \t' ' ')"
# No fight with multipathd: no drift record on the paths over 6 drift checks, once the map
# stands (the records of the map's first seconds are shown).
sleep 3
w0=$(date +%s)
sleep 12
recent=$(tunerctl --json status 2>/dev/null | jq -c '[.daemon.recent_drift[]? | {at, target, expected, actual, repaired}]')
in_window=$(jq --argjson t "$w0" '[.[] | select(.at >= $t)] | length' <<<"$recent")
check lab_mpath_no_fight '[ "$in_window" = 0 ] && paths_at_5' \
    "drift records in the 12 s after the map stood: $in_window; $S1 $(tmo_of "$S1"), $S2 $(tmo_of "$S2"); all: $recent"
figure mpath_drift_records "$in_window in 12 s once the map stood (drift_interval_secs 2); before: $(jq -c --argjson t "$w0" '[.[] | select(.at < $t) | "\(.target) expected \(.expected) was \(.actual)"]' <<<"$recent")"

mkfs.ext4 -q -F /dev/mapper/"$MAP"
mkdir -p /mnt/mpath
mount -o errors=remount-ro /dev/mapper/"$MAP" /mnt/mpath
# paths (5 s, the longer of the two) + no_path_retry 6 x polling_interval 5 s = 35 s.
map_rides() { rideout_of /mnt/mpath | jq -e '[.layers[] | select(.layer == "multipath")][0] | .seconds == 35 and (.detail | contains("queue_if_no_path"))'; }
waited=$(wait_for 15 map_rides)
r=$(rideout_of /mnt/mpath)
ml=$(jq -c '[.layers[] | select(.layer == "multipath")][0]' <<<"$r" 2>&1)
check lab_mpath_rideout_dm_table '[ "$waited" != timeout ] && grep -qw queue_if_no_path <<<"$table" && [ "$(jq -r .seconds <<<"$r")" = 35 ]' \
    "after $waited ms: multipath layer $ml; seconds $(jq -r .seconds <<<"$r" 2>&1); unknown $(jq -c .unknown <<<"$r" 2>&1); dmsetup table: $table"
figure mpath_rideout "$(jq -r '"\(.seconds) s; weakest: \(.weakest)"' <<<"$r" 2>&1)"

figure lab_stall_start_uptime_s "$(cut -d' ' -f1 /proc/uptime)"
# --- 3. a real stall of the lone session's portal: ridden out with tunerd, fatal without -----
STALL=25
stall_on() {
    nft -f - <<EOF
table inet labstall {
    chain input { type filter hook input priority 0; policy accept; tcp dport $LONE_PORT drop; tcp sport $LONE_PORT drop; }
    chain output { type filter hook output priority 0; policy accept; tcp dport $LONE_PORT drop; tcp sport $LONE_PORT drop; }
}
EOF
}
stall_off() { nft delete table inet labstall; }
# A writer: numbered 256 KiB files of random data, each fsynced; it logs each file's checksum
# once dd returned success, and every failure.
writer() {
    local dir=$1 log=$2 i=0
    while [ ! -e "$log.stop" ]; do
        i=$((i + 1))
        head -c 262144 /dev/urandom >"/run/lab-w.$i"
        if dd if="/run/lab-w.$i" of="$dir/w.$i" bs=64k conv=fsync status=none 2>>"$log.err"; then
            echo "$(now_ms) ok $i $(sha256sum <"/run/lab-w.$i" | cut -d' ' -f1)" >>"$log"
        else
            echo "$(now_ms) fail $i" >>"$log"
        fi
        rm -f "/run/lab-w.$i"
        sleep 0.3
    done
}
# stall RUN: the writer runs, the portal is dropped for $STALL s, then restored; the writer
# runs on for up to $2 s (or until it fails and the filesystem is read-only).
stall_run() {
    local run=$1 log=/run/lab-writer-$1.log
    rm -f "$log" "$log".*
    writer /mnt/lone "$log" &
    wpid=$!
    sleep 3
    dmesg_before=$(dmesg | wc -l)
    t_stall=$(now_ms)
    stall_on
    sleep $STALL
    stall_off
    t_restore=$(now_ms)
    local n0 ok_after
    n0=$(grep -c ' ok ' "$log")
    # Wait for the writer to write again (a survived stall) or for the fs to fail.
    for _ in $(seq 1 ${2:-40}); do
        ok_after=$(awk -v t="$t_restore" '$1 > t && $2 == "ok"' "$log" | head -1)
        [ -n "$ok_after" ] && break
        grep -q ' fail ' "$log" && dmesg | tail -n +"$((dmesg_before + 1))" | grep -q 'Remounting filesystem read-only' && break
        sleep 1
    done
    sleep 2
    touch "$log.stop"
    wait "$wpid" 2>/dev/null
    first_ok_after=$(awk -v t="$t_restore" '$1 > t && $2 == "ok" {print $1; exit}' "$log")
    kmsg=$(dmesg | tail -n +"$((dmesg_before + 1))")
    echo "INFO ---- stall $run: kernel log ----"
    grep -E 'session|connection|I/O error|EXT4|Buffer I/O|Aborting|rejecting' <<<"$kmsg" | head -25 | info
}
# Every file the writer said it wrote is on the disk with that content (page cache dropped).
verify_writes() {
    local log=$1 bad=0 good=0 ts st i sum
    sync
    echo 3 >/proc/sys/vm/drop_caches
    while read -r ts st i sum; do
        [ "$st" = ok ] || continue
        if [ "$(sha256sum <"/mnt/lone/w.$i" 2>/dev/null | cut -d' ' -f1)" = "$sum" ]; then
            good=$((good + 1))
        else
            bad=$((bad + 1))
        fi
    done <"$log"
    echo "$good $bad"
}

# (a) tunerd's profile: recovery_tmo 180 > the 25 s stall.
pred_a=$(rideout_of /mnt/lone | jq -r .seconds)
check lab_stall_a_predicted '[ "$pred_a" = 180 ] && [ "$pred_a" -ge $STALL ]' \
    "before the stall: tunerd says /mnt/lone rides out ${pred_a} s; the stall is $STALL s: survives"
stall_run a 40
log=/run/lab-writer-a.log
read -r good bad <<<"$(verify_writes $log)"
fails=$(grep -c ' fail ' $log)
ro=$(grep -c 'Remounting filesystem read-only' <<<"$kmsg")
figure stall_a "portal $LONE_PORT dropped $(((t_restore - t_stall))) ms; recovery_tmo $(tmo_of "$LONE_S"); writer: $(grep -c ' ok ' $log) writes ok, $fails failed; first write after the restore $([ -n "$first_ok_after" ] && echo "$((first_ok_after - t_restore)) ms" || echo never) later; longest write gap $(awk '$2 == "ok" {if (p) {g = $1 - p; if (g > m) m = g}; p = $1} END {print m + 0}' $log) ms"
check lab_stall_a_survived '[ -n "$first_ok_after" ] && [ "$fails" = 0 ] && [ "$ro" = 0 ] && [ "$bad" = 0 ] && [ "$good" -gt 0 ] && ! grep -q " ro[, ]" <<<"$(grep " /mnt/lone " /proc/mounts)"' \
    "writes failed: $fails; remount-ro lines: $ro; checksums: $good good, $bad bad; $(grep " /mnt/lone " /proc/mounts); errors: $(head -c 200 $log.err 2>/dev/null)"

# (b) the defaults, scaled down: iscsid's 120 s against a 130 s stall, scaled by 1/12: a
# recovery_tmo of 10 against the same 25 s stall. tunerd's revert suspends its enforcement.
tunerctl revert >/dev/null 2>&1
echo 10 >/sys/class/iscsi_session/"$LONE_S"/recovery_tmo
sleep 5
events_before=$(tunerctl events --json 2>/dev/null | jq -c '[.open[]?, .resolved[]?] | length')
pred_b=$(rideout_of /mnt/lone | jq -r .seconds)
# The daemon's figure follows what it last planned; the command line computes it now.
pred_b_cli=$(tunerctl --json plan 2>/dev/null | jq -r '.rideout.before[]? | select(.mount == "/mnt/lone") | .seconds')
check lab_stall_b_predicted '[ "$(tmo_of "$LONE_S")" = 10 ] && { [ "$pred_b" = 10 ] || [ "$pred_b_cli" = 10 ]; } && [ "${pred_b_cli:-$pred_b}" -lt $STALL ]' \
    "recovery_tmo $(tmo_of "$LONE_S"); tunerd says /mnt/lone rides out ${pred_b} s (status), ${pred_b_cli} s (plan, before); the stall is $STALL s: fails"
stall_run b 40
log=/run/lab-writer-b.log
fails=$(grep -c ' fail ' $log)
timed_out=$(grep -o 'session recovery timed out after [0-9]* secs' <<<"$kmsg" | head -1)
ro=$(grep -c 'Remounting filesystem read-only' <<<"$kmsg")
ioerr=$(grep -c 'I/O error' <<<"$kmsg")
figure stall_b "portal $LONE_PORT dropped $(((t_restore - t_stall))) ms; recovery_tmo 10; '$timed_out'; I/O error lines $ioerr; writer: $(grep -c ' ok ' $log) ok, $fails failed, first failure $(awk -v t="$t_stall" '$2 == "fail" {print $1 - t; exit}' $log) ms into the stall"
check lab_stall_b_failed '[ "$timed_out" = "session recovery timed out after 10 secs" ] && [ "$ioerr" -gt 0 ] && [ "$ro" -gt 0 ] && [ "$fails" -gt 0 ]' \
    "'$timed_out'; I/O errors: $ioerr; remount-ro: $ro; writes failed: $fails; $(grep 'Remounting' <<<"$kmsg" | head -1)"
has_incident() { tunerctl events --json 2>/dev/null | jq -e --arg d "$LONE_D" '[.open[]?, .resolved[]?] | map(select(.disk == $d or ((.devices // []) | index($d)) or ((.mounts // []) | index("/mnt/lone")))) | length > 0'; }
waited=$(wait_for 30 has_incident)
check lab_stall_b_incident '[ "$waited" != timeout ]' \
    "after $waited ms: $(tunerctl events --json 2>&1 | jq -c '[.open[]?, .resolved[]?] | map({kind, severity, disk, mounts, count})' 2>&1) (before the stall: $events_before)"
umount -l /mnt/lone 2>/dev/null

# --- 4. NFS: a soft mount's give-up time, computed and measured; a hard one never gives up ---
figure lab_nfs_start_uptime_s "$(cut -d' ' -f1 /proc/uptime)"
mkdir -p /srv/nfs-export /mnt/nfs-soft /mnt/nfs-hard /etc/nfs.conf.d
echo "/srv/nfs-export 127.0.0.1(rw,sync,no_subtree_check,no_root_squash)" >/etc/exports
# nfsd's NFSv4 grace period (90 s by default) would hold every create after its start.
printf '[nfsd]\ngrace-time = 10\nlease-time = 10\n' >/etc/nfs.conf.d/lab.conf
systemctl start nfs-server.service 2>&1 | info
mount -t nfs -o soft,timeo=100,retrans=2,proto=tcp,nosharecache 127.0.0.1:/srv/nfs-export /mnt/nfs-soft 2>&1 | info
mount -t nfs -o hard,proto=tcp,nosharecache 127.0.0.1:/srv/nfs-export /mnt/nfs-hard 2>&1 | info
grep -E ' /mnt/nfs-(soft|hard) ' /proc/self/mountinfo | sed 's/^/capture mountinfo /' | info
nfs_soft_30() { rideout_of /mnt/nfs-soft | jq -e '.seconds == 30 and .layers[0].layer == "nfs"'; }
nfs_hard_never() { rideout_of /mnt/nfs-hard | jq -e '.seconds == null and .layers[0].layer == "nfs"'; }
waited=$(wait_for 15 nfs_soft_30)
check lab_nfs_soft_rideout_30 '[ "$waited" != timeout ]' "after $waited ms: $(rideout_of /mnt/nfs-soft)"
waited=$(wait_for 10 nfs_hard_never)
check lab_nfs_hard_never '[ "$waited" != timeout ]' "after $waited ms: $(rideout_of /mnt/nfs-hard)"
pred=$(rideout_of /mnt/nfs-soft | jq -r .seconds)
t0=$(now_ms)
echo hello >/mnt/nfs-soft/before
figure nfs_first_create_ms "$(($(now_ms) - t0)) (grace-time 10)"
# A create goes to the server (no cache answers it). The server stopped: its port refuses.
soft_probe() {
    local t0 err rc
    t0=$(now_ms)
    err=$(timeout "$1" sh -c "echo x >/mnt/nfs-soft/probe-$2" 2>&1)
    rc=$?
    echo "$(($(now_ms) - t0)) $rc ${err:-no error}"
}
systemctl stop nfs-server.service 2>&1 | info
read -r measured rc err <<<"$(soft_probe 90 stopped)"
figure nfs_soft_give_up_server_stopped "predicted ${pred} s (tunerd), measured ${measured} ms until the create returned: rc=$rc $err"
check lab_nfs_soft_measured 'grep -q "Input/output error" <<<"$err" && [ $measured -ge $(((pred - 2) * 1000)) ] && [ $measured -le $(((pred + 15) * 1000)) ]' \
    "create on /mnt/nfs-soft with nfs-server stopped: rc=$rc '$err' after $measured ms; predicted $pred s"
systemctl start nfs-server.service 2>&1 | info
hard_back() { timeout 30 stat /mnt/nfs-hard/before; }
soft_back() { timeout 30 sh -c 'echo y >/mnt/nfs-soft/after'; }
waited=$(wait_for 60 soft_back)
figure nfs_back_after_restart "a create on the soft mount after nfs-server started again: $waited ms; stat on the hard mount: $(wait_for 30 hard_back) ms"
# The server silent instead (port 2049 dropped both ways, no reset): recorded, not asserted.
# Seen: 30.4 s, like the stopped server, in one run; in an earlier one (nfsd in its default
# 90 s grace period, no restart before) no answer within 120 s.
nft -f - <<'NFT'
table inet labnfs {
    chain input { type filter hook input priority 0; policy accept; tcp dport 2049 drop; tcp sport 2049 drop; }
}
NFT
read -r measured rc err <<<"$(soft_probe 50 silent)"
nft delete table inet labnfs
figure nfs_soft_give_up_server_silent "predicted ${pred} s (tunerd), measured: ${measured} ms, rc=$rc ($([ "$rc" = 124 ] && echo "no answer: killed by timeout" || echo "$err"))"
figure lab_nfs_end_uptime_s "$(cut -d' ' -f1 /proc/uptime)"
umount -f -l /mnt/nfs-soft /mnt/nfs-hard 2>/dev/null

umount /mnt/mpath 2>/dev/null
iscsiadm -m node --logoutall=all 2>&1 | info
# tgtd does not exit on SIGTERM while it has targets (systemd would wait its 90 s for it).
systemctl kill --signal=SIGKILL lab-tgtd.service
}

# shellcheck source=lab-parts.sh
. /usr/local/lib/tunerd-guest/lab-parts.sh
part iscsi && lab_iscsi
part knobs && lab_knobs
part md && lab_md
part freeze && lab_freeze
echo "INFO ---- tunerctl status ----"
tunerctl status 2>&1 | info
echo "INFO ---- journalctl -u tunerd ----"
journalctl -b -u tunerd.service --no-pager -o short-monotonic | tail -40 | info
figure lab_end_uptime_s "$(cut -d' ' -f1 /proc/uptime)"
finish
