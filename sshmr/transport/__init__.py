"""Transports: how the master reaches a host. ``LocalTransport`` and ``SshTransport``."""

from .base import AgentStream, Transport
from .local import LocalTransport

__all__ = ["AgentStream", "LocalTransport", "Transport"]
