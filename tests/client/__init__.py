"""Tests of the client, parameters, Arrow conversion and resource, against the local server."""
