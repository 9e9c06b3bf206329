#!/bin/sh
# common.sh - shared prelude of every guest /init.
#
# scripts/make-guest-images.sh builds one initramfs per scenario; its /init
# is this file followed by tests/guest/<scenario>.sh (plain concatenation,
# run by busybox ash as PID 1).  Do not run it on the host.
#
# What it does:
#   - mounts /proc, /sys, /dev (devtmpfs) and a tmpfs on /tmp;
#   - prints "REWIND-BOOTED <uname -r>";
#   - loads the kernel modules listed in /etc/rewind-modules (one per line:
#     file name and optional parameters, already in dependency order) with
#     busybox insmod;
#   - defines helpers for the scenario:
#       rewind_arg NAME      print the value of rewind.NAME=VALUE from the
#                            kernel command line (fails if absent)
#       rewind_done          print "REWIND-DONE" and power off (ACPI)
#       rewind_fail MSG...   print "REWIND-FAIL MSG" and power off
#       rewind_wait_for CMD  retry CMD (up to ~10 s) until it succeeds
# Any failing command (set -e) ends in rewind_fail, so a broken scenario
# powers off with "REWIND-FAIL" instead of hanging.
#
# Output goes to /dev/console (the kernel command line has console=ttyS0).
# It is deterministic: no timestamps, no timing-dependent text.

export PATH=/bin
umask 022

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o mode=1777 tmpfs /tmp

# Wait until everything written to the console so far has left the UART:
# busybox stty applies settings with tcsetattr(TCSADRAIN).  Without this
# the last lines can still sit in the tty buffer when the machine powers off.
rewind_drain() {
    stty onlcr </dev/console 2>/dev/null || true
}

rewind_poweroff() {
    rewind_drain
    trap - EXIT
    poweroff -f
    # not reached; keep PID 1 alive in case poweroff failed
    while :; do sleep 1000; done
}

rewind_done() {
    echo "REWIND-DONE"
    rewind_poweroff
}

rewind_fail() {
    echo "REWIND-FAIL $*"
    rewind_poweroff
}

rewind_arg() {
    # shellcheck disable=SC2013 # the command line is split into words
    for _rewind_a in $(cat /proc/cmdline); do
        case $_rewind_a in
            "rewind.$1="*) echo "${_rewind_a#*=}"; return 0 ;;
        esac
    done
    return 1
}

rewind_wait_for() {
    _rewind_n=0
    until "$@"; do
        _rewind_n=$((_rewind_n + 1))
        [ "$_rewind_n" -lt 100 ] || return 1
        sleep 0.1
    done
}

trap 'rewind_fail "init exited with status $?"' EXIT
set -eu
set -o pipefail

echo "REWIND-BOOTED $(uname -r)"

if [ -s /etc/rewind-modules ]; then
    # each line: <module>.ko [param=value ...]
    while read -r _rewind_m _rewind_args; do
        # shellcheck disable=SC2086 # the parameters are separate words
        insmod "/lib/modules/$_rewind_m" $_rewind_args ||
            rewind_fail "insmod $_rewind_m"
    done </etc/rewind-modules
fi

# ---- scenario follows ----
