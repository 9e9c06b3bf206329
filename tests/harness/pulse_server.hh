// A private PulseAudio server for the audio tests: a real user-space audio
// server (Debian's pulseaudio), started with only what the tests need, so
// that QEMU's "pa" audio backend captures a signal the test chose.
//
// The server keeps everything under one folder (its socket, runtime and
// config files), loads no modules but a native-protocol socket and a null
// sink "vsink"; whatever is played into vsink can be captured from its
// monitor source "vsink.monitor".  It needs neither D-Bus nor a session,
// and runs as root (the CI's container) as well as a normal user.
#pragma once

#include "process.hh"

#include <string>
#include <vector>

namespace qemu_rewind::test {

class PulseServer {
public:
    // Starts pulseaudio with its files under `dir` (created) and waits
    // until its socket accepts connections. Throws std::runtime_error, with
    // the server's log, if a program is missing or the server fails.
    explicit PulseServer(const std::string &dir);
    ~PulseServer();   // stop()
    PulseServer(const PulseServer &) = delete;
    PulseServer &operator=(const PulseServer &) = delete;

    // For -audiodev pa,server=...: "unix:<dir>/native".
    std::string address() const { return "unix:" + socket_path_; }
    static constexpr const char *sink = "vsink";
    static constexpr const char *monitor_source = "vsink.monitor";

    // Plays a sine of `hz` at `volume` (fraction of full scale) into the
    // sink until stop() (sox | pacat, 48 kHz stereo), and returns once the
    // server has the stream.
    void play_sine(double hz, double volume);

    // Stops the player and the server (idempotent); afterwards nothing
    // listens on address() any more.
    void stop();
    bool running();
    // Whether something accepts connections on the server's socket now.
    bool accepts_connections() const;
    std::string log() const;   // the server's stderr

private:
    std::string dir_;
    std::string socket_path_;
    Process server_;
    Process player_;
    std::vector<std::string> env_;   // for the server and its clients
};

}  // namespace qemu_rewind::test
