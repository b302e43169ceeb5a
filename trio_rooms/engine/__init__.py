"""The Engine.IO v4 server: sessions (long-polling, WebSocket, the upgrade between them), heartbeats,
the two-lane outbound path, and the native HTTP front door (h11). Usable on its own, as
python-engineio is; the Socket.IO ``Server`` is built on it.

Rule: the only package that touches sockets and HTTP. The session layer does not know which front
door feeds it.
"""

from .handle import EngineSession as EngineSession
from .hooks import ConnectionErrorEvent as ConnectionErrorEvent
from .http import EngineErrorCode as EngineErrorCode
from .http import HttpRequest as HttpRequest
from .http import HttpResponse as HttpResponse
from .options import EngineOptions as EngineOptions
from .server import EngineServer as EngineServer

__all__ = [
    "ConnectionErrorEvent",
    "EngineErrorCode",
    "EngineOptions",
    "EngineServer",
    "EngineSession",
    "HttpRequest",
    "HttpResponse",
]
