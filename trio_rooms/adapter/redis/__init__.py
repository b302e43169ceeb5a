"""RedisAdapter (Redis pub/sub) and RedisStreamsAdapter (a Redis stream): the rooms of one namespace
across many servers."""

from .adapter import RedisAdapter as RedisAdapter
from .factory import RedisAdapterFactory as RedisAdapterFactory
from .streams import RedisStreamsAdapter as RedisStreamsAdapter
from .streams_factory import RedisStreamsAdapterFactory as RedisStreamsAdapterFactory

__all__ = ["RedisAdapter", "RedisAdapterFactory", "RedisStreamsAdapter", "RedisStreamsAdapterFactory"]
