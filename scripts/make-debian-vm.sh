#!/bin/bash
# make-debian-vm.sh - build the real-VM test guest: a Debian 12 system with
# systemd on an ext4 disk, from Debian packages only (debootstrap from the
# mirror apt uses).  Unlike the initramfs guests of make-guest-images.sh it
# boots from its disk with its own kernel and initramfs, so the tests see
# what a driver developer's VM does: systemd, udev, journald, a real root
# file system, DHCP.
#
# Usage: scripts/make-debian-vm.sh [OUTDIR]     (default: build/images/debian-vm)
# Run as root (debootstrap needs it).  ~10-15 minutes on 2 cores, cached:
# when .stamp matches (this script and the suite) nothing is done.
#
# Outputs in OUTDIR:
#   disk.qcow2       the root file system (ext4, label rewind-root, 2 GiB
#                    virtual, ~350 MB of data)
#   vmlinuz, initrd.img, kernel-version   the image's own kernel/initramfs
#   System.map       empty placeholder unless the kernel package ships one
#   cmdline          the kernel command line (root=LABEL=rewind-root, so the
#                    same image boots from virtio-blk, AHCI or virtio-scsi)
#
# The guest runs rewind-workload.service (a oneshot unit after
# multi-user.target's basics) which prints "rewind-vm: ..." lines to ttyS0
# and powers off.  Kernel parameters choose what it does:
#   rewind.http=PORT    download http://10.0.2.2:PORT/payload (slirp's host
#                       address) and print its md5
#   rewind.listen=PORT  accept one TCP connection on PORT (through hostfwd;
#                       "rewind-vm: listening PORT" says when) and print the
#                       md5 of what it received
#   rewind.write=MIB    write MIB MiB of random data with fsync (default 16)
#   rewind.gzip=N       run N gzip processes at once (default 4)
#   rewind.hold=S       sleep S seconds before powering off (default 0)
# It first prints "rewind-vm: up ..." and "rewind-vm: sym NAME 0xADDR" for
# ksys_sync, jiffies_64 and schedule (from /proc/kallsyms; nokaslr keeps
# them fixed).  The last line is "rewind-vm: done", then systemd powers the
# machine off.
#
# QEMU command line (I=build/images/debian-vm):
#   qemu-system-x86_64 -M pc|q35 -m 1G -nodefaults -display none
#     -kernel $I/vmlinuz -initrd $I/initrd.img -append "$(cat $I/cmdline)"
#     -drive file=$I/disk.qcow2,if=virtio,snapshot=on  (or ahci + ide-hd)
#     -netdev user,id=n0 -device virtio-net-pci,netdev=n0  (or e1000e)
#     -serial file:serial.log -no-reboot
set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SELF=$TOP/scripts/make-debian-vm.sh
OUT=${1:-$TOP/build/images/debian-vm}
SUITE=bookworm
INCLUDE=systemd-sysv,udev,kmod,linux-image-amd64,initramfs-tools,procps,iproute2,isc-dhcp-client,wget,busybox,usbutils,pciutils
CMDLINE="root=LABEL=rewind-root rw console=ttyS0 quiet nokaslr panic=-1 tsc=reliable nowatchdog net.ifnames=0"

log() { printf 'make-debian-vm: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

stamp=$(sha256sum "$SELF" | cut -d' ' -f1)-$SUITE
if [ -f "$OUT/.stamp" ] && [ "$(cat "$OUT/.stamp")" = "$stamp" ] &&
   [ -f "$OUT/disk.qcow2" ] && [ -f "$OUT/vmlinuz" ] && [ -f "$OUT/initrd.img" ]; then
    exit 0
fi
[ "$(id -u)" = 0 ] || die "debootstrap needs root (or build $OUT once as root)"
for tool in debootstrap mke2fs; do
    command -v "$tool" >/dev/null || die "$tool not found (scripts/install-deps.sh test installs it)"
done

# The mirror apt uses for the base suite, so that no other host is named.
mirror=$(apt-get indextargets --format '$(REPO_URI)' \
             'Identifier: Packages' "Codename: $SUITE" 2>/dev/null | head -n1)
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian/

work=$OUT.work
rm -rf "$work"
mkdir -p "$work" "$OUT"
root=$work/rootfs
trap 'rm -rf "$work"' EXIT
log "debootstrap $SUITE from $mirror into $root (~10 min)"
t0=$(date +%s)
debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$root" "$mirror" \
    >"$work/debootstrap.log" 2>&1 || { tail -n 30 "$work/debootstrap.log" >&2; die "debootstrap failed"; }
log "debootstrap done in $(( $(date +%s) - t0 )) s"

# ---- configure the system ----
echo rewind-vm >"$root/etc/hostname"
echo 'LABEL=rewind-root / ext4 rw,relatime 0 1' >"$root/etc/fstab"
chroot "$root" passwd -d root >/dev/null
# getty on ttyS0 would take the console from the workload's output.
ln -sf /dev/null "$root/etc/systemd/system/serial-getty@ttyS0.service"
# Nothing that waits for the network or the clock of the outside world.
for unit in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \
            fstrim.timer systemd-timesyncd.service; do
    ln -sf /dev/null "$root/etc/systemd/system/$unit"
done

cat >"$root/usr/local/sbin/rewind-workload" <<'EOF'
#!/bin/sh
# The real-VM test workload (scripts/make-debian-vm.sh says what the
# rewind.* kernel parameters do).  Output goes to ttyS0.
param() {
    for w in $(cat /proc/cmdline); do
        case $w in "rewind.$1="*) echo "${w#*=}"; return ;; esac
    done
    echo "$2"
}
say() { echo "rewind-vm: $*"; }
http=$(param http '')
listen=$(param listen '')
write=$(param write 16)
ngzip=$(param gzip 4)
hold=$(param hold 0)
say "up $(uname -r) $(cut -d' ' -f1 /proc/uptime)s units=$(systemctl list-units --state=active --no-legend | wc -l)"
# Where some kernel symbols are (nokaslr), for breakpoints and watchpoints
# in tests: the image's kernel has no System.map of its own.
for sym in ksys_sync jiffies_64 schedule; do
    say "sym $sym 0x$(awk -v s="$sym" '$3 == s {print $1; exit}' /proc/kallsyms)"
done
iface=$(ls /sys/class/net | grep -v '^lo$' | head -n1)
if [ -n "$http$listen" ] && [ -n "$iface" ]; then
    ip link set "$iface" up
    dhclient -1 "$iface" 2>/dev/null && say "net $iface $(ip -4 -o addr show "$iface" | awk '{print $4}')"
fi
if [ -n "$listen" ]; then
    busybox nc -l -p "$listen" >/var/tmp/incoming &
    lpid=$!
    sleep 1
    say "listening $listen"
fi
if [ -n "$http" ]; then
    wget -q -O /var/tmp/payload "http://10.0.2.2:$http/payload" &&
        say "http md5 $(md5sum </var/tmp/payload | cut -d' ' -f1)"
fi
if [ "$write" -gt 0 ]; then
    dd if=/dev/urandom of=/var/tmp/blob bs=1M count="$write" conv=fsync 2>/dev/null
    sync
    say "write ${write}MiB md5 $(md5sum </var/tmp/blob | cut -d' ' -f1)"
fi
i=0
while [ "$i" -lt "$ngzip" ]; do
    (gzip -c /var/tmp/blob 2>/dev/null | md5sum >/var/tmp/gz$i) &
    i=$((i + 1))
done
[ -n "$listen" ] && wait "$lpid" && say "listen md5 $(md5sum </var/tmp/incoming | cut -d' ' -f1)"
wait
[ "$ngzip" -gt 0 ] && say "gzip $ngzip $(cat /var/tmp/gz* | sort -u | wc -l)"
sleep "$hold"
say "done"
EOF
chmod 755 "$root/usr/local/sbin/rewind-workload"
cat >"$root/etc/systemd/system/rewind-workload.service" <<'EOF'
[Unit]
Description=QEMU Rewind test workload
After=multi-user.target
[Service]
Type=oneshot
ExecStart=/usr/local/sbin/rewind-workload
ExecStartPost=/bin/systemctl --no-block poweroff
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyS0
[Install]
WantedBy=multi-user.target
EOF
ln -sf /etc/systemd/system/rewind-workload.service \
    "$root/etc/systemd/system/multi-user.target.wants/rewind-workload.service"

kver=$(ls "$root/lib/modules" | sort -V | tail -n1)
cp "$root/boot/vmlinuz-$kver" "$OUT/vmlinuz.new"
cp "$root/boot/initrd.img-$kver" "$OUT/initrd.img.new"
if [ -s "$root/boot/System.map-$kver" ]; then cp "$root/boot/System.map-$kver" "$OUT/System.map"; else : >"$OUT/System.map"; fi
echo "$kver" >"$OUT/kernel-version"
echo "$CMDLINE" >"$OUT/cmdline"

# What a test VM does not need: package caches, docs, locales.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
       "$root"/usr/share/doc "$root"/usr/share/man "$root"/usr/share/locale \
       "$root"/boot/*
log "making the ext4 image"
qemu_img=$TOP/build/qemu/qemu-img
[ -x "$qemu_img" ] || qemu_img=$(command -v qemu-img || true)
[ -n "$qemu_img" ] || die "qemu-img not found (make builds it)"

mke2fs -q -t ext4 -L rewind-root -E root_owner=0:0 -d "$root" "$work/disk.raw" 2G
"$qemu_img" convert -O qcow2 "$work/disk.raw" "$OUT/disk.qcow2.new"
mv "$OUT/disk.qcow2.new" "$OUT/disk.qcow2"
mv "$OUT/vmlinuz.new" "$OUT/vmlinuz"
mv "$OUT/initrd.img.new" "$OUT/initrd.img"
echo "$stamp" >"$OUT/.stamp"
log "done: $OUT ($(du -sh "$OUT/disk.qcow2" | cut -f1) disk, kernel $kver)"
