# %postun: on upgrade, restart the running service once, as %systemd_postun_with_restart
# does; on erase, drop the runtime state.
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
fi
if [ "$1" -ge 1 ]; then
	systemctl try-restart tunerd.service >/dev/null 2>&1 || :
else
	rm -rf /run/tunerd
fi
