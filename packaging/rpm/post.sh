# %post: the configuration holds webhook secrets; then enable per the preset and start on a
# first install, as %systemd_post does (a running system only).
chown root:root /etc/tunerd/tunerd.toml 2>/dev/null || :
chmod 0600 /etc/tunerd/tunerd.toml 2>/dev/null || :
if [ "$1" -eq 1 ]; then
	systemctl --no-reload preset tunerd.service >/dev/null 2>&1 || :
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload >/dev/null 2>&1 || :
		systemctl start tunerd.service >/dev/null 2>&1 || :
	fi
fi
