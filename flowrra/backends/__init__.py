"""Result backends: where task records live. ``get_backend(url)`` picks one by scheme."""

from flowrra.backends.base import BaseResultBackend
from flowrra.backends.factory import get_backend
from flowrra.backends.memory import InMemoryBackend

__all__ = ["BaseResultBackend", "InMemoryBackend", "get_backend"]
