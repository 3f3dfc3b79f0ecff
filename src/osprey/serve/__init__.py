"""Serving: mask providers, the HTTP API and the web demo."""
