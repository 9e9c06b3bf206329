# audio.sh - scenario "audio": capture from an emulated sound card with
# ALSA's arecord and describe what was captured.
#
# Appended to common.sh to form /init of build/images/audio.cpio.
# Sound card: Intel HDA with QEMU's duplex codec, e.g.
#   -audiodev pa,id=snd0,server=unix:DIR/native,in.name=vsink.monitor
#   -device intel-hda -device hda-duplex,audiodev=snd0
# (in replay the backend may differ, see docs/devices/audio.rst).
#
# The guest records rewind.secs=N seconds (default 1) from hw:0,0 as
# 44100 Hz, 2 channels, S16_LE, and prints
#     AUDIO-BYTES <bytes captured>
#     AUDIO-MD5 <md5 of the raw capture>
#     AUDIO-LEVEL <mean absolute value of the left channel, 0..32768>
#     AUDIO-HZ <frequency of the left channel, from its zero crossings>
# then REWIND-DONE.  The frequency comes from the periods between upward
# zero crossings (armed below -1000, so noise near zero does not count;
# interpolated between samples): the most common period length, give or
# take a sample, averaged.  Periods spanning a gap in the signal (silence
# before the stream starts or during an underrun, a jump where samples
# were dropped) have other lengths and are left out.
# busybox awk has no sqrt, hence the mean absolute value as the level.
# rewind-modules: snd_hda_codec_generic snd_hda_intel
# rewind-debs: alsa-utils libasound2 libasound2-data libc6
# rewind-deb-files: /usr/bin/arecord /usr/bin/amixer /usr/share/alsa

secs=$(rewind_arg secs) || secs=1

# snd_hda_intel probes the controller and its codec asynchronously
rewind_wait_for test -e /dev/snd/pcmC0D0c || rewind_fail "no capture device /dev/snd/pcmC0D0c"
echo "AUDIO-READY"
# the codec starts with capture off and at -74 dB: on, at 0 dB, and before
# the capture starts (a volume change during a capture does not replay on
# another backend: docs/devices/audio.rst)
amixer -q -c 0 sset Capture 100% cap || rewind_fail "amixer failed"

arecord -q -D hw:0,0 -f S16_LE -r 44100 -c 2 -d "$secs" -t raw /tmp/capture.raw ||
    rewind_fail "arecord failed"
echo "AUDIO-BYTES $(wc -c </tmp/capture.raw)"
md5=$(md5sum </tmp/capture.raw)
echo "AUDIO-MD5 ${md5%% *}"
# one line per frame: left right
od -An -v -w4 -td2 /tmp/capture.raw | awk '
    { x = $1; sum += x < 0 ? -x : x
      if (x < -1000) {
          armed = 1
      } else if (armed && x >= 0) {
          t = NR - 1 - x / (x - prev)
          if (have) { p = t - last; b = int(p + 0.5); cnt[b]++; tot[b] += p }
          last = t; have = 1; armed = 0
      }
      prev = x }
    END { printf "AUDIO-LEVEL %d\n", NR ? sum / NR : 0; p = 0
          for (b in cnt) if (cnt[b] > cnt[mode]) mode = b
          for (b = mode - 1; b <= mode + 1; b++) { c += cnt[b]; p += tot[b] }
          printf "AUDIO-HZ %d\n", p ? 44100 * c / p + 0.5 : 0 }'

rewind_done
