# net.sh - scenario "net": fetch a file over slirp with busybox wget.
#
# Appended to common.sh to form /init of build/images/net.cpio*.
# NIC: e1000 (one module, no dependencies; virtio-net would need five), so
#   -netdev user,id=n0 -device e1000,netdev=n0
# (under record/replay add -object filter-replay,id=fr0,netdev=n0).
# Kernel command line must contain rewind.port=PORT; the guest configures
# eth0 statically (10.0.2.15/24, gateway 10.0.2.2, slirp's defaults),
# downloads http://10.0.2.2:PORT/payload and prints
#     NET-MD5 <md5 of the payload>
# then REWIND-DONE.  Host side, e.g.: python3 -m http.server --bind 127.0.0.1 PORT
# (slirp forwards 10.0.2.2 to the host's 127.0.0.1).
#
# Speed tweaks (each measured, each worth ~1-2 s of guest time):
#  - e1000 Speed=100 Duplex=2: forced link, no autonegotiation.  QEMU's
#    e1000 keeps the link down for 500 ms after an autoneg restart and the
#    driver then only notices it at its next 2 s watchdog run; forced, the
#    link is up as soon as eth0 is.  (QEMU still reports 1000 Mbps.)
#  - IPv6 off before the link comes up: IPv6 joins multicast groups at
#    link-up, the driver rewrites RCTL, and QEMU's e1000 then holds back all
#    received packets for 1 s (flush_queue_timer) - e.g. slirp's ARP
#    request, stalling the TCP handshake.
# rewind-modules: e1000
# rewind-module-args: e1000 Speed=100 Duplex=2

port=$(rewind_arg port) || rewind_fail "no rewind.port= on the kernel command line"

for f in /proc/sys/net/ipv6/conf/*/disable_ipv6; do
    [ -e "$f" ] && echo 1 >"$f"
done
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
# operstate turns "up" only once linkwatch has also attached the qdisc;
# packets sent between carrier-on and that point are dropped (and a lost
# TCP SYN costs a 1 s retransmit), so wait for operstate, not carrier.
link_up() { [ "$(cat /sys/class/net/eth0/operstate 2>/dev/null)" = up ]; }
rewind_wait_for link_up || rewind_fail "eth0: link did not come up"

wget -q -O /tmp/payload "http://10.0.2.2:$port/payload" || rewind_fail "wget failed"
md5=$(md5sum </tmp/payload)
echo "NET-MD5 ${md5%% *}"

rewind_done
