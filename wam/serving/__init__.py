"""Serving a trained world action model as a policy over WebSocket (``docs/serving.md``)."""
