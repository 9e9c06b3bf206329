#!/bin/bash
# make-guest-images.sh - build the guest kernel and initramfs images used by
# the functional tests, from Debian packages only.
#
# Usage: scripts/make-guest-images.sh [OUTDIR]      (default: build/images)
# Run as root (apt-get download; "apt-get update" if a package is unknown).
#
# Inputs (all from apt, versions resolved at run time, never hard-coded):
#   linux-image-<ver>-amd64      the kernel linux-image-amd64 depends on
#   linux-image-<ver>-amd64-dbg  only for System.map (the image package ships
#                                a placeholder); ~850 MB download, only the
#                                System.map member is extracted
#   busybox-static               /bin/busybox of every initramfs
#   linux-headers-<ver>-amd64, linux-headers-<ver>-common, linux-kbuild-<x.y>
#                                only to build tests/guest/module (below);
#                                extracted, not installed.  The compiler
#                                the kernel was built with (gcc-12 for
#                                Debian 12's kernel) must be installed.
#   tests/guest/common.sh        prelude of every /init
#   tests/guest/<scenario>.sh    one initramfs per file; a line
#                                "# rewind-modules: m1 m2" lists the kernel
#                                modules it needs (dependencies are added),
#                                lines "# rewind-module-args: m1 p=v ..."
#                                give insmod parameters; a line
#                                "# rewind-test-modules: rewind_test ..."
#                                puts those of our own test modules
#                                (tests/guest/module, built here:
#                                rewind_test, rewind_usbiso) in
#                                /lib/modules/<name>.ko; the scenario
#                                loads them itself
#   tests/guest/programs/<name>.cc  a line "# rewind-programs: name ..."
#                                puts those guest programs, C++ built here
#                                with g++ -std=c++20 -static -Os (stripped;
#                                tests/guest/module on the include path for
#                                the shared ioctl headers), in /bin/<name>
#   Debian user-space programs   a line "# rewind-debs: pkg1 pkg2" lists
#                                Debian packages (current candidate
#                                versions, downloaded and cached like the
#                                kernel) and a line "# rewind-deb-files:
#                                /usr/bin/arecord /usr/share/alsa" the
#                                files or folders to copy out of them, at
#                                the same paths.  ELF files bring their
#                                program interpreter and the NEEDED
#                                libraries (recursively), which must be in
#                                one of the listed packages (so list libc6).
#                                Symbolic links are kept and followed.
#
# Outputs in OUTDIR:
#   vmlinux            the uncompressed kernel ELF taken out of vmlinuz
#                      (Debian's kernel is built with CONFIG_PVH=y, so
#                      "-kernel vmlinux" boots it through QEMU's PVH entry).
#                      Use this one: it skips SeaBIOS' bzImage loader and the
#                      in-guest xz decompression of ~66 MB, which is ~4.5G of
#                      the ~6G guest instructions of a boot from vmlinuz.
#   vmlinuz            boot/vmlinuz-<ver> of the kernel package (also works,
#                      same kernel, same addresses)
#   System.map         matching symbol map (tests read addresses from it;
#                      valid as is because the command line has nokaslr)
#   kernel-version     "<ver>" (= uname -r in the guest), one line
#   cmdline            the kernel command line to use; tests append their own
#                      parameters (e.g. rewind.port=PORT).  See CMDLINE below.
#   <scenario>.cpio    initramfs, uncompressed newc cpio (~2 MB).  A
#                      .cpio.gz (1 MB) costs ~45M more guest instructions
#                      (~9% of a boot) for the in-kernel gunzip, for no
#                      measurable gain in loading time.  Reproducible:
#                      same inputs, same bytes.
#   module/            the test modules built from tests/guest/module:
#                      rewind_test.ko (etc.) with debug info (for gdb's
#                      add-symbol-file; the initramfs gets a copy without
#                      debug info or build-id) and the sources it was built
#                      from, where its debug info says they are (the kernel
#                      headers' paths point at /usr/src/linux-headers-<ver>-*
#                      as if installed).  Only when a scenario needs it.
#   .stamp             hash of all inputs (this script, tests/guest/**, the
#                      resolved package versions); when it matches and every
#                      output exists the script does nothing (~0.05 s)
#   .apt-resolved      versions apt resolved, reused while apt's lists,
#                      sources and dpkg status are unchanged
#   .cache/            the downloaded .debs (72 MB, +14 MB of headers) and
#                      System.map, so that editing a scenario rebuilds in
#                      ~7 s without download
#
# QEMU command lines (append "-icount shift=auto,rr=record,rrfile=F" or
# "...,rr=replay,..." for record/replay), I=build/images:
#   common: qemu-system-x86_64 -M pc -m 256 -nodefaults -display none
#           -kernel $I/vmlinux -initrd $I/<scenario>.cpio
#           -append "$(cat $I/cmdline)"
#           -chardev file,id=ser0,path=serial.log -serial chardev:ser0
#           -no-reboot
#   boot:        nothing more
#   serial-echo: -chardev socket,id=ser1,host=127.0.0.1,port=P,server=on,wait=off
#                -serial chardev:ser1
#   net:         -append "$(cat $I/cmdline) rewind.port=PORT"
#                -netdev user,id=n0 -device virtio-net-pci,netdev=n0
#                (or -device e1000,netdev=n0; slower, see tests/guest/net.sh)
#                + under record/replay: -object filter-replay,id=fr0,netdev=n0
#   disk:        -drive file=disk.qcow2,if=none,snapshot=on,id=img-direct
#                -drive driver=blkreplay,if=none,image=img-direct,id=img-blkreplay
#                -device virtio-blk-pci,drive=img-blkreplay
#   module:      nothing more (reverse debugging adds a qcow2 -drive for
#                its snapshots, see tests/harness/scenarios.hh)
#   audio:       -audiodev pa,id=snd0,... (record) or none,id=snd0,... (replay)
#                -device intel-hda -device hda-duplex,audiodev=snd0
#                (the options that must match: docs/devices/audio.rst)
#   usb-hid:     QEMU run under tests/usbdev's rewind-usbdev
#                --device keyboard:text=TEXT -- qemu-system-x86_64 ...
#                -device qemu-xhci -device usb-host,hostbus=1,hostaddr=2
#   usb-iso:     the same with rewind-usbdev --device iso:seed=N
#                (replay: the same QEMU command line, without rewind-usbdev)
#   usb-demo:    the same with rewind-usbdev --device demo[:seed=N]; ends
#                in a kernel panic (QEMU exits: panic=-1 and -no-reboot)
# Each scenario's protocol is described at the top of its tests/guest file.
# The serial log has CRLF line ends; every run (but usb-demo's) ends with
# "REWIND-DONE" and the kernel's "reboot: Power down".
#
# Measured (QEMU 10.0 TCG, 2 cores, shared host), wall time of a whole run,
# plain / record / replay:  boot 1.2-1.5 / 2.5-3.0 / 2.8-3.9 s,
# serial-echo 1.4 / 3.0 / 3.9-4.2, disk 1.4 / 2.8-3.2 / 3.2-3.8,
# net virtio-net 1.5 / 3.7 / 5.0, net e1000 2.8 / 8.7-9.1 / 19-20.
# Booting vmlinuz instead of vmlinux: boot 3.6 / 5.6-6.2 / 7.5-8.1 s.
#
# Kernel modules: modules built into the kernel (modules.builtin) are
# skipped, the others are copied from lib/modules/<ver>/ with the modules
# they depend on (the "depends=" modinfo field, i.e. what depmod writes to
# modules.dep, which the package does not ship), decompressed to plain .ko,
# and listed in dependency order in /etc/rewind-modules for common.sh.
#
# Test module: tests/guest/module is built as an external module (kbuild,
# "make -C <headers> M=<dir> modules", ~3 s) against the headers packages
# of the guest kernel, extracted under the work folder.  The only absolute
# path in them, the "include /usr/src/linux-headers-<ver>-common/Makefile"
# of the -amd64 package, is rewritten to the extracted copy.
set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SELF=$TOP/scripts/make-guest-images.sh
GUEST=$TOP/tests/guest
OUT=${1:-$TOP/build/images}
# Kernel command line (measured under TCG, -icount shift=auto,rr=record):
#   quiet printk.time=0  only errors reach the console, without timestamps,
#                        so plain runs print the same text every time
#   noapictimer          skip the 100 ms busy-wait LAPIC timer calibration
#                        (tick from the HPET instead)
#   no_timer_check       skip the IO-APIC timer check (waits for ticks)
#   cryptomgr.notests    skip crypto self-tests (~0.25 s guest time)
#   rodata=off           skip mark_rodata_ro + the CONFIG_DEBUG_WX scan of
#                        all page tables (~130M instructions, 20%)
#   tsc=reliable nowatchdog  no clocksource/softlockup watchdogs: no
#                        timing-dependent warnings on a loaded host
#   nokaslr panic=-1     fixed addresses (System.map); a panic reboots, and
#                        -no-reboot turns that into a QEMU exit
# Tried and left out: idle=poll (no gain, and the net scenario replays 2x
# slower), mitigations=off, audit=0 lsm=, rcupdate.rcu_expedited=1 (no
# measurable change in guest instructions), -M q35 (same as pc).
CMDLINE="console=ttyS0 nokaslr panic=-1 quiet printk.time=0 noapictimer no_timer_check cryptomgr.notests rodata=off tsc=reliable nowatchdog"

log() { printf 'make-guest-images: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

for tool in apt-cache apt-get dpkg-deb cpio sha256sum tar xz; do
    command -v "$tool" >/dev/null || die "$tool not found (Debian host needed)"
done
[ -f "$GUEST/common.sh" ] || die "$GUEST/common.sh missing"

# ---- resolve versions ----
# One apt-cache call (~0.5 s, apt's binary cache is often disabled in
# containers).  Its result only changes when apt's package lists, sources,
# preferences or the dpkg status change, so it is reused while their
# names/sizes/mtimes are unchanged: the no-op run then takes ~0.05 s.
apt_info() {
    apt-cache show --no-all-versions linux-image-amd64 busybox-static 2>/dev/null
}
apt_fingerprint() {
    # shellcheck disable=SC2012 # only a fingerprint of names/sizes/mtimes
    ls -lL --time-style=+%s /var/lib/apt/lists /etc/apt /etc/apt/*.d \
        /var/lib/dpkg/status 2>/dev/null | sha256sum | cut -d' ' -f1
}
RESOLVED=$OUT/.apt-resolved
fp=$(apt_fingerprint)
kpkg='' kpkgver='' bbver='' hdeps='' kcc='' did_update=''
if [ -f "$RESOLVED" ] && [ "$(head -n1 "$RESOLVED")" = "$fp" ]; then
    { read -r _; read -r kpkg; read -r kpkgver; read -r bbver;
      read -r hdeps || true; read -r kcc || true; } <"$RESOLVED"
fi
if [ -z "$kpkg" ] || [ -z "$bbver" ] || [ -z "$hdeps" ] || [ -z "$kcc" ]; then
    if ! info=$(apt_info) || ! grep -q '^Package: busybox-static' <<<"$info"; then
        [ "$(id -u)" = 0 ] ||
            die "apt does not know linux-image-amd64/busybox-static; run 'apt-get update' as root"
        log "packages unknown to apt, running apt-get update"
        apt-get update -qq >&2 || die "apt-get update failed"
        did_update=1
        fp=$(apt_fingerprint)
        info=$(apt_info) ||
            die "apt-cache show linux-image-amd64 busybox-static failed even after apt-get update"
    fi
    # "Depends: linux-image-6.1.0-NN-amd64 (= 6.1.x-y)"
    kpkg=$(sed -n 's/^Depends:.*\(linux-image-[0-9][^ ,]*\).*/\1/p' <<<"$info" | head -n1)
    kpkgver=$(sed -n "s/^Depends:.*$kpkg (= \\([^)]*\\)).*/\\1/p" <<<"$info" | head -n1)
    bbver=$(awk '/^Package: busybox-static$/ {p=1} p && /^Version:/ {print $2; exit}' <<<"$info")
    [ -n "$kpkg" ] || die "cannot find the kernel package linux-image-amd64 depends on"
    [ -n "$bbver" ] || die "cannot find the busybox-static version"
    # The headers of that kernel and what they depend on: "Depends:
    # linux-headers-<ver>-common (= v), linux-kbuild-6.1 (>= v),
    # linux-compiler-gcc-12-x86".  hdeps: "pkg=version ..." to download
    # (the version each dependency names), kcc: the compiler (gcc-12).
    hpkg=linux-headers-${kpkg#linux-image-}
    hinfo=$(apt-cache show "$hpkg${kpkgver:+=$kpkgver}" 2>/dev/null) ||
        die "apt does not know $hpkg${kpkgver:+=$kpkgver}"
    hdeps="$hpkg${kpkgver:+=$kpkgver}"
    while read -r dep; do
        name=${dep%% *}
        ver=$(sed -n 's/.*([<>=]* *\([^)]*\)).*/\1/p' <<<"$dep")
        case $name in
            linux-compiler-gcc-*) kcc=${name#linux-compiler-}; kcc=${kcc%-*} ;;
            linux-headers-*|linux-kbuild-*) hdeps+=" $name${ver:+=$ver}" ;;
        esac
    done < <(sed -n '0,/^Depends:/s/^Depends: //p' <<<"$hinfo" | tr ',' '\n' |
             sed 's/^ *//; s/ *|.*//')
    [ -n "$kcc" ] || kcc=gcc
    if mkdir -p "$OUT" 2>/dev/null; then
        printf '%s\n' "$fp" "$kpkg" "$kpkgver" "$bbver" "$hdeps" "$kcc" >"$RESOLVED"
    fi
fi
kver=${kpkg#linux-image-}
log "kernel $kver (${kpkgver:-any version}), busybox-static $bbver"

scenarios=()
test_module=''
test_modules=()   # every module some scenario's "# rewind-test-modules:" names
for f in "$GUEST"/*.sh; do
    n=$(basename "$f" .sh)
    [ "$n" = common ] || scenarios+=("$n")
    for m in $(sed -n 's/^# rewind-test-modules:[[:space:]]*//p' "$f" | head -n1); do
        test_module=1
        [[ " ${test_modules[*]} " = *" $m "* ]] || test_modules+=("$m")
    done
done
[ ${#scenarios[@]} -gt 0 ] || die "no scenarios in $GUEST"
programs=()       # every program some scenario's "# rewind-programs:" names
# shellcheck disable=SC2013 # one word per program
for m in $(sed -n 's/^# rewind-programs:[[:space:]]*//p' "$GUEST"/*.sh); do
    [ -f "$GUEST/programs/$m.cc" ] || die "no tests/guest/programs/$m.cc (rewind-programs line)"
    [[ " ${programs[*]} " = *" $m "* ]] || programs+=("$m")
done
[ ${#programs[@]} -eq 0 ] || command -v g++ >/dev/null ||
    die "g++ not found (for tests/guest/programs): run scripts/install-deps.sh test"
if [ -n "$test_module" ]; then
    command -v "$kcc" >/dev/null ||
        die "$kcc (the guest kernel's compiler) not found: run scripts/install-deps.sh test"
    command -v make >/dev/null || die "make not found: run scripts/install-deps.sh test"
fi

# ---- Debian user-space packages (rewind-debs) ----
# deb_want: the packages all scenarios ask for; deb_resolved: "pkg=version
# ..." as apt resolves them now, kept in .apt-resolved-debs (apt
# fingerprint, wanted list, result) like .apt-resolved above.
deb_want=$(sed -n 's/^# rewind-debs:[[:space:]]*//p' "$GUEST"/*.sh | tr -s '[:space:]' '\n' |
           sed '/^$/d' | LC_ALL=C sort -u | tr '\n' ' ')
deb_want=${deb_want% }
deb_resolved=''
if [ -n "$deb_want" ]; then
    command -v readelf >/dev/null || die "readelf not found (binutils): run scripts/install-deps.sh test"
    DEBS_RESOLVED=$OUT/.apt-resolved-debs
    if [ -f "$DEBS_RESOLVED" ] && [ "$(sed -n 1p "$DEBS_RESOLVED")" = "$fp" ] &&
       [ "$(sed -n 2p "$DEBS_RESOLVED")" = "$deb_want" ]; then
        deb_resolved=$(sed -n 3p "$DEBS_RESOLVED")
    fi
    if [ -z "$deb_resolved" ]; then
        # shellcheck disable=SC2086 # one word per package
        dinfo=$(apt-cache show --no-all-versions $deb_want 2>/dev/null) || {
            if [ "$(id -u)" != 0 ] || [ -n "$did_update" ]; then
                die "apt does not know all of: $deb_want (rewind-debs lines of tests/guest)"
            fi
            log "rewind-debs unknown to apt, running apt-get update"
            apt-get update -qq >&2 || die "apt-get update failed"
            did_update=1
            fp=$(apt_fingerprint)
            # shellcheck disable=SC2086
            dinfo=$(apt-cache show --no-all-versions $deb_want 2>/dev/null) ||
                die "apt does not know all of: $deb_want (rewind-debs lines of tests/guest)"
        }
        deb_resolved=$(awk '/^Package:/ {p=$2} /^Version:/ {print p "=" $2}' <<<"$dinfo" |
                       LC_ALL=C sort -u | tr '\n' ' ')
        deb_resolved=${deb_resolved% }
        if mkdir -p "$OUT" 2>/dev/null; then
            printf '%s\n' "$fp" "$deb_want" "$deb_resolved" >"$DEBS_RESOLVED"
        fi
    fi
    log "user-space packages: $deb_resolved"
fi

hash=$( {
    echo "kernel $kpkg $kpkgver busybox $bbver cmdline $CMDLINE"
    [ -z "$test_module" ] || echo "headers $hdeps compiler $("$kcc" --version | head -n1)"
    [ -z "$deb_resolved" ] || echo "debs $deb_resolved"
    [ ${#programs[@]} -eq 0 ] || echo "programs $(g++ --version | head -n1)"
    sha256sum "$SELF" | cut -d' ' -f1
    (cd "$GUEST" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
} | sha256sum | cut -d' ' -f1)

outputs=(vmlinux vmlinuz System.map kernel-version cmdline)
for n in "${scenarios[@]}"; do outputs+=("$n.cpio"); done
for m in "${test_modules[@]}"; do outputs+=("module/$m.ko"); done
uptodate=1
[ "$(cat "$OUT/.stamp" 2>/dev/null)" = "$hash" ] || uptodate=
for o in "${outputs[@]}"; do [ -s "$OUT/$o" ] || uptodate=; done
if [ -n "$uptodate" ]; then
    log "up to date in $OUT"
    exit 0
fi

# ---- download (cached) and extract ----
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d "$OUT/.work.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# Packages are kept in OUTDIR/.cache/<versions>/ so that editing a scenario
# does not download them again: the kernel and busybox .debs (~72 MB) and the
# System.map taken out of the -dbg package (the 850 MB .deb itself is
# deleted).  Directories for other versions are removed.
CACHE=$OUT/.cache/$kpkg=${kpkgver:-any}+busybox=$bbver
mkdir -p "$CACHE"
for d in "$OUT"/.cache/*; do
    [ "$d" = "$CACHE" ] || rm -rf "$d"
done
cd "$CACHE"

apt_download() {
    local opts=(-q)
    # as root apt drops to user _apt, which cannot write here
    [ "$(id -u)" = 0 ] && opts+=(-o APT::Sandbox::User=root)
    apt-get "${opts[@]}" download "$@" >&2
}
want=()
ls "$kpkg"_*.deb >/dev/null 2>&1 || want+=("$kpkg${kpkgver:+=$kpkgver}")
[ -s System.map ] || want+=("$kpkg-dbg${kpkgver:+=$kpkgver}")
ls busybox-static_*.deb >/dev/null 2>&1 || want+=("busybox-static=$bbver")
if [ -n "$test_module" ]; then
    for d in $hdeps; do
        ls "${d%%=*}"_*.deb >/dev/null 2>&1 || want+=("$d")
    done
fi
if [ ${#want[@]} -gt 0 ]; then
    log "downloading ${want[*]}"
    if ! apt_download "${want[@]}"; then
        if [ -n "$did_update" ] || [ "$(id -u)" != 0 ]; then
            die "apt-get download ${want[*]} failed"
        fi
        log "download failed, running apt-get update and retrying"
        apt-get update -qq >&2 || die "apt-get update failed"
        apt_download "${want[@]}" || die "apt-get download ${want[*]} failed"
    fi
fi
kdeb=$CACHE/$(ls "$kpkg"_*.deb)
bbdeb=$CACHE/$(ls busybox-static_*.deb)
if [ ! -s System.map ]; then
    dbgdeb=$(ls "$kpkg-dbg"_*.deb)
    # System.map is near the start of the -dbg data tarball: stop reading
    # there (tar exits after the first match, dpkg-deb dies of SIGPIPE).
    smap=./usr/lib/debug/boot/System.map-$kver
    log "extracting System.map from $dbgdeb"
    (dpkg-deb --fsys-tarfile "$dbgdeb" 2>/dev/null || true) |
        tar -x --occurrence=1 -f - -C "$WORK" "$smap" || die "no $smap in $dbgdeb"
    grep -q ' T kernel_power_off$' "$WORK/$smap" ||
        die "$smap does not look like a System.map (no kernel_power_off)"
    mv "$WORK/$smap" System.map.tmp && mv System.map.tmp System.map
    rm -f "$dbgdeb"
fi
smap=$CACHE/System.map

cd "$WORK"
log "extracting $(basename "$kdeb")"
dpkg-deb -x "$kdeb" k
dpkg-deb -x "$bbdeb" bb

[ -f "k/boot/vmlinuz-$kver" ] || die "no boot/vmlinuz-$kver in $kdeb"
grep -qx 'CONFIG_PVH=y' "k/boot/config-$kver" ||
    die "kernel $kver lacks CONFIG_PVH=y: it cannot be booted as an ELF (vmlinux)"
# vmlinux: the payload of the bzImage is the (stripped) ELF, compressed.
log "extracting vmlinux from vmlinuz"
extract_vmlinux() {
    local magic=$1 off
    shift
    off=$(LC_ALL=C grep -obUa -m1 "$magic" "k/boot/vmlinuz-$kver" | head -n1 | cut -d: -f1)
    [ -n "$off" ] || return 1
    tail -c "+$((off + 1))" "k/boot/vmlinuz-$kver" | "$@" >vmlinux 2>/dev/null || true
    [ "$(head -c4 vmlinux | od -An -c | tr -d ' ')" = '177ELF' ]
}
extract_vmlinux $'\xfd7zXZ' xz -dc --single-stream ||
    extract_vmlinux $'\x28\xb5\x2f\xfd' zstd -qdc ||
    extract_vmlinux $'\x1f\x8b\x08' gzip -dc ||
    die "cannot extract vmlinux from boot/vmlinuz-$kver (unknown compression)"
BB=$WORK/bb/bin/busybox
[ -x "$BB" ] || die "no bin/busybox in $bbdeb"

# ---- Debian user-space packages: download (cached), extract ----
# One folder per package and version in $CACHE/debs (others are removed);
# all packages are extracted together into $DEBROOT.
DEBROOT=$WORK/debroot
if [ -n "$deb_resolved" ]; then
    mkdir -p "$CACHE/debs" "$DEBROOT"
    for d in "$CACHE"/debs/*; do
        [ -e "$d" ] || continue
        [[ " $deb_resolved " = *" ${d##*/} "* ]] || rm -rf "$d"
    done
    for pv in $deb_resolved; do
        d=$CACHE/debs/$pv
        debs=("$d"/*.deb)
        if [ ! -f "${debs[0]}" ]; then
            log "downloading $pv"
            mkdir -p "$d"
            (cd "$d" && apt_download "$pv") || {
                rm -rf "$d"
                die "apt-get download $pv failed (try apt-get update)"
            }
            debs=("$d"/*.deb)
        fi
        dpkg-deb -x "${debs[0]}" "$DEBROOT"
    done
fi

# add_deb_path PATH DESTROOT: copy PATH (file, folder or symbolic link, and
# for an ELF file its interpreter and NEEDED libraries) from $DEBROOT to
# DESTROOT at the same path.  done_path[] avoids repeats per initramfs.
declare -A done_path=()
add_deb_path() {
    local p=$1 dest=$2 src=$DEBROOT$1 t lib dir found
    [ -z "${done_path[$p]:-}" ] || return 0
    done_path[$p]=1
    [ -e "$src" ] || [ -L "$src" ] || die "$p is not in the rewind-debs packages ($deb_want)"
    mkdir -p "$dest$(dirname "$p")"
    # never write through one of busybox's applet links
    rm -f "$dest$p" 2>/dev/null || true
    if [ -L "$src" ]; then
        t=$(readlink "$src")
        ln -s "$t" "$dest$p"
        case $t in /*) ;; *) t=$(dirname "$p")/$t ;; esac
        add_deb_path "$(realpath -m -s "$t")" "$dest"
    elif [ -d "$src" ]; then
        mkdir -p "$dest$p"
        cp -a "$src/." "$dest$p/"
    else
        cp -p "$src" "$dest$p"
        [ "$(head -c4 "$src" | od -An -c | tr -d ' ')" = '177ELF' ] || return 0
        t=$(readelf -lW "$src" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
        [ -z "$t" ] || add_deb_path "$t" "$dest"
        for lib in $(readelf -dW "$src" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
            found=''
            for dir in /lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu /lib64 /lib /usr/lib; do
                if [ -e "$DEBROOT$dir/$lib" ] || [ -L "$DEBROOT$dir/$lib" ]; then
                    add_deb_path "$dir/$lib" "$dest"
                    found=1
                    break
                fi
            done
            [ -n "$found" ] ||
                die "$lib (needed by $p) is in none of the rewind-debs packages ($deb_want)"
        done
    fi
}

# ---- test module (tests/guest/module) ----
# Built in $WORK/module, installed as $OUT/module: the debug info names
# $OUT/module/<file>.c (and /usr/src/linux-headers-* for the kernel's own
# headers), so gdb finds the sources after add-symbol-file.
build_test_module() {
    local d debs hdir mdir=$WORK/module
    log "building the test module (tests/guest/module, $kcc)"
    for d in $hdeps; do
        debs=("$CACHE/${d%%=*}"_*.deb)
        dpkg-deb -x "${debs[0]}" "$WORK/hdr"
    done
    hdir=$WORK/hdr/usr/src/linux-headers-$kver
    [ -f "$hdir/Makefile" ] || die "no usr/src/linux-headers-$kver/Makefile in the headers packages"
    sed -i "s|^include /usr/src/|include $WORK/hdr/usr/src/|" "$hdir/Makefile"
    mkdir -p "$mdir"
    cp "$GUEST"/module/* "$mdir/"
    # not the make flags of "make images" (jobserver, TESTS=...)
    if ! env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -C "$hdir" M="$mdir" \
        KCFLAGS="-fdebug-prefix-map=$mdir=$OUT/module -fdebug-prefix-map=$WORK/hdr/usr/src=/usr/src" \
        modules >"$WORK/module.log" 2>&1; then
        cat "$WORK/module.log" >&2
        die "building tests/guest/module failed"
    fi
    for m in "${test_modules[@]}"; do
        [ -s "$mdir/$m.ko" ] || die "no $m.ko after building tests/guest/module"
        # what the guest loads: no debug info and no build-id (whose hash
        # covers the debug info, hence this checkout's path)
        objcopy --strip-debug --remove-section=.note.gnu.build-id \
            "$mdir/$m.ko" "$WORK/$m.ko"
    done
    # keep only the sources and the modules
    find "$mdir" -mindepth 1 \( -name '*.mod.c' -o \( ! -name '*.[ch]' \
        ! -name Kbuild ! -name '*.ko' \) \) -delete
}
[ -z "$test_module" ] || build_test_module

# ---- guest programs (tests/guest/programs) ----
# Static, so they need nothing from the initramfs; built once, copied
# into each initramfs whose scenario lists them.
for m in "${programs[@]}"; do
    log "building guest program $m"
    mkdir -p "$WORK/programs"
    g++ -std=c++20 -static -Os -Wall -I "$GUEST/module" -o "$WORK/programs/$m" \
        "$GUEST/programs/$m.cc" || die "building tests/guest/programs/$m.cc failed"
    strip "$WORK/programs/$m"
done

# ---- kernel modules ----
MODDIR=$WORK/k/lib/modules/$kver
declare -A modpath=() builtin=() done_mod=()
while read -r p; do
    m=${p##*/}; m=${m%%.ko*}; modpath[${m//-/_}]=$p
done < <(cd "$MODDIR" && find kernel -name '*.ko*')
while read -r p; do
    m=${p##*/}; m=${m%%.ko*}; builtin[${m//-/_}]=1
done <"$MODDIR/modules.builtin"

# add_module NAME DESTDIR: copy NAME and its dependencies as plain .ko into
# DESTDIR/lib/modules, appending to the global "order" (dependencies first).
add_module() {
    local m=${1//-/_} dest=$2 p ko deps d
    [ -z "${done_mod[$m]:-}" ] || return 0
    done_mod[$m]=1
    if [ -n "${builtin[$m]:-}" ]; then
        log "  module $m is built in"
        return 0
    fi
    p=${modpath[$m]:-}
    [ -n "$p" ] || die "kernel module $m not found in $kpkg"
    ko=$dest/lib/modules/$m.ko
    case $p in
        *.ko) cp "$MODDIR/$p" "$ko" ;;
        *.ko.xz) xz -dc "$MODDIR/$p" >"$ko" ;;
        *.ko.zst) zstd -qdc "$MODDIR/$p" >"$ko" ;;
        *.ko.gz) gzip -dc "$MODDIR/$p" >"$ko" ;;
        *) die "unknown module format: $p" ;;
    esac
    deps=$(tr '\0' '\n' <"$ko" | sed -n 's/^depends=//p' | head -n1)
    for d in ${deps//,/ }; do add_module "$d" "$dest"; done
    order+=("$m.ko")
}

# ---- initramfs images ----
applets=$("$BB" --list)
build_initramfs() {
    local n=$1 root=$WORK/root-$1 mods a args
    rm -rf "$root"
    mkdir -p "$root"/{bin,dev,proc,sys,tmp,etc,lib/modules,usr}
    ln -s bin "$root/sbin"
    ln -s ../bin "$root/usr/bin"
    ln -s ../bin "$root/usr/sbin"
    cp "$BB" "$root/bin/busybox"
    for a in $applets; do
        [ "$a" = busybox ] || ln -s busybox "$root/bin/$a"
    done
    # The kernel's built-in initramfs already has /dev/console; add it anyway
    # when we can (root), so /init has a console even without it.
    if [ "$(id -u)" = 0 ]; then
        mknod -m 600 "$root/dev/console" c 5 1
        mknod -m 666 "$root/dev/null" c 1 3
    fi
    mods=$(sed -n 's/^# rewind-modules:[[:space:]]*//p' "$GUEST/$n.sh" | head -n1)
    order=()
    done_mod=()
    for a in $mods; do add_module "$a" "$root"; done
    done_path=()
    for a in $(sed -n 's/^# rewind-deb-files:[[:space:]]*//p' "$GUEST/$n.sh" | head -n1); do
        add_deb_path "$a" "$root"
    done
    for a in $(sed -n 's/^# rewind-test-modules:[[:space:]]*//p' "$GUEST/$n.sh" | head -n1); do
        cp "$WORK/$a.ko" "$root/lib/modules/$a.ko"
    done
    for a in $(sed -n 's/^# rewind-programs:[[:space:]]*//p' "$GUEST/$n.sh" | head -n1); do
        rm -f "$root/bin/$a"   # never write through a busybox applet link
        cp "$WORK/programs/$a" "$root/bin/$a"
    done
    if [ ${#order[@]} -gt 0 ]; then
        for a in "${order[@]}"; do
            # "# rewind-module-args: <module> p=v ..." -> "<module>.ko p=v ..."
            args=$(sed -n "s/^# rewind-module-args:[[:space:]]*${a%.ko}[[:space:]]\{1,\}//p" \
                "$GUEST/$n.sh" | head -n1)
            echo "$a${args:+ $args}"
        done >"$root/etc/rewind-modules"
        log "  $n: modules ${order[*]}"
    fi
    cat "$GUEST/common.sh" "$GUEST/$n.sh" >"$root/init"
    chmod 755 "$root/init"
    # reproducible archive: fixed order, owner and mtime
    find "$root" -exec touch -h -d @0 {} +
    (cd "$root" && find . -mindepth 1 | LC_ALL=C sort |
        cpio -o -H newc -R 0:0 --reproducible --quiet) >"$WORK/$n.cpio"
}

for n in "${scenarios[@]}"; do
    log "building $n.cpio"
    build_initramfs "$n"
done

# ---- install ----
cp "k/boot/vmlinuz-$kver" vmlinuz
cp "$smap" System.map
echo "$kver" >kernel-version
echo "$CMDLINE" >cmdline
rm -f "$OUT/.stamp" "$OUT"/*.cpio "$OUT"/*.cpio.gz
rm -rf "$OUT/module"
[ -z "$test_module" ] || mv "$WORK/module" "$OUT/module"
for o in "${outputs[@]}"; do
    case $o in module/*) ;; *) mv -f "$o" "$OUT/$o" ;; esac
done
echo "$hash" >"$OUT/.stamp"
log "done: $OUT (kernel $kver; scenarios: ${scenarios[*]})"
