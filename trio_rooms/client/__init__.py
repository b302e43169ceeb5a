"""The Trio Socket.IO client: ``async with open_client(url) as client``.

Rule: imports nothing of the server side (only the bottom and ``protocol``).
"""

from .client import Client as Client
from .opener import open_client as open_client
from .state import ClientDisconnectReason as ClientDisconnectReason

__all__ = ["Client", "ClientDisconnectReason", "open_client"]
