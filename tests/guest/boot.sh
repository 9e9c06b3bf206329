# boot.sh - scenario "boot": deterministic CPU workload on the serial console.
#
# Appended to common.sh to form /init of build/images/boot.cpio.
# Prints 200 lines "LINE <i> <sum>" where
#     sum_0 = 0,  sum_i = (sum_{i-1} * 31 + i*i) mod 2^32   (i = 1..200)
# e.g. "LINE 1 1", "LINE 2 35", "LINE 3 1094", then REWIND-DONE and powers off.
# Before the lines it calls sethostname(2) once (hostname) and then hashes
# WORK_BLOCKS x 64 KiB of zeros, printing "WORK <md5>": make bench runs
# backwards from the power-off to that one sethostname call, about 1e9
# guest instructions earlier.
# Expected values in Python:
#     s = 0
#     for i in range(1, 201): s = (s * 31 + i * i) % 2**32; print(f"LINE {i} {s}")
# rewind-modules:

WORK_BLOCKS=1000
hostname rewind-boot
work=$(dd if=/dev/zero bs=64k count=$WORK_BLOCKS 2>/dev/null | md5sum)
echo "WORK ${work%% *}"

sum=0
i=1
while [ "$i" -le 200 ]; do
    sum=$(( (sum * 31 + i * i) % 4294967296 ))
    echo "LINE $i $sum"
    i=$((i + 1))
done

rewind_done
