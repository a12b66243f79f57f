#!/usr/bin/env python3
"""A local RTSP camera for the network-source example's test: serves
videotestsrc as RTP/JPEG at rtsp://127.0.0.1:PORT/camera (gst-rtsp-server
from Debian's gir1.2-gst-rtsp-server-1.0). Prints the URL once it listens."""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> int:
    Gst.init(None)
    port = sys.argv[1] if len(sys.argv) > 1 else "0"
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        "( videotestsrc is-live=true pattern=smpte ! "
        "video/x-raw,format=I420,width=320,height=240,framerate=30/1 ! "
        "jpegenc ! rtpjpegpay name=pay0 pt=26 )"
    )
    factory.set_shared(True)
    server.get_mount_points().add_factory("/camera", factory)
    if server.attach(None) == 0:
        print("cannot listen", file=sys.stderr)
        return 1
    print(f"rtsp://127.0.0.1:{server.get_bound_port()}/camera", flush=True)
    GLib.MainLoop().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
