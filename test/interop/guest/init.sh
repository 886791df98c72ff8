#!/bin/sh
# PID 1 of the interop guest (busybox ash). Loads the modules listed in /modules/order, brings eth0
# up with the address from the kernel command line (smcip=, default 192.0.2.1), creates rxe0 on it,
# then serves the harness's control channel on the second serial port (/dev/ttyS1):
#   host -> guest   "<id> <shell command>\n"
#   guest -> host   the command's output, then "\n@@END <id> <exit status>\n"
# The console (ttyS0) only carries the kernel log and what this script reports as "INIT: ...".
# UEID and pnet entries are set per test through the channel (smc_nl), not here.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp

ip=192.0.2.1
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	smcip=*) ip=${arg#smcip=} ;;
	esac
done

for m in $(cat /modules/order); do
	insmod "/modules/$m.ko" || echo "INIT: insmod $m failed"
done

# No IPv6: no MLD / router solicitations in the captures.
echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6
echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6
ip link set lo up
ip link set eth0 up
ip addr add "$ip/24" dev eth0
smc_nl rxe-add rxe0 eth0 > /tmp/rxe.log 2>&1 || echo "INIT: $(cat /tmp/rxe.log)"
hostname smcri-guest

stty -F /dev/ttyS1 raw -echo 2>/dev/null
exec 3<>/dev/ttyS1
echo "INIT: ready ip=$ip"
printf '\n@@READY\n' >&3
while IFS= read -r line <&3; do
	id=${line%% *}
	cmd=${line#* }
	sh -c "$cmd" > /tmp/ctl.out 2>&1 < /dev/null
	rc=$?
	cat /tmp/ctl.out >&3
	printf '\n@@END %s %s\n' "$id" "$rc" >&3
done
echo "INIT: control channel closed"
poweroff -f
