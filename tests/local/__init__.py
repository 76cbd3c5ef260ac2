"""Tests of the local Inverse-Watch-compatible server."""
