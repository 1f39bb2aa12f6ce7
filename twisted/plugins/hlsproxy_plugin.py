"""twistd plugin: `twistd -n hlsproxy --port 8080`.

twistd imports every plugin on every run, so this imports nothing but ServiceMaker.
"""

from twisted.application.service import ServiceMaker

hlsproxy = ServiceMaker(
    "hlsproxy",
    "hls_proxy.tap",
    "HLS (m3u8) streaming proxy: rewrites playlists to signed URLs and streams segments.",
    "hlsproxy",
)
