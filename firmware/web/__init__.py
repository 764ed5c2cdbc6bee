"""The station's web: HTTP API, pages, event stream."""
