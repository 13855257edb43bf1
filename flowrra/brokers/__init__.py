"""Brokers: where tasks wait for a worker. ``get_broker(url)`` picks one by scheme."""

from flowrra.brokers.base import BaseBroker
from flowrra.brokers.factory import get_broker
from flowrra.brokers.memory import InMemoryBroker

__all__ = ["BaseBroker", "InMemoryBroker", "get_broker"]
