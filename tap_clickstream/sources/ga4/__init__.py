"""Google Analytics 4: the BigQuery event export (``ga4_events``) and Data API reports."""
