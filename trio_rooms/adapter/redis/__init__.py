"""RedisAdapter: the rooms of one namespace across many servers, through Redis pub/sub."""

from .adapter import RedisAdapter as RedisAdapter
from .factory import RedisAdapterFactory as RedisAdapterFactory

__all__ = ["RedisAdapter", "RedisAdapterFactory"]
