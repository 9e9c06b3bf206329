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
# rewind-modules: e1000

port=$(rewind_arg port) || rewind_fail "no rewind.port= on the kernel command line"

ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
carrier_up() { [ "$(cat /sys/class/net/eth0/carrier 2>/dev/null)" = 1 ]; }
rewind_wait_for carrier_up || rewind_fail "eth0: no carrier"

wget -q -O /tmp/payload "http://10.0.2.2:$port/payload" || rewind_fail "wget failed"
md5=$(md5sum </tmp/payload)
echo "NET-MD5 ${md5%% *}"

rewind_done
