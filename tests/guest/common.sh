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
#       rewind_module_addresses NAME
#                            print "rewind-module: NAME .text=0x... ..." (the
#                            load address of each section of module NAME,
#                            from /sys/module/NAME/sections), which
#                            `rewind record` keeps for `rewind debug`
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

rewind_module_addresses() {
    # The section files allow one read at offset 0 (a second read fails):
    # one cat reads them all (its read errors are expected).
    _rewind_line="rewind-module: $1"
    _rewind_files=""
    for _rewind_s in /sys/module/"$1"/sections/.* /sys/module/"$1"/sections/*; do
        [ -f "$_rewind_s" ] && _rewind_files="$_rewind_files $_rewind_s"
    done
    # shellcheck disable=SC2086 # one word per file
    _rewind_values=$(cat $_rewind_files 2>/dev/null) || true
    # shellcheck disable=SC2086 # one word per address
    set -- $_rewind_values
    for _rewind_s in $_rewind_files; do
        [ $# -gt 0 ] || break
        _rewind_line="$_rewind_line ${_rewind_s##*/}=$1"
        shift
    done
    echo "$_rewind_line"
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
