# usb-iso.sh - scenario "usb-iso": read an isochronous IN stream.
#
# Appended to common.sh to form /init of build/images/usb-iso.cpio.
# QEMU needs an xHCI controller and the iso device of tests/usbdev passed
# through, e.g. (QEMU started by rewind-usbdev --device iso:seed=N):
#   -device qemu-xhci -device usb-host,hostbus=1,hostaddr=N
# The guest loads our module rewind_usbiso (tests/guest/module), which
# binds the device (1209:0004), selects alternate setting 1 and reads its
# isochronous IN endpoint until it has collected BYTES bytes (16384, or
# rewind.isobytes=BYTES on the kernel command line), keeping of each
# packet its actual_length bytes.  Then it prints
#     USB-ISO <md5 of the BYTES bytes> <packets>
#     USB-ISO-STATS done packets=P empty=E errors=X bytes=BYTES
# where <packets> = P is the number of packets that carried data (the
# last one may have been cut), E the packets that came back empty (the
# device's own empty packets and those QEMU completes empty when it has
# no data from the host yet, so E depends on timing) and X those with an
# error status; then REWIND-DONE.  If the stream stops for 60 s of guest
# time: "REWIND-FAIL usb-iso: timeout ..." with the counts so far.
# rewind-modules: xhci_pci
# rewind-test-modules: rewind_usbiso

bytes=$(rewind_arg isobytes) || bytes=16384
insmod /lib/modules/rewind_usbiso.ko bytes="$bytes" ||
    rewind_fail "insmod rewind_usbiso.ko"

# blocks until the module has collected the bytes (or timed out)
status=$(cat /proc/rewind_usbiso_status)
case $status in
    done*) ;;
    *) rewind_fail "usb-iso: $status" ;;
esac
md5=$(md5sum </proc/rewind_usbiso_data)
packets=${status#* packets=}
echo "USB-ISO ${md5%% *} ${packets%% *}"
echo "USB-ISO-STATS $status"

rewind_done
