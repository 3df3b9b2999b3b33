#!/bin/bash
# Runs inside the test guest of tests/it/guest.rs on its first boot (kernel command line
# tunerd.guest=install; installed as /usr/local/sbin/tunerd-guest-install, started by
# tunerd-guest-install.service after multi-user.target): installs the freshly built package
# as a user would, with apt, and checks what the install did; then edits the configuration as
# an administrator would and powers off. The host boots the machine again for check.sh.
# Line protocol and helpers: lib.sh.
# shellcheck disable=SC2034
# shellcheck source=lib.sh
. /usr/local/lib/tunerd-guest/lib.sh

figure install_start_uptime_s "$(cut -d' ' -f1 /proc/uptime)"
version=$(dpkg-deb -f "$DEB" Version)
figure deb "$(dpkg-deb -f "$DEB" Package Version Architecture Depends Recommends | tr '\n' ' ')($(stat -c %s "$DEB") bytes)"
check install_not_there_before '[ -z "$(pkg_state)" ] && [ ! -e /usr/bin/tunerd ] && [ ! -e /etc/tunerd ]' \
    "before: dpkg state '$(pkg_state)', /usr/bin/tunerd $([ -e /usr/bin/tunerd ] && echo present || echo absent)"

t0=$(now_ms)
apt_get install "$DEB"
rc=$?
figure install_ms "$(($(now_ms) - t0)) (apt-get install of the .deb, under TCG)"
check install_apt_exit_0 '[ $rc = 0 ]' "apt-get install $DEB: exit $rc"
check install_installed '[ "$(pkg_state)" = "ii $version" ]' "dpkg-query: '$(pkg_state)' (want 'ii $version')"

# The package started the service (postinst) and enabled it: nobody ran systemctl here.
active=$(systemctl is-active tunerd.service)
check install_started '[ "$active" = active ]' "right after apt-get: is-active=$active sub=$(prop SubState) since $(prop ActiveEnterTimestamp)"
waited="not started"
[ "$active" = active ] && waited=$(wait_for 60 daemon_on_bus)
check install_on_bus '[[ "$waited" =~ ^[0-9]+$ ]]' "tunerctl status said 'daemon running' after ${waited} ms"
enabled=$(systemctl is-enabled tunerd.service 2>&1)
check install_enabled '[ "$enabled" = enabled ] && [ -L /etc/systemd/system/sysinit.target.wants/tunerd.service ]' \
    "is-enabled=$enabled; sysinit.target.wants/tunerd.service -> $(readlink /etc/systemd/system/sysinit.target.wants/tunerd.service || echo none)"
files=$(dpkg -S /usr/bin/tunerd /usr/bin/tunerctl /usr/lib/systemd/system/tunerd.service /usr/share/dbus-1/system.d/org.tunerd.Tuner1.conf 2>&1)
check install_files_owned '[ "$(grep -c "^tunerd: " <<<"$files")" = 4 ]' "$files"
check install_unit_path '[ "$(readlink -f "$(prop FragmentPath)")" = /usr/lib/systemd/system/tunerd.service ]' \
    "FragmentPath=$(prop FragmentPath) ExecStart=$(prop ExecStart | grep -o 'path=[^ ;]*')"

# /etc/tunerd/tunerd.toml: a conffile, root's alone (it may hold webhook secrets).
conffiles=$(dpkg-query -W -f='${Conffiles}' tunerd 2>&1)
mode=$(stat -c '%a %U:%G' /etc/tunerd/tunerd.toml 2>&1)
check install_conffile 'grep -q "^ /etc/tunerd/tunerd.toml [0-9a-f]\{32\}$" <<<"$conffiles"' "Conffiles:$conffiles"
check install_conffile_0600 '[ "$mode" = "600 root:root" ]' "/etc/tunerd/tunerd.toml: $mode"
cc=$(tunerctl check-config 2>&1)
rc=$?
check install_config_valid '[ $rc = 0 ]' "tunerctl check-config (packaged file): exit $rc: $cc"

# The administrator's change: drift is looked for every 2 s, so that check.sh's drift check
# is quick. Edited in place, as a person would: the conffile is then a changed one, which an
# upgrade must keep and a purge must remove.
sed -i 's/^# drift_interval_secs = 30$/drift_interval_secs = 2/' /etc/tunerd/tunerd.toml
cc=$(tunerctl check-config 2>&1)
rc=$?
check install_admin_edit 'grep -qx "drift_interval_secs = 2" /etc/tunerd/tunerd.toml && [ $rc = 0 ] && [ "$(stat -c %a /etc/tunerd/tunerd.toml)" = 600 ]' \
    "$(grep -n '^drift_interval_secs' /etc/tunerd/tunerd.toml || echo 'no drift_interval_secs line'); check-config exit $rc: $cc"
echo "INFO ---- journalctl -u tunerd ----"
journalctl -b -u tunerd.service --no-pager -o short-monotonic | tail -30 | info
finish
