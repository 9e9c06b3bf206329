# usb-hid.sh - scenario "usb-hid": read what a USB keyboard types.
#
# Appended to common.sh to form /init of build/images/usb-hid.cpio.
# QEMU needs an xHCI controller and the keyboard of tests/usbdev passed
# through, e.g. (QEMU started by rewind-usbdev --device keyboard:text=...):
#   -device qemu-xhci -device usb-host,hostbus=1,hostaddr=N
# Protocol:
#   The guest waits (up to ~10 s) for the input device whose name contains
#   "Rewind" and "Keyboard" (the model's manufacturer and product
#   strings), opens its /dev/input/eventN, then turns the keyboard's
#   Scroll Lock LED on (an EV_LED write, which usbhid sends to the device
#   as a SET_REPORT output report).  That LED is the keyboard's signal to
#   start typing: key events that come before evdev is open are lost.
#   The keyboard types its text and then Enter; the guest collects the
#   key events (EV_KEY) up to the release of Enter and prints them in
#   order as one line
#       USB-KEYS +42 +35 -35 -42 +18 -18 ... +28 -28
#   "+C" is a press of Linux key code C, "-C" its release (autorepeats,
#   value 2, are left out: a slow host may hold a key long enough).
#   Then REWIND-DONE.  Failures: "REWIND-FAIL no Enter from the keyboard
#   in 30 s", "REWIND-FAIL key events dropped (SYN_DROPPED)".
# rewind-modules: xhci_pci usbhid hid_generic evdev

find_keyboard() {
    for e in /sys/class/input/event*; do
        case $(cat "$e/device/name" 2>/dev/null) in
            *Rewind*Keyboard*) echo "/dev/input/${e##*/}"; return 0 ;;
        esac
    done
    return 1
}
rewind_wait_for find_keyboard >/dev/null || rewind_fail "no USB keyboard"
ev=$(find_keyboard)
rewind_wait_for test -c "$ev" || rewind_fail "no $ev"
# Open the event device here, so events are queued from now on, and let
# one cat drain it into a file: evdev's queue holds only 64 events, and a
# shell loop forking a reader per batch falls behind on a slow host.
exec 3<"$ev"
cat <&3 >/tmp/ev &
reader=$!

# struct input_event: 16 bytes of time (ignored), type EV_LED (0x11),
# code LED_SCROLLL (2), value 1
printf '\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\021\0\002\0\001\0\0\0' >"$ev"

# od -tu2 -w24: one event per line, 8 words of time, then type, code,
# value (low, high word)
events() { od -An -v -tu2 -w24 /tmp/ev; }
enter_released() { events | awk '$9 == 1 && $10 == 28 && $11 == 0 { f = 1 } END { exit !f }'; }
n=0
until enter_released; do
    n=$((n + 1))
    [ "$n" -lt 300 ] || rewind_fail "no Enter from the keyboard in 30 s"
    sleep 0.1
done
kill "$reader"
{ wait "$reader" || true; } 2>/dev/null   # no "Terminated" on the console
exec 3<&-

keys=''
while read -r _ _ _ _ _ _ _ _ type code value _; do
    # EV_SYN SYN_DROPPED: the queue overflowed, keys are missing
    if [ "$type.$code" = 0.3 ]; then
        rewind_fail "key events dropped (SYN_DROPPED)"
    fi
    [ "$type" = 1 ] || continue
    case $value in
        0) keys="$keys -$code"
           if [ "$code" = 28 ]; then break; fi ;;
        1) keys="$keys +$code" ;;
    esac
done <<EOF2
$(events)
EOF2
echo "USB-KEYS$keys"

rewind_done
