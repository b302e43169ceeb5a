"""RedisAdapter: the rooms of one namespace across many servers, through Redis pub/sub."""

from .adapter import RedisAdapter as RedisAdapter

__all__ = ["RedisAdapter"]
