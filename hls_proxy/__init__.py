"""hlsproxy: an HLS (m3u8) streaming proxy on Twisted."""

__version__ = "0.1.0"
__all__ = ["__version__"]
