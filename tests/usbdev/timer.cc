// Timer (usb_device_model.hh) on GLib's default main context.
#include "usb_device_model.hh"

#include <glib.h>

namespace qemu_rewind::usbdev {

namespace {

guint milliseconds(std::chrono::microseconds us)
{
    // GLib's timeouts have millisecond resolution; round up so a timer
    // never fires early.
    auto ms = (us.count() + 999) / 1000;
    return static_cast<guint>(ms < 0 ? 0 : ms);
}

}  // namespace

void Timer::start_once(std::chrono::microseconds delay, std::function<void()> fn)
{
    stop();
    fn_ = std::move(fn);
    repeating_ = false;
    source_id_ = g_timeout_add(milliseconds(delay), reinterpret_cast<GSourceFunc>(&Timer::fire), this);
}

void Timer::start_repeating(std::chrono::microseconds period, std::function<void()> fn)
{
    stop();
    fn_ = std::move(fn);
    repeating_ = true;
    source_id_ = g_timeout_add(milliseconds(period), reinterpret_cast<GSourceFunc>(&Timer::fire), this);
}

void Timer::stop()
{
    if (source_id_) {
        g_source_remove(source_id_);
        source_id_ = 0;
    }
}

int Timer::fire(void *opaque)
{
    auto *self = static_cast<Timer *>(opaque);
    if (!self->repeating_) {
        // The source ends when we return FALSE; forget it first so fn_ can
        // restart the timer.
        self->source_id_ = 0;
        auto fn = self->fn_;
        fn();
        return G_SOURCE_REMOVE;
    }
    auto fn = self->fn_;   // fn may stop() or destroy the timer's owner
    fn();
    return G_SOURCE_CONTINUE;
}

}  // namespace qemu_rewind::usbdev
