"""tap-clickstream: event-level clickstream from GA4, Mixpanel, Amplitude, Snowplow and files."""
