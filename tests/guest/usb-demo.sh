# usb-demo.sh - scenario "usb-demo": the driver-debugging demo's crash.
#
# Appended to common.sh to form /init of build/images/usb-demo.cpio.
# QEMU needs an xHCI controller and the demo device of tests/usbdev passed
# through (QEMU started by rewind-usbdev --device demo[:seed=N]):
#   -device qemu-xhci -device usb-host,hostbus=1,hostaddr=2
# The guest loads our driver rewind_demo (tests/guest/module/rewind_demo.c),
# prints where its sections are ("rewind-module: rewind_demo .text=0x...",
# kept by `rewind record` for `rewind debug`), waits (~10 s) for the
# device to bind (/dev/rewind_demo), then runs rewind-demo-ioctl
# (tests/guest/programs), which reads reports and prints
#     DEMO-REPORT <n> length=<L> checksum=<C>
# for each.  The device's first reports are short, then they are long, and
# the driver crashes the kernel on the first long one:
#     Kernel panic - not syncing: stack-protector: Kernel stack is
#     corrupted in: rewind_demo_ioctl+0x.../0x... [rewind_demo]
# The command line has panic=-1 and QEMU runs with -no-reboot: QEMU exits.
# Without a crash: "REWIND-FAIL usb-demo: no crash after 10 reports".
# rewind-modules: xhci_pci
# rewind-test-modules: rewind_demo
# rewind-programs: rewind-demo-ioctl

insmod /lib/modules/rewind_demo.ko || rewind_fail "insmod rewind_demo.ko"
rewind_module_addresses rewind_demo
rewind_wait_for test -c /dev/rewind_demo || rewind_fail "usb-demo: no /dev/rewind_demo"
if ! rewind-demo-ioctl 10; then
    rewind_fail "usb-demo: rewind-demo-ioctl failed"
fi
rewind_fail "usb-demo: no crash after 10 reports"
