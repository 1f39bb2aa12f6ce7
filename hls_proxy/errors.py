"""Errors the proxy answers with: a status and a one-line message, nothing else."""

from __future__ import annotations

__all__ = ["ProxyError", "bad_gateway", "bad_request", "forbidden", "gateway_timeout"]


class ProxyError(Exception):
    """An answer the client gets instead of what it asked for."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message

    def __str__(self) -> str:
        return f"{self.status} {self.message}"


def bad_request(message: str) -> ProxyError:
    return ProxyError(400, message)


def forbidden(message: str) -> ProxyError:
    return ProxyError(403, message)


def bad_gateway(message: str) -> ProxyError:
    return ProxyError(502, message)


def gateway_timeout(message: str) -> ProxyError:
    return ProxyError(504, message)
