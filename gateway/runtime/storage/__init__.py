"""The gateway's one SQLite file: its owner (``db.Storage``), schema, and a query class per subject."""

from gateway.runtime.storage.db import DB_NAME, Storage, StorageError

__all__ = ["DB_NAME", "Storage", "StorageError"]
