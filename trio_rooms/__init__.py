"""trio_rooms: a Socket.IO v5 server (and client) for Trio, built around rooms."""

from .adapter.base import Adapter as Adapter
from .adapter.base import RemoteSocket as RemoteSocket
from .adapter.memory import InMemoryAdapter as InMemoryAdapter
from .adapter.redis import RedisAdapter as RedisAdapter
from .adapter.redis import RedisStreamsAdapter as RedisStreamsAdapter
from .asgi import ASGIApp as ASGIApp
from .broadcast import BroadcastOperator as BroadcastOperator
from .client import Client as Client
from .client import open_client as open_client
from .engine import EngineServer as EngineServer
from .engine.http import HttpRequest as HttpRequest
from .engine.http import HttpResponse as HttpResponse
from .errors import AckTimeout as AckTimeout
from .errors import AdapterError as AdapterError
from .errors import ConnectionRefused as ConnectionRefused
from .errors import Disconnected as Disconnected
from .errors import DisconnectReason as DisconnectReason
from .errors import LocalProtocolError as LocalProtocolError
from .errors import NamespaceRejected as NamespaceRejected
from .errors import ProtocolError as ProtocolError
from .errors import RemoteProtocolError as RemoteProtocolError
from .errors import TrioRoomsError as TrioRoomsError
from .namespace import Namespace as Namespace
from .recovery import ConnectionStateRecovery as ConnectionStateRecovery
from .runner import run as run
from .runner import serve_until_signal as serve_until_signal
from .server import Server as Server
from .socket import Socket as Socket
from .types import BroadcastOptions as BroadcastOptions
from .types import Handshake as Handshake
from .types import Room as Room
from .types import SocketId as SocketId

__version__ = "0.1.0"

__all__ = [
    "ASGIApp",
    "AckTimeout",
    "Adapter",
    "AdapterError",
    "BroadcastOperator",
    "BroadcastOptions",
    "Client",
    "ConnectionRefused",
    "ConnectionStateRecovery",
    "DisconnectReason",
    "EngineServer",
    "Disconnected",
    "Handshake",
    "HttpRequest",
    "HttpResponse",
    "InMemoryAdapter",
    "LocalProtocolError",
    "Namespace",
    "NamespaceRejected",
    "ProtocolError",
    "RedisAdapter",
    "RedisStreamsAdapter",
    "RemoteProtocolError",
    "RemoteSocket",
    "Room",
    "Server",
    "Socket",
    "SocketId",
    "TrioRoomsError",
    "open_client",
    "run",
    "serve_until_signal",
]
