# usb-storage.sh - scenario "usb-storage": read files from USB flash drives.
#
# Appended to common.sh to form /init of build/images/usb-storage.cpio.
# QEMU needs an xHCI controller and the storage devices of tests/usbdev
# passed through (QEMU started by
# rewind-usbdev --device storage:image=IMG,serial=S ...):
#   -device qemu-xhci -device usb-host,hostbus=1,hostaddr=2 [...,hostaddr=3]
# Each image holds an ext2 file system (e.g. mke2fs -t ext2 -d DIR) with a
# file /rewind-data in its root.
# Protocol:
#   rewind.disks=N (kernel command line, default 1): the guest waits (up
#   to ~10 s each) for N USB disks /dev/sda, /dev/sdb, ..., mounts each
#   read-only and prints, in the order of the drives' USB serial numbers,
#       USB-MD5 <serial> <md5 of /rewind-data>
#   rewind.unplug=1: then prints "USB-WAIT-UNPLUG" and keeps reading the
#   disks (every 0.1 s, up to ~60 s) until every disk is gone (the host
#   unplugs them: SIGUSR1 to rewind-usbdev), then prints "USB-UNPLUGGED".
#   rewind.uptime=1 (for the benchmarks): last, prints "USB-UPTIME <s>",
#   the guest's /proc/uptime: under -icount its clocks run on QEMU's
#   virtual clock, so this is the guest time the run took (minus the
#   firmware's few ms before the kernel). It varies from run to run (a
#   replay prints what its recording printed).
#   Then REWIND-DONE.
# rewind-modules: xhci_pci usb_storage sd_mod crc32c_generic ext4
# rewind-module-args: usb_storage delay_use=0

disks=$(rewind_arg disks) || disks=1
unplug=$(rewind_arg unplug) || unplug=0
uptime=$(rewind_arg uptime) || uptime=0

# The n-th disk (0 = sda) has a block device node.
disk_name() { echo "sd$(echo abcdefgh | cut -c$(($1 + 1)))"; }
disk_present() { [ -b "/dev/$(disk_name "$1")" ]; }

i=0
while [ "$i" -lt "$disks" ]; do
    rewind_wait_for disk_present "$i" || rewind_fail "no /dev/$(disk_name "$i")"
    i=$((i + 1))
done

# The USB device above the disk in sysfs has the serial number.
usb_serial() {
    _d=$(readlink -f "/sys/block/$1/device")
    while [ "$_d" != / ] && [ ! -f "$_d/serial" ]; do _d=${_d%/*}; done
    cat "$_d/serial"
}

mkdir -p /mnt
: >/tmp/md5s
i=0
while [ "$i" -lt "$disks" ]; do
    name=$(disk_name "$i")
    mkdir -p "/mnt/$name"
    mount -t ext2 -o ro "/dev/$name" "/mnt/$name" || rewind_fail "mount /dev/$name"
    sum=$(md5sum "/mnt/$name/rewind-data")
    echo "USB-MD5 $(usb_serial "$name") ${sum%% *}" >>/tmp/md5s
    umount "/mnt/$name"
    i=$((i + 1))
done
sort /tmp/md5s

if [ "$unplug" = 1 ]; then
    echo "USB-WAIT-UNPLUG"
    # QEMU's usb-host (hostbus/hostaddr) notices a vanished host device
    # only when a transfer fails: keep reading the disks (past the page
    # cache) until they are gone.
    any_disk() { [ -e /sys/block/sda ] || [ -e /sys/block/sdb ] || [ -e /sys/block/sdc ]; }
    n=0
    while any_disk; do
        n=$((n + 1))
        [ "$n" -lt 600 ] || rewind_fail "disks still present"
        echo 1 >/proc/sys/vm/drop_caches
        for b in /dev/sd?; do
            dd if="$b" of=/dev/null bs=4k count=1 2>/dev/null || true
        done
        sleep 0.1
    done
    echo "USB-UNPLUGGED"
fi

if [ "$uptime" = 1 ]; then
    read -r up _ </proc/uptime
    echo "USB-UPTIME $up"
fi

rewind_done
