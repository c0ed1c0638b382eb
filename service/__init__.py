"""Tapeline: long audio in, transcripts out, through a Postgres job queue."""

__version__ = "0.1.0"
