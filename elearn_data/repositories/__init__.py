"""Repositories: domain reads and writes inside a unit of work (they never commit)."""
