"""The item catalog (stream ``items``), from a SQL table or a file."""
