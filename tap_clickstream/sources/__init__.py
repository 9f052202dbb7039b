"""One sub-package per source: each turns its native records into canonical events."""
