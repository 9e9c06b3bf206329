# net.sh - scenario "net": fetch a file over slirp with busybox wget.
#
# Appended to common.sh to form /init of build/images/net.cpio.
# NIC: either of
#   -netdev user,id=n0 -device virtio-net-pci,netdev=n0     (recommended)
#   -netdev user,id=n0 -device e1000,netdev=n0
# (under record/replay add -object filter-replay,id=fr0,netdev=n0); the
# image carries both drivers (loading the unused one costs ~nothing).
# virtio-net is much faster: QEMU's e1000 holds back every received packet
# for 1 s (virtual) after the driver writes RCTL, which it does when eth0 is
# brought up (hw/net/e1000.c flush_queue_timer), so each e1000 run waits
# ~1 s for slirp's first packet, and e1000 probing (EEPROM bit-banging,
# udelay loops) is slow under icount.  Measured, whole run, plain /
# record / replay: virtio-net 1.5 / 3.7 / 5.0 s, e1000 2.8 / 9 / 20 s.
#
# The guest configures eth0 statically (10.0.2.15/24, gateway 10.0.2.2,
# slirp's defaults), then does what the kernel command line asks (at
# least one of):
#   rewind.port=PORT   download http://10.0.2.2:PORT/payload and print
#                          NET-MD5 <md5 of the payload>
#                      Host side, e.g.: python3 -m http.server --bind
#                      127.0.0.1 PORT (slirp forwards 10.0.2.2 to the
#                      host's 127.0.0.1).
#   rewind.serve=GPORT accept one TCP connection on GPORT (host side:
#                      -netdev user,id=n0,hostfwd=tcp:127.0.0.1:HPORT-:GPORT,
#                      then connect to 127.0.0.1:HPORT).  The guest prints
#                      NET-LISTENING when it accepts connections; the peer
#                      sends "<N>\n" and N bytes; the guest answers
#                      "<md5 of the N bytes>\n" on the connection and prints
#                          NET-IN-MD5 <md5 of the N bytes>
# then REWIND-DONE.
#
# Speed tweaks (each measured):
#  - e1000 Speed=100 Duplex=2: forced link, no autonegotiation.  QEMU's
#    e1000 keeps the link down for 500 ms after an autoneg restart and the
#    driver only notices it at its next 2 s watchdog run; forced, the link
#    is up as soon as eth0 is.  (QEMU still reports 1000 Mbps.)
#  - IPv6 off before the link comes up: at link-up IPv6 joins multicast
#    groups, the e1000 driver rewrites RCTL, and QEMU freezes reception for
#    another second (see above).
# rewind-modules: e1000 virtio_pci virtio_net
# rewind-module-args: e1000 Speed=100 Duplex=2

port=$(rewind_arg port) || port=''
serve=$(rewind_arg serve) || serve=''
[ -n "$port$serve" ] || rewind_fail "neither rewind.port= nor rewind.serve= on the kernel command line"

for f in /proc/sys/net/ipv6/conf/*/disable_ipv6; do
    [ -e "$f" ] && echo 1 >"$f"
done
[ -e /sys/class/net/eth0 ] || rewind_fail "no eth0 (NIC must be e1000 or virtio-net-pci)"
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
# Packets sent before the tx queues are activated are dropped (a lost TCP
# SYN costs a 1 s retransmit).  virtio-net has carrier when eth0 goes up,
# so they are activated right away; e1000 gets carrier a moment later and
# linkwatch activates them then (operstate "up" marks it; with virtio-net
# operstate lags up to 1 s behind, so it is not waited for there).
link_up() {
    [ "$(cat /sys/class/net/eth0/carrier 2>/dev/null)" = 1 ] || return 1
    case $(readlink /sys/class/net/eth0/device/driver) in
        */e1000) [ "$(cat /sys/class/net/eth0/operstate)" = up ] ;;
    esac
}
rewind_wait_for link_up || rewind_fail "eth0: link did not come up"

if [ -n "$port" ]; then
    wget -q -O /tmp/payload "http://10.0.2.2:$port/payload" || rewind_fail "wget failed"
    md5=$(md5sum </tmp/payload)
    echo "NET-MD5 ${md5%% *}"
fi

if [ -n "$serve" ]; then
    # nc runs this for the connection, stdin and stdout being the socket
    # (ash's read takes one byte at a time: it leaves the data to head)
    cat >/tmp/serve-one <<'EOF'
#!/bin/sh
read -r n
head -c "$n" >/tmp/received
md5=$(md5sum </tmp/received)
echo "${md5%% *}"
EOF
    chmod 755 /tmp/serve-one
    nc -l -p "$serve" -e /tmp/serve-one &
    listening() { netstat -ltn | grep ":$serve " >/dev/null; }
    rewind_wait_for listening || rewind_fail "nc does not listen on $serve"
    echo "NET-LISTENING"
    wait $! || rewind_fail "nc failed"
    md5=$(md5sum </tmp/received)
    echo "NET-IN-MD5 ${md5%% *}"
fi

rewind_done
