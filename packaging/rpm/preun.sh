# %preun: on erase (not upgrade), stop and disable, as %systemd_preun does.
if [ "$1" -eq 0 ]; then
	systemctl --no-reload disable --now tunerd.service >/dev/null 2>&1 || :
fi
