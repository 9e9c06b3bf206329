# module.sh - scenario "module": run a function of our own test module.
#
# Appended to common.sh to form /init of build/images/module.cpio.
# No devices.  The initramfs carries /lib/modules/rewind_test.ko, built by
# scripts/make-guest-images.sh from tests/guest/module/ (stripped copy; the
# one with debug info is build/images/module/rewind_test.ko).
#
# Right after boot the guest loads it, prints where its sections were
# loaded, one line per section, addresses as the kernel prints them:
#     REWIND-MODULE-SECTION .text 0xffffffffc0200000
#     REWIND-MODULE-SECTION .data 0x...      (also .bss, .rodata)
# (from /sys/module/rewind_test/sections; if that is missing, only .text,
# taken from the module's base address in /proc/modules), then writes the
# seed to /proc/rewind_test, which runs rewind_test_step(SEED) in the
# kernel, and prints what the module reports:
#     REWIND-MODULE-RESULT seed=<SEED> result=<n>
# (the expected n is computed in tests/guest/module/rewind_test_main.c's
# header), then REWIND-DONE.  SEED is 5 unless the kernel command line
# has rewind.seed=N.  Nothing else runs first (the step comes ~470M
# guest instructions in, nearly all of them the kernel's boot): reverse
# debugging replays from the start, so the shorter the way, the better.
# rewind-test-modules: rewind_test

insmod /lib/modules/rewind_test.ko || rewind_fail "insmod rewind_test.ko"
rewind_module_addresses rewind_test

sec=/sys/module/rewind_test/sections
if [ -r "$sec/.text" ]; then
    for s in .text .data .bss .rodata; do
        if [ -r "$sec/$s" ]; then
            echo "REWIND-MODULE-SECTION $s $(cat "$sec/$s")"
        fi
    done
else
    # "rewind_test 16384 0 - Live 0xffffffffc0200000 (OE)"
    base=$(awk '$1 == "rewind_test" { print $6 }' /proc/modules)
    [ -n "$base" ] || rewind_fail "rewind_test not in /proc/modules"
    echo "REWIND-MODULE-SECTION .text $base"
fi

seed=$(rewind_arg seed) || seed=5
echo "$seed" >/proc/rewind_test
cat /proc/rewind_test

rewind_done
