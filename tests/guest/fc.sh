#!/bin/bash
# Runs inside the test guest of tests/it/guest.rs on its fc boot (kernel command line
# tunerd.guest=fc; installed as /usr/local/sbin/tunerd-guest-fc, started by
# tunerd-guest-fc.service after multi-user.target). Real Fibre Channel remote ports without
# an FC switch or HBA: software FCoE in VN2VN mode over a veth pair inside this one guest
# (QEMU runs with -nic none). The initiator is libfc/fcoe on veth0; the target is LIO's
# tcm_fc on the FCoE local port of veth1, a fileio LUN with an ACL for the initiator's WWPN.
# The initiator logs in and an sd disk appears under a real fc_host and fc_remote_port
# (/sys/class/fc_remote_ports/rport-H:0-N). This boot needs the full Debian kernel
# (linux-image-amd64: fcoe, libfcoe, libfc, tcm_fc; the cloud kernel has none of them), so it
# boots its own root filesystem (guest.rs FC_PACKAGES). The checks: tunerd finds the disk's
# rport, applies and verifies the FC knobs of a profile drop-in, reverts them to the kernel's,
# shows the FC layer in the ride-out from the live values, and a real link stall shorter
# than the timers is ridden out. Line protocol and helpers: lib.sh.
# shellcheck disable=SC2034
# shellcheck source=lib.sh
. /usr/local/lib/tunerd-guest/lib.sh

figure fc_start_uptime_s "$(cut -d' ' -f1 /proc/uptime)"
figure fc_kernel "$(uname -r)"
LAB=/srv/fc
mkdir -p $LAB
# The drop-in's values: the timers the check expects the rport to carry after apply.
FAST=170
LOSS=180

# --- 0. tunerd with a profile for the software FCoE disk -------------------------------------
# The default's FC rules match the HBA drivers (qla2xxx, lpfc, ...); the FCoE disk's SCSI
# host is `fcoe` (its proc_name): a drop-in holds it the same way, and sets both FC timers.
if [ "$(pkg_state)" != "ii $(dpkg-deb -f "$DEB" Version)" ]; then
    apt_get install "$DEB"
fi
figure fc_package "$(pkg_state)"
install -d -m 0755 /etc/tunerd/profiles.d
rm -f /etc/tunerd/profiles.d/*.toml
install -m 0644 /dev/stdin /etc/tunerd/profiles.d/fcoe-lab.toml <<EOF
# tests/guest/fc.sh: software FCoE (SCSI host proc_name fcoe) held like the default's FC HBAs.
description = "tests/guest/fc.sh: the default profile plus the FC rules for a software FCoE initiator"
inherits = "default"

[[disk]]
rule = "fcoe-disks"
match = { driver = ["fcoe"] }
scsi_timeout = { value = 180, reason = "as the default's fc-disks: an array failover takes minutes, sd gives up after 30 s" }

[[disk]]
rule = "fcoe-single-path"
match = { driver = ["fcoe"], multipath_path = "0" }
fc_dev_loss_tmo = { value = $LOSS, reason = "one port to the LUN: hold the remote port as long as the SCSI timeout" }
fc_fast_io_fail_tmo = { value = $FAST, reason = "fail queued I/O just before the port is removed, below dev_loss_tmo as scsi_transport_fc requires" }
EOF
install -m 0600 /dev/stdin /etc/tunerd/tunerd.toml <<'EOF'
# tests/guest/fc.sh: the software FCoE lab's profile, drift looked for every 2 s.
profile = "fcoe-lab"

[daemon]
drift_interval_secs = 2
EOF
rm -f /run/tunerd/accepted.json
systemctl restart tunerd.service
waited=$(wait_for 60 daemon_on_bus)
sjson=$(tunerctl --json status 2>&1)
check fc_tunerd_profile '[ "$waited" != timeout ] && [ "$(jq -r .daemon.profile <<<"$sjson")" = fcoe-lab ]' \
    "after ${waited} ms: $(jq -c '.daemon | {running, profile, chosen_by}' <<<"$sjson" 2>&1)"

# --- 1. the FCoE fabric: two VN2VN ports on a veth pair, the target on veth1 -----------------
t_setup=$(now_ms)
modprobe veth
modprobe fcoe
modprobe tcm_fc
mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config
# FCoE frames carry up to 2112 bytes of payload: the links need a "baby jumbo" MTU.
ip link add veth0 mtu 9000 type veth peer name veth1 mtu 9000
ip link set veth0 up
ip link set veth1 up
# The FCoE controllers (fcoe_sysfs): created disabled, put in VN2VN mode, enabled below.
echo veth1 >/sys/bus/fcoe/ctlr_create
echo veth0 >/sys/bus/fcoe/ctlr_create
ctlr_of() { local c; for c in /sys/class/net/"$1"/ctlr_*; do [ -e "$c" ] && echo "${c##*/}" && return 0; done; return 1; }
host_of() { local h; for h in /sys/class/net/"$1"/ctlr_*/host*; do [ -e "$h" ] && echo "${h##*/}" && return 0; done; return 1; }
T_CTLR=$(ctlr_of veth1)
I_CTLR=$(ctlr_of veth0)
T_HOST=$(host_of veth1)
I_HOST=$(host_of veth0)
# tcm_fc names a local port by its WWPN in colon form (rtslib-fb's tcm_fc spec does the same).
wwpn_of() { sed -e 's/^0x//' -e 's/../&:/g' -e 's/:$//' "/sys/class/fc_host/$1/port_name"; }
T_WWPN=$(wwpn_of "$T_HOST")
I_WWPN=$(wwpn_of "$I_HOST")
figure fc_ports "target $T_HOST ($T_CTLR on veth1) $T_WWPN; initiator $I_HOST ($I_CTLR on veth0) $I_WWPN"

C=/sys/kernel/config/target
truncate -s 128M $LAB/lun0.img
mkdir -p $C/core/fileio_0/lun0
echo "fd_dev_name=$LAB/lun0.img,fd_dev_size=134217728" >$C/core/fileio_0/lun0/control
echo 1 >$C/core/fileio_0/lun0/enable
TPG=$C/fc/$T_WWPN/tpgt_1
mkdir -p $TPG/lun/lun_0
ln -s $C/core/fileio_0/lun0 $TPG/lun/lun_0/p0
mkdir -p "$TPG/acls/$I_WWPN/lun_0"
ln -s $TPG/lun/lun_0 "$TPG/acls/$I_WWPN/lun_0/m0"
find $C/fc -maxdepth 5 | sed 's/^/target /' | info

echo vn2vn >/sys/bus/fcoe/devices/"$T_CTLR"/mode
echo vn2vn >/sys/bus/fcoe/devices/"$I_CTLR"/mode
t_enable=$(now_ms)
echo 1 >/sys/bus/fcoe/devices/"$T_CTLR"/enabled
echo 1 >/sys/bus/fcoe/devices/"$I_CTLR"/enabled

# The initiator's remote port with the target role, and its disk.
rport_of_target() {
    local r
    for r in /sys/class/fc_remote_ports/rport-"${I_HOST#host}":*; do
        grep -q 'FCP Target' "$r/roles" 2>/dev/null && echo "${r##*/}" && return 0
    done
    return 1
}
disk_of_rport() {
    local b
    for b in /sys/class/fc_remote_ports/"$1"/device/target*/*/block/*; do
        [ -e "$b" ] && echo "${b##*/}" && return 0
    done
    return 1
}
login_ms=$(wait_for 60 rport_of_target)
RPORT=$(rport_of_target)
disk_ms=$(wait_for 60 disk_of_rport "$RPORT")
DISK=$(disk_of_rport "$RPORT")
R=/sys/class/fc_remote_ports/$RPORT
figure fc_login "rport $RPORT after $login_ms ms from enabling the ports; disk $DISK after $disk_ms ms more; whole setup $(($(now_ms) - t_setup)) ms"
for h in "$T_HOST" "$I_HOST"; do
    echo "INFO fc_host $h: $(for a in port_name port_id port_state port_type speed; do printf '%s=%s ' $a "$(cat /sys/class/fc_host/$h/$a 2>&1)"; done)"
done
for r in /sys/class/fc_remote_ports/*; do
    echo "INFO rport ${r##*/}: $(for a in port_name port_id roles port_state fast_io_fail_tmo dev_loss_tmo; do printf '%s=%s ' $a "$(cat "$r/$a" 2>&1)"; done)"
done
echo "INFO disk_path $(readlink -f /sys/block/"$DISK" 2>&1)"
echo "INFO proc_name $(cat /sys/class/scsi_host/"$I_HOST"/proc_name 2>&1)"
fcoeadm -i 2>&1 | info
check fc_rport_disk '[ -n "$RPORT" ] && [ -n "$DISK" ] && [ "$(cat $R/port_state)" = Online ] && readlink -f /sys/block/$DISK | grep -q "/$RPORT/"' \
    "rport ${RPORT:-none} ($(cat "$R/roles" 2>&1), $(cat "$R/port_state" 2>&1)) disk ${DISK:-none}: $(readlink -f /sys/block/"$DISK" 2>&1)"

fast_of() { cat "$R/fast_io_fail_tmo" 2>/dev/null || echo absent; }
loss_of() { cat "$R/dev_loss_tmo" 2>/dev/null || echo absent; }
# The kernel's own values (scsi_transport_fc: dev_loss_tmo from the module parameter,
# fast_io_fail_tmo off), for revert. tunerd may have tuned the port already: read the
# journal it keeps, and what a port no one tuned carries (the target side's rport).
K_LOSS=$(cat /sys/module/scsi_transport_fc/parameters/dev_loss_tmo)
figure fc_kernel_defaults "dev_loss_tmo $K_LOSS (scsi_transport_fc parameter); the untuned target-side rport: $(for r in /sys/class/fc_remote_ports/rport-"${T_HOST#host}":*; do echo "${r##*/} fast_io_fail_tmo $(cat "$r/fast_io_fail_tmo") dev_loss_tmo $(cat "$r/dev_loss_tmo")"; done)"

# --- 2. tunerd: the rport found, the knobs planned, applied on the disk's add, verified ------
tuned() { [ "$(fast_of)" = $FAST ] && [ "$(loss_of)" = $LOSS ] && [ "$(timeout_of "$DISK")" = 180 ]; }
tuned_ms=$(wait_for 30 tuned)
figure fc_tuned_ms "$tuned_ms ms after the disk appeared: fast_io_fail_tmo $(fast_of) dev_loss_tmo $(loss_of) timeout $(timeout_of "$DISK")"
journalctl -b -u tunerd.service -o cat --no-pager | grep -E "$DISK|$RPORT|fc_" | tail -20 | info
check fc_applied_on_add '[ "$tuned_ms" != timeout ]' \
    "$RPORT: fast_io_fail_tmo $(fast_of) dev_loss_tmo $(loss_of), $DISK timeout $(timeout_of "$DISK") (want $FAST, $LOSS, 180) after $tuned_ms ms"
pjson=$(tunerctl --json plan 2>&1)
fcplan=$(jq -c --arg r "$RPORT" '[.changes[]? | select(.path | contains("fc_remote_ports/" + $r + "/")) | {object, knob, path, current, desired, action, rule}]' <<<"$pjson" 2>&1)
check fc_plan_names_rport 'jq -e --arg r "$RPORT" "length == 2 and ([.[].path] | sort == [\"sys/class/fc_remote_ports/\" + \$r + \"/dev_loss_tmo\", \"sys/class/fc_remote_ports/\" + \$r + \"/fast_io_fail_tmo\"]) and all(.[]; .action == \"unchanged\")" <<<"$fcplan"' \
    "tunerctl plan: $fcplan"
sjson=$(tunerctl --json status 2>&1)
echo "INFO status disk: $(jq -c --arg d "$DISK" '[.. | objects | select(.name? == $d)] | .[0]' <<<"$sjson" 2>&1 | cut -c1-800)"
verify=$(tunerctl verify 2>&1)
rc=$?
check fc_verify_clean '[ $rc = 0 ]' "exit $rc: $verify"
# Drift: another tool puts the kernel's value back; the daemon repairs it.
echo "$K_LOSS" >"$R/dev_loss_tmo" 2>&1 | info
repaired_ms=$(wait_for 20 tuned)
check fc_drift_repaired '[ "$repaired_ms" != timeout ]' "dev_loss_tmo set to $K_LOSS behind tunerd's back: $(loss_of) after $repaired_ms ms"

# --- 3. revert to the kernel's values, apply again ---------------------------------------------
revert=$(tunerctl --json revert 2>&1)
rc=$?
figure fc_revert "rc=$rc $(jq -c --arg d "$DISK" '[.outcomes[]? | select(.target | startswith($d)) | {target, before, after, status}]' <<<"$revert" 2>&1)"
check fc_revert_to_kernel '[ $rc = 0 ] && [ "$(fast_of)" = off ] && [ "$(loss_of)" = "$K_LOSS" ] && [ "$(timeout_of "$DISK")" = 30 ]' \
    "after tunerctl revert: fast_io_fail_tmo $(fast_of) dev_loss_tmo $(loss_of) timeout $(timeout_of "$DISK") (want off, $K_LOSS, 30)"
apply=$(tunerctl --json apply 2>&1)
rc=$?
figure fc_apply "rc=$rc $(jq -c --arg d "$DISK" '[.outcomes[]? | select(.target | startswith($d)) | {target, before, after, status}]' <<<"$apply" 2>&1 | cut -c1-500)"
check fc_apply_from_kernel_values '[ $rc = 0 ] && tuned' \
    "tunerctl apply from fast_io_fail_tmo off, dev_loss_tmo $K_LOSS: rc=$rc fast_io_fail_tmo $(fast_of) dev_loss_tmo $(loss_of) timeout $(timeout_of "$DISK"); $(one_line "$apply" | cut -c1-300)"
wait_for 20 tuned >/dev/null
verify=$(tunerctl verify 2>&1)
rc=$?
check fc_verify_clean_again '[ $rc = 0 ]' "exit $rc: $verify"

# --- 4. the ride-out of a mount on the FCoE disk names the FC layer with the live values -------
rideout_of() { tunerctl --json status 2>/dev/null | jq -c --arg m "$1" '[.daemon.rideout[]?, .rideout[]?] | map(select(.mount == $m)) | .[0]'; }
mkfs.ext4 -q -F /dev/"$DISK"
mkdir -p /mnt/fc
mount -o errors=remount-ro /dev/"$DISK" /mnt/fc
fc_rides() {
    rideout_of /mnt/fc | jq -e --arg r "$RPORT" --argjson f "$(fast_of)" --arg l "$(loss_of)" \
        '.seconds == $f and ([.layers[] | select(.layer == "fc" and .seconds == $f and (.detail | contains($r + ": fast_io_fail_tmo \($f), dev_loss_tmo " + $l)))] | length == 1)'
}
waited=$(wait_for 15 fc_rides)
r=$(rideout_of /mnt/fc)
check fc_rideout_fc_layer '[ "$waited" != timeout ]' "after $waited ms (live: fast_io_fail_tmo $(fast_of), dev_loss_tmo $(loss_of)): $r"
figure fc_rideout "$(jq -r '"\(.seconds) s; weakest: \(.weakest); on give-up: \(.on_give_up)"' <<<"$r" 2>&1)"

# --- 5. a real stall shorter than the timers: the FCoE link goes down for 20 s ---------------
# Both VN2VN ports lose the link (a veth pair's carrier is shared), the rport goes Blocked
# and the sd device `blocked`; queued I/O waits. Link up: FIP re-claims, the rport is back.
wait_for 20 tuned >/dev/null
STALL=20
dd if=/dev/urandom of=$LAB/payload bs=64k count=16 2>/dev/null
sync
ip link set veth1 down
t_down=$(now_ms)
blocked() { [ "$(cat $R/port_state)" = Blocked ]; }
blocked_ms=$(wait_for 10 blocked)
(
    dd if=$LAB/payload of=/mnt/fc/during-stall bs=64k oflag=direct,sync 2>&1
    echo "dd_rc=$?"
) >$LAB/writer.log &
writer=$!
sleep $STALL
state_during="rport $(cat $R/port_state), $DISK $(cat /sys/block/"$DISK"/device/state)"
writer_waiting=$(kill -0 $writer 2>/dev/null && echo waiting || echo finished)
ip link set veth1 up
t_up=$(now_ms)
online() { [ "$(cat $R/port_state)" = Online ]; }
back_ms=$(wait_for 60 online)
wait $writer
writer_done_ms=$(($(now_ms) - t_up))
figure fc_stall "link down $(((t_up - t_down) / 1000)) s (rport Blocked after $blocked_ms ms; during: $state_during, writer $writer_waiting); rport Online $back_ms ms after link up, writer done $writer_done_ms ms after link up"
check fc_stall_blocked '[ "$blocked_ms" != timeout ] && [ "$writer_waiting" = waiting ]' \
    "during the stall: $state_during; the writer was $writer_waiting"
check fc_stall_survived '[ "$back_ms" != timeout ] && grep -q dd_rc=0 $LAB/writer.log && cmp -s $LAB/payload /mnt/fc/during-stall && grep -q " /mnt/fc ext4 rw," /proc/mounts && [ "$(cat /sys/block/$DISK/device/state)" = running ] && [ "$(disk_of_rport "$RPORT")" = "$DISK" ]' \
    "after link up: rport $(cat $R/port_state 2>&1) after $back_ms ms, $(tr '\n' ' ' <$LAB/writer.log), the file $(cmp -s $LAB/payload /mnt/fc/during-stall && echo intact || echo differs), $(grep " /mnt/fc " /proc/mounts), $DISK $(cat /sys/block/"$DISK"/device/state 2>&1), same disk: $(disk_of_rport "$RPORT")"
dmesg | grep -E 'libfc|host[0-9]+:|rport|sd [0-9]|EXT4' | tail -15 | info
verify=$(tunerctl verify 2>&1)
rc=$?
check fc_verify_after_stall '[ $rc = 0 ]' "exit $rc: $verify"

umount /mnt/fc
tunerctl revert >/dev/null 2>&1
figure fc_end_uptime_s "$(cut -d' ' -f1 /proc/uptime)"
finish
