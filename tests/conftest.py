"""Shared fixtures: the real Redis servers of tests/helpers/redis_fixtures.py, re-exported for every
test module."""

from helpers.redis_fixtures import redis_cluster_urls as redis_cluster_urls
from helpers.redis_fixtures import redis_server as redis_server
from helpers.redis_fixtures import redis_url as redis_url

__all__ = ["redis_cluster_urls", "redis_server", "redis_url"]
