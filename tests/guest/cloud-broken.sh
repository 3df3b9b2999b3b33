#!/bin/bash
# Runs inside the test guest of tests/it/guest.rs on its fourth boot (kernel command line
# tunerd.guest=cloud-broken; installed as /usr/local/sbin/tunerd-guest-cloud-broken, started
# by tunerd-guest-cloud-broken.service after cloud-final.service): the machine the cloud boot
# provisioned reboots with a new NoCloud seed (a new instance-id, tests/guest/user-data-broken.yaml)
# whose write_files puts a tunerd.toml with an unknown key in place and whose runcmd reloads
# tunerd. /run is a tmpfs: tunerd started at this boot on the cloud boot's good configuration
# (and kept it as the accepted one in /run/tunerd/accepted.json), so the reload is refused and
# that configuration, now the previous one, stays in force; a restart runs on it again; with
# no accepted one (as after a reboot) on the built-in one. The webhook of the previous configuration still delivers.
# Line protocol and helpers: lib.sh.
# shellcheck disable=SC2034
# shellcheck source=lib.sh
. /usr/local/lib/tunerd-guest/lib.sh

SINK=/var/lib/tunerd-guest/webhook.jsonl
CONF=/etc/tunerd/tunerd.toml
figure cloud_broken_start_uptime_s "$(cut -d' ' -f1 /proc/uptime)"
for u in cloud-init-local cloud-init cloud-config cloud-final; do
    figure "${u//-/_}_done_since_boot_ms" "$(($(prop ActiveEnterTimestampMonotonic "$u.service") / 1000)) (from $(($(prop InactiveExitTimestampMonotonic "$u.service") / 1000)))"
done
# `tunerctl status`'s config line, its exit status, and the JSON's config object.
config_state() {
    status=$(tunerctl status 2>&1)
    status_rc=$?
    config_line=$(grep '^config    ' <<<"$status")
    sjson=$(tunerctl --json status 2>&1)
    in_force=$(jq -r '.daemon.config.in_force' <<<"$sjson" 2>/dev/null)
    refused=$(jq -r '.daemon.config.refused // empty' <<<"$sjson" 2>/dev/null)
}
# refused_as WHAT IN_FORCE: the text names the file and line of the error, then "; running on
# the WHAT configuration"; the JSON says IN_FORCE and the same error; status exits 4.
refused_as() {
    [[ "$config_line" == "config    refused: $CONF:$bad_line:"* ]] && [[ "$config_line" == *"; running on the $1 configuration"* ]] &&
        [ "$status_rc" = 4 ] && [ "$in_force" = "$2" ] && [[ "$refused" == "$CONF:$bad_line:"* ]]
}
describe() { echo "status exit $status_rc; text: ${config_line:-no config line}; json: in_force=${in_force:-none} refused=${refused:-null}; $(grep '^profile' <<<"$status")"; }

# --- 1. cloud-init ran the new instance and put the broken file in place ---------------------
ci_status=$(cloud-init status --long 2>&1)
ci_rc=$?
info <<<"$ci_status"
figure cloud_init_status "exit $ci_rc: $(grep -E '^(status|detail|errors?):' <<<"$ci_status" | tr '\n' ' ')"
figure cloud_init_result "$(jq -c . /run/cloud-init/result.json 2>&1)"
bad_line=$(grep -n '^drift_intervall_secs' "$CONF" 2>/dev/null | cut -d: -f1)
check broken_cloud_init_new_instance '[ "$(cat /var/lib/cloud/data/instance-id 2>/dev/null)" = tunerd-guest-cloud-2 ] && [ -n "$bad_line" ] && [ "$(stat -c %a "$CONF")" = 600 ]' \
    "instance-id $(cat /var/lib/cloud/data/instance-id 2>&1); $CONF line ${bad_line:-none} has the typo; mode $(stat -c %a "$CONF" 2>&1)"
cc=$(tunerctl check-config 2>&1)
rc=$?
check broken_check_config_refuses '[ $rc = 4 ] && grep -q "$CONF:$bad_line:" <<<"$cc"' "tunerctl check-config: exit $rc: $cc"

# --- 2. the reload cloud-init ran was refused: tunerd runs on, on the configuration it had ---
active=$(systemctl is-active tunerd.service)
starts=$(journalctl -b --no-pager -o cat _PID=1 UNIT=tunerd.service | grep -c '^Started tunerd.service')
check broken_reload_stays_active '[ "$active" = active ] && [ "$starts" = 1 ] && [ "$(prop NRestarts)" = 0 ]' \
    "is-active=$active; started $starts time(s) this boot; NRestarts=$(prop NRestarts)"
waited=$(wait_for 60 daemon_on_bus)
refused_log=$(journalctl -b -u tunerd.service -p err --no-pager -o cat | grep -m1 '^configuration refused: ')
check broken_journal_refused_err '[ -n "$refused_log" ] && grep -qF "$CONF:$bad_line:" <<<"$refused_log"' \
    "${refused_log:-no priority-err line starting with configuration refused in the journal of tunerd.service}"
config_state
info <<<"$status"
check broken_reload_refused_status 'refused_as previous previous' "$(describe)"
check broken_reload_keeps_site 'grep -q "^profile   site " <<<"$status" && [ "$(cat /proc/sys/vm/dirty_expire_centisecs)" = 1500 ]' \
    "$(grep '^profile' <<<"$status"); vm.dirty_expire_centisecs=$(cat /proc/sys/vm/dirty_expire_centisecs)"
accepted_mode=$(stat -c '%a %U:%G' /run/tunerd/accepted.json 2>&1)
check broken_accepted_json_0600 '[ "$accepted_mode" = "600 root:root" ]' "/run/tunerd/accepted.json: $accepted_mode"

# --- 3. a restart with the broken file: the previous configuration --------------------------
pid=$(prop MainPID)
systemctl restart tunerd.service
rc=$?
waited=$(wait_for 60 daemon_on_bus)
config_state
info <<<"$status"
check broken_restart_active '[ $rc = 0 ] && [ "$(systemctl is-active tunerd.service)" = active ] && [ "$(prop MainPID)" != "$pid" ] && [ "$waited" != timeout ]' \
    "systemctl restart rc=$rc; is-active=$(systemctl is-active tunerd.service); pid $pid -> $(prop MainPID); on the bus after ${waited} ms"
check broken_restart_previous 'refused_as previous previous' "$(describe)"
check broken_restart_keeps_site 'grep -q "^profile   site " <<<"$status" && [ "$(cat /proc/sys/vm/dirty_expire_centisecs)" = 1500 ] && [ "$(timeout_of sda)" = 180 ]' \
    "$(grep '^profile' <<<"$status"); vm.dirty_expire_centisecs=$(cat /proc/sys/vm/dirty_expire_centisecs); sda timeout $(timeout_of sda)"
# The previous configuration's webhook delivers: a storage daemon's line becomes an incident.
before=$(grep -c . "$SINK" 2>/dev/null)
logger -t multipathd "mpathz: remaining active paths: 0"
got_webhook() {
    tail -n +"$((${before:-0} + 1))" "$SINK" 2>/dev/null |
        jq -c 'select(.body | fromjson | .event == "firing" and .incident.kind == "multipath_no_paths")' | head -1 | grep -q .
}
waited=$(wait_for 30 got_webhook)
check broken_previous_webhook_delivers '[ "$waited" != timeout ]' \
    "after ${waited} ms: $(tail -n +"$((${before:-0} + 1))" "$SINK" 2>/dev/null | jq -c '.body | fromjson | {event, kind: .incident.kind, device: .incident.device, summary: .incident.summary}' 2>&1 | head -3 | tr '\n' ' ')"

# --- 4. no accepted configuration (as after a reboot): the built-in one ----------------------
rm -f /run/tunerd/accepted.json
systemctl restart tunerd.service
rc=$?
waited=$(wait_for 60 daemon_on_bus)
config_state
info <<<"$status"
check broken_restart_builtin '[ $rc = 0 ] && [ "$(systemctl is-active tunerd.service)" = active ] && refused_as built-in built-in && grep -q "^profile   hyperv (auto: platform hyperv" <<<"$status"' \
    "restart rc=$rc is-active=$(systemctl is-active tunerd.service); $(describe)"

# --- 5. the file mended: a reload takes it, the refusal is gone ----------------------------
python3 - <<'PY' 2>&1 | info
import yaml
with open("/var/lib/cloud/instances/tunerd-guest-cloud-1/user-data.txt") as f:
    cfg = yaml.safe_load(f)
good = [w for w in cfg["write_files"] if w["path"] == "/etc/tunerd/tunerd.toml"][0]
with open("/etc/tunerd/tunerd.toml", "w") as f:
    f.write(good["content"])
print("restored /etc/tunerd/tunerd.toml from the cloud boot's user-data")
PY
systemctl reload tunerd.service
rc=$?
ok_again() { [ "$(tunerctl --json status 2>/dev/null | jq -r '.daemon.config.in_force')" = files ]; }
waited=$(wait_for 30 ok_again)
config_state
check broken_mended_reload '[ $rc = 0 ] && [ "$status_rc" = 0 ] && [ "$in_force" = files ] && [ -z "$refused" ] && ! grep -q "refused" <<<"$config_line" && grep -q "^profile   site " <<<"$status"' \
    "reload rc=$rc after ${waited} ms; $(describe)"

echo "INFO ---- journalctl -u tunerd (last 40) ----"
journalctl -b -u tunerd.service --no-pager -o short-monotonic | tail -40 | info
finish
