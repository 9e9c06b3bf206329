# serial-echo.sh - scenario "serial-echo": echo hashes of lines read from the
# second serial port.
#
# Appended to common.sh to form /init of build/images/serial-echo.cpio.
# QEMU needs a second serial port, e.g.
#   -chardev socket,id=ser1,host=127.0.0.1,port=P,server=on,wait=off
#   -serial chardev:ser1
# Protocol (on ttyS0 = the console log, ttyS1 = the socket):
#   guest prints "SERIAL-READY" once /dev/ttyS1 is open and in raw mode;
#   send nothing before that line (bytes arriving earlier may be dropped by
#   the UART).  Then send lines terminated by "\n" (no "\r"; any byte except
#   "\n" and NUL is allowed in a line).  For each line the guest prints
#       ECHO <md5 of the line's bytes, without the "\n">
#   A line "END" stops the loop; the guest then prints
#       DIGEST <md5 of all lines before END, each followed by "\n">
#   (i.e. md5 of exactly the bytes sent before "END\n"), then REWIND-DONE.
# rewind-modules:

exec 3<>/dev/ttyS1
stty raw -echo <&3
echo "SERIAL-READY"

: >/tmp/all
while IFS= read -r line <&3; do
    [ "$line" = END ] && break
    printf '%s\n' "$line" >>/tmp/all
    md5=$(printf '%s' "$line" | md5sum)
    echo "ECHO ${md5%% *}"
done
md5=$(md5sum </tmp/all)
echo "DIGEST ${md5%% *}"

rewind_done
