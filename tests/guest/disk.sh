# disk.sh - scenario "disk": read and write a virtio-blk disk.
#
# Appended to common.sh to form /init of build/images/disk.cpio.
# QEMU: -drive file=disk.qcow2,if=none,snapshot=on,id=img-direct
#       -drive driver=blkreplay,if=none,image=img-direct,id=img-blkreplay
#       -device virtio-blk-pci,drive=img-blkreplay
# The disk (/dev/vda) must be at least 3 MiB.  The guest prints
#     DISK-READ <md5 of bytes [0, 1 MiB)>
#     DISK-BEFORE <md5 of bytes [2 MiB, 2 MiB + 64 KiB), before the write>
# then writes 64 KiB at offset 2 MiB: the 32 hex digits of that md5 repeated
# 2048 times (no newlines), syncs, drops the page cache, reads the 64 KiB
# back from the disk and prints
#     DISK-WRITE <md5 of what it read back>
# (expected: md5 of (read_md5_hex * 2048)), then REWIND-DONE.
# rewind-modules: virtio_pci virtio_blk

vda_present() { [ -b /dev/vda ]; }
rewind_wait_for vda_present || rewind_fail "no /dev/vda"

md5=$(dd if=/dev/vda bs=64k count=16 2>/dev/null | md5sum)
rd=${md5%% *}
echo "DISK-READ $rd"
md5=$(dd if=/dev/vda bs=64k skip=32 count=1 2>/dev/null | md5sum)
echo "DISK-BEFORE ${md5%% *}"

blk=$rd
for _ in 1 2 3 4 5 6 7 8 9 10 11; do blk=$blk$blk; done   # 32 * 2^11 = 65536
printf '%s' "$blk" >/tmp/block
dd if=/tmp/block of=/dev/vda bs=64k seek=32 count=1 conv=notrunc 2>/dev/null
sync
echo 3 >/proc/sys/vm/drop_caches
md5=$(dd if=/dev/vda bs=64k skip=32 count=1 2>/dev/null | md5sum)
echo "DISK-WRITE ${md5%% *}"

rewind_done
