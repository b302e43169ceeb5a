"""Helpers of the tests (not tests themselves): fakes, raw protocol clients, real-server fixtures."""
