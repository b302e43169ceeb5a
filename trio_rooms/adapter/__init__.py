"""Room adapters: the contract and the in-memory default."""

from .base import Adapter as Adapter
from .base import BroadcastFlags as BroadcastFlags
from .base import BroadcastOptions as BroadcastOptions
from .base import Room as Room
from .base import SocketId as SocketId
from .memory import InMemoryAdapter as InMemoryAdapter

__all__ = ["Adapter", "BroadcastFlags", "BroadcastOptions", "InMemoryAdapter", "Room", "SocketId"]
