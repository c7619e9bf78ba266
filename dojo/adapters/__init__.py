"""Adapters that bring environments defined elsewhere into the Dojo."""
