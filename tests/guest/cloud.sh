#!/bin/bash
# Runs inside the test guest of tests/it/guest.rs on its third boot (kernel command line
# tunerd.guest=cloud; installed as /usr/local/sbin/tunerd-guest-cloud, started by
# tunerd-guest-cloud.service after cloud-final.service): the machine the check boot left clean
# (tunerd purged) now boots on a Hyper-V look (DMI "Microsoft Corporation" "Virtual Machine", a
# virtio-scsi controller with an Msft "Virtual Disk") with a NoCloud seed whose user-data is
# the cloud-config of docs/images.md. Real cloud-init installed tunerd from the image's local
# apt repository, wrote the site profile and tunerd.toml, and reloaded tunerd. This checks all
# of that, then a SCSI failure delivered to the webhook receiver (tunerd-guest-receiver.service)
# and as a D-Bus signal. Line protocol and helpers: lib.sh.
# shellcheck disable=SC2034
# shellcheck source=lib.sh
. /usr/local/lib/tunerd-guest/lib.sh

SINK=/var/lib/tunerd-guest/webhook.jsonl
figure cloud_start_uptime_s "$(cut -d' ' -f1 /proc/uptime)"
figure dmi "sys_vendor='$(cat /sys/class/dmi/id/sys_vendor)' product_name='$(cat /sys/class/dmi/id/product_name)'"
figure sda_identity "vendor='$(cat /sys/block/sda/device/vendor 2>/dev/null)' model='$(cat /sys/block/sda/device/model 2>/dev/null)' host=$(cat /sys/block/sda/device/../../scsi_host/*/proc_name 2>/dev/null)"
for u in cloud-init-local cloud-init cloud-config cloud-final tunerd-guest-receiver; do
    figure "${u//-/_}_done_since_boot_ms" "$(($(prop ActiveEnterTimestampMonotonic "$u.service") / 1000)) (from $(($(prop InactiveExitTimestampMonotonic "$u.service") / 1000)))"
done

# --- 1. cloud-init ran every stage, from the NoCloud seed, without errors ------------------
ci_status=$(cloud-init status --long 2>&1)
ci_rc=$?
info <<<"$ci_status"
result=$(cat /run/cloud-init/result.json 2>&1)
figure cloud_init_result "$(jq -c . <<<"$result" 2>&1)"
check cloud_init_done '[ $ci_rc = 0 ] && grep -qx "status: done" <<<"$ci_status" && [ "$(jq -r ".v1.errors | length" <<<"$result")" = 0 ]' \
    "cloud-init status exit $ci_rc: $(grep -E '^(status|detail|errors?):' <<<"$ci_status" | tr '\n' ' '); result.json errors: $(jq -c '.v1.errors' <<<"$result" 2>&1)"
check cloud_init_nocloud_seed 'jq -e ".v1.datasource | test(\"NoCloud\")" <<<"$result" && [ "$(cat /var/lib/cloud/data/instance-id 2>/dev/null)" = tunerd-guest-cloud-1 ]' \
    "datasource: $(jq -r '.v1.datasource' <<<"$result" 2>&1); instance-id $(cat /var/lib/cloud/data/instance-id 2>&1); seed: $(blkid -t LABEL=cidata -o device 2>&1)"
warnings=$(grep -E ' (WARNING|ERROR|CRITICAL)' /var/log/cloud-init.log 2>/dev/null)
figure cloud_init_log_warnings "$(grep -c . <<<"$warnings") lines: $(head -5 <<<"$warnings" | cut -c1-200)"
# No network at all: apt-get update only warns about the image's Debian mirrors.
figure apt_update_mirror_warnings "$(grep -c '^W: Failed to fetch' /var/log/cloud-init-output.log 2>/dev/null) 'W: Failed to fetch' lines in cloud-init-output.log"

# --- 2. the package came from cloud-init, through the apt source the user-data gave -----------
version=$(dpkg-deb -f "$DEB" Version)
check cloud_package_installed '[ "$(pkg_state)" = "ii $version" ]' "dpkg-query: '$(pkg_state)' (want 'ii $version')"
ci_apt=$(grep -F "'install', 'tunerd']" /var/log/cloud-init.log | head -1 | cut -c1-300)
history=$(awk '/^Start-Date/{block=""} {block=block $0 " | "} /^End-Date/{if (block ~ /Install: tunerd:/) last=block} END{print last}' /var/log/apt/history.log)
check cloud_package_by_cloud_init '[ -n "$ci_apt" ] && grep -q -- "--force-confold" <<<"$history"' \
    "cloud-init.log: ${ci_apt:-no apt-get install tunerd}; apt history: $(cut -c1-300 <<<"$history")"
check cloud_apt_source 'grep -qF "deb [trusted=yes] file:/srv/tunerd-repo ./" /etc/apt/sources.list.d/tunerd.list && apt-cache policy tunerd | grep -q "file:/srv/tunerd-repo"' \
    "tunerd.list: $(cat /etc/apt/sources.list.d/tunerd.list 2>&1 | grep -v '^#'); $(apt-cache policy tunerd 2>&1 | grep -E 'Installed|file:' | tr -s ' ' | tr '\n' ' ')"

# --- 3. the service, and the files cloud-init wrote ------------------------------------------
active=$(systemctl is-active tunerd.service)
enabled=$(systemctl is-enabled tunerd.service 2>&1)
check cloud_tunerd_active '[ "$active" = active ]' "is-active=$active sub=$(prop SubState) result=$(prop Result) NRestarts=$(prop NRestarts)"
check cloud_tunerd_enabled '[ "$enabled" = enabled ]' "is-enabled=$enabled"
waited=$(wait_for 60 daemon_on_bus)
check cloud_on_bus '[ "$waited" != timeout ]' "tunerctl status said 'daemon running' after ${waited} ms"
# Every write_files entry of the user-data cloud-init consumed: on disk with its mode and
# owner, and its content.
files=$(python3 - <<'PY' 2>&1
import grp, os, pwd, stat, yaml
with open("/var/lib/cloud/instance/user-data.txt") as f:
    cfg = yaml.safe_load(f)
for w in cfg.get("write_files", []):
    path, want = w["path"], int(str(w.get("permissions", "0644")), 8)
    owner = w.get("owner", "root:root")
    try:
        st = os.stat(path)
        with open(path) as f:
            same = f.read() == w.get("content", "")
        got = f"{stat.S_IMODE(st.st_mode):04o} {pwd.getpwuid(st.st_uid).pw_name}:{grp.getgrgid(st.st_gid).gr_name}"
    except OSError as e:
        same, got = False, str(e)
    ok = got == f"{want:04o} {owner}" and same
    print(f"{'ok' if ok else 'BAD'} {path} want {want:04o} {owner} got {got} content {'as written' if same else 'DIFFERS'}")
PY
)
check cloud_write_files_modes '[ "$(grep -c "^ok " <<<"$files")" = 2 ] && ! grep -q "^BAD" <<<"$files"' "$files"
cc=$(tunerctl check-config 2>&1)
rc=$?
check cloud_config_valid '[ $rc = 0 ] && grep -q "profile site" <<<"$cc"' "tunerctl check-config: exit $rc: $cc"

# --- 4. the profile in force: site, inheriting hyperv, on the Hyper-V platform ---------------
status=$(tunerctl status 2>&1)
status_rc=$?
info <<<"$status"
sjson=$(tunerctl --json status 2>&1)
check cloud_status_profile_site 'grep -qE "^profile   site \(.*; inherits hyperv < default\)$" <<<"$status" && [ "$(jq -r .daemon.profile <<<"$sjson")" = site ]' \
    "$(grep '^profile' <<<"$status"); daemon: $(jq -c '.daemon | {profile, chosen_by, platform}' <<<"$sjson" 2>&1)"
check cloud_status_exit_0 '[ $status_rc = 0 ]' "tunerctl status exit $status_rc"
want_evidence='DMI sys_vendor = "Microsoft Corporation"; DMI product_name = "Virtual Machine"'
check cloud_platform_hyperv 'grep -qxF "platform  hyperv ($want_evidence)" <<<"$status" && [ "$(jq -r .daemon.platform <<<"$sjson")" = hyperv ]' \
    "text: $(grep '^platform' <<<"$status"); json: $(jq -c '.inventory.platform' <<<"$sjson" 2>&1)"
# As the package started it (cloud-init's apt-get), tunerd chose hyperv by platform; then
# cloud-init's runcmd reloaded it onto site.
tlog=$(journalctl -b -u tunerd.service --no-pager -o cat 2>&1)
first_profile=$(grep -m1 -E '^profile [a-z0-9-]+ \(' <<<"$tlog")
reloaded=$(grep -n -m1 '^configuration reloaded: profile site' <<<"$tlog" | cut -d: -f1)
first_at=$(grep -n -m1 -E '^profile [a-z0-9-]+ \(' <<<"$tlog" | cut -d: -f1)
check cloud_journal_hyperv_first '[[ "$first_profile" == "profile hyperv (auto: platform hyperv): "* ]] && [ -n "$reloaded" ] && [ "$first_at" -lt "$reloaded" ]' \
    "first: ${first_profile:-none} (line ${first_at:-none}); reload to site at line ${reloaded:-never}"
starts=$(journalctl -b --no-pager -o cat _PID=1 UNIT=tunerd.service | grep -c '^Started tunerd.service')
check cloud_reload_not_restart '[ "$starts" = 1 ] && [ "$(prop NRestarts)" = 0 ]' \
    "systemd started tunerd.service $starts time(s) this boot; NRestarts=$(prop NRestarts)"
figure cloud_tunerd_journal "$(head -c 1500 <<<"$tlog")"

# --- 5. the values on the disks: the Msft disk from hyperv's rule, the vm knob from site -------
plan=$(tunerctl --json plan 2>&1)
pick() { jq -r --arg k "$1" '.changes[] | select(.object.type == "disk" and .object.name == "sda" and .knob == $k) | "\(.desired) \(.profile) \(.rule)"' <<<"$plan" 2>/dev/null; }
check cloud_plan_msft_timeout '[ "$(pick scsi_timeout)" = "180 hyperv hyperv-virtual-disk" ]' "sda scsi_timeout: $(pick scsi_timeout)"
check cloud_plan_msft_scheduler '[ "$(pick scheduler)" = "none hyperv hyperv-virtual-disk" ]' "sda scheduler: $(pick scheduler)"
expire=$(jq -r '.changes[] | select(.object.type == "vm" and .knob == "dirty_expire_centisecs") | "\(.desired) \(.profile)"' <<<"$plan" 2>/dev/null)
check cloud_plan_site_vm_knob '[ "$expire" = "1500 site" ]' "vm dirty_expire_centisecs: ${expire:-not in the plan}"
check cloud_sda_timeout_180 '[ "$(timeout_of sda)" = 180 ]' "sda device/timeout=$(timeout_of sda)"
check cloud_sda_scheduler_none 'grep -q "\[none\]" <<<"$(sched_of sda)"' "sda queue/scheduler=$(sched_of sda)"
check cloud_vm_dirty_expire_1500 '[ "$(cat /proc/sys/vm/dirty_expire_centisecs)" = 1500 ]' "vm.dirty_expire_centisecs=$(cat /proc/sys/vm/dirty_expire_centisecs)"
check cloud_vm_swappiness_30 '[ "$(cat /proc/sys/vm/swappiness)" = 30 ]' "vm.swappiness=$(cat /proc/sys/vm/swappiness) (default's, through hyperv)"
verify=$(tunerctl verify 2>&1)
rc=$?
check cloud_verify_clean '[ $rc = 0 ]' "exit $rc: $verify"

# --- 6. the webhook sink --------------------------------------------------------------------
# tunerctl status shows no alert sinks: the configuration tunerd accepted has the webhook (the
# reload took tunerd.toml, check-config passed above), the dispatcher runs (its spool), no
# delivery error was logged; section 7 then proves it with a delivery.
webhook_url=$(sed -n 's/^url = "\(.*\)"$/\1/p' /etc/tunerd/tunerd.toml)
check cloud_webhook_configured '[ "$webhook_url" = "http://127.0.0.1:9780/tunerd" ] && [ -d /run/tunerd/spool ] && ! grep -q "alerts not delivered" <<<"$tlog" && systemctl is-active -q tunerd-guest-receiver.service' \
    "url in tunerd.toml: ${webhook_url:-none}; /run/tunerd/spool $([ -d /run/tunerd/spool ] && echo present || echo absent); receiver $(systemctl is-active tunerd-guest-receiver.service); daemon keys: $(jq -c '.daemon | keys' <<<"$sjson" 2>&1)"

# --- 7. a SCSI disk fails: webhook and D-Bus signal, naming the device and the mount ----------
stdbuf -oL busctl --json=short monitor --system org.tunerd.Tuner1 >/run/tunerd-signals-cloud.txt 2>&1 &
monitor=$!
sleep 1
mkdir -p /mnt/failing
mkfs.ext4 -q -F /dev/sda && mount -o errors=remount-ro /dev/sda /mnt/failing
dd if=/dev/zero of=/mnt/failing/a bs=64k count=16 conv=fsync 2>/dev/null
before=$(grep -c . "$SINK" 2>/dev/null)
offline_ms=$(now_ms)
echo offline >/sys/block/sda/device/state
dd if=/dev/zero of=/mnt/failing/b bs=64k count=16 conv=fsync 2>/dev/null
sync
# The first firing notification about sda after the offline, as the receiver got it.
got_webhook() {
    tail -n +"$((${before:-0} + 1))" "$SINK" 2>/dev/null |
        jq -c 'select(.body | fromjson | .event == "firing" and .incident.disk == "sda" and (.incident.mounts | index("/mnt/failing")))' |
        head -1 | grep -q .
}
waited=$(wait_for 60 got_webhook)
entry=$(tail -n +"$((${before:-0} + 1))" "$SINK" 2>/dev/null | jq -c 'select(.body | fromjson | .event == "firing" and .incident.disk == "sda")' 2>/dev/null | head -1)
check cloud_webhook_incident '[ "$waited" != timeout ]' \
    "after ${waited} ms: $(jq -c '.body | fromjson | {event, id, kind: .incident.kind, disk: .incident.disk, device: .incident.device, mounts: .incident.mounts, summary: .incident.summary}' <<<"$entry" 2>&1); receiver has $(grep -c . "$SINK" 2>/dev/null) POSTs"
received=$(jq -r .received_ms <<<"$entry" 2>/dev/null)
[ -n "$received" ] && figure webhook_latency_ms "$((received - offline_ms)) (from echo offline to the receiver's POST of the firing notification)"
# Signed the Standard Webhooks way with the secret of tunerd.toml (docs/alerts.md's recipe).
secret=$(sed -n 's/^secret = "\(.*\)"$/\1/p' /etc/tunerd/tunerd.toml)
signed=$(ENTRY="$entry" SECRET="$secret" python3 - <<'PY' 2>&1
import base64, hashlib, hmac, json, os
e = json.loads(os.environ["ENTRY"])
s = os.environ["SECRET"]
h = e["headers"]
key = base64.b64decode(s[6:]) if s.startswith("whsec_") else s.encode()
msg = (h["webhook-id"] + "." + h["webhook-timestamp"] + ".").encode() + e["body"].encode()
want = "v1," + base64.b64encode(hmac.new(key, msg, hashlib.sha256).digest()).decode()
ok = any(hmac.compare_digest(want, x) for x in h["webhook-signature"].split())
print("valid" if ok else "INVALID", h.get("user-agent"), h["webhook-id"])
PY
)
check cloud_webhook_signed 'grep -q "^valid " <<<"$signed"' "signature: $signed"
sleep 1
kill $monitor 2>/dev/null
wait $monitor 2>/dev/null
signals=$(grep -c '"member":"Incident"' /run/tunerd-signals-cloud.txt)
# busctl's own lines ("Monitoring bus message stream.") are not JSON: skipped.
sig=$(jq -cR 'fromjson? | select(.member == "Incident") | .payload.data' /run/tunerd-signals-cloud.txt 2>/dev/null |
    jq -c 'select(.[1] == "firing") | {id: .[0], event: .[1], severity: .[2], summary: .[3], disk: (.[4] | fromjson | .incident.disk), device: (.[4] | fromjson | .incident.device), mounts: (.[4] | fromjson | .incident.mounts)}' 2>/dev/null |
    jq -c 'select(.disk == "sda" and (.mounts | index("/mnt/failing")))' 2>/dev/null | head -1)
check cloud_dbus_incident_signal '[ -n "$sig" ] && grep -q "sda" <<<"$(jq -r .summary <<<"$sig")" && grep -q "/mnt/failing" <<<"$(jq -r .summary <<<"$sig")"' \
    "${sig:-no Incident signal naming sda and /mnt/failing; $signals Incident signals in all}"
dmesg | grep -E 'sda|EXT4-fs' | tail -6 | info
umount -l /mnt/failing

echo "INFO ---- journalctl -u tunerd (last 40) ----"
journalctl -b -u tunerd.service --no-pager -o short-monotonic | tail -40 | info
if [ "$failed" -gt 0 ]; then
    echo "INFO ---- cloud-init.log (WARNING and up) ----"
    grep -E ' (WARNING|ERROR|CRITICAL)' /var/log/cloud-init.log | tail -30 | info
    echo "INFO ---- cloud-init-output.log (last 40) ----"
    tail -40 /var/log/cloud-init-output.log | info
fi
finish
