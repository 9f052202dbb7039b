"""Event files: JSONL, CSV and Parquet, canonical or mapped column by column."""
