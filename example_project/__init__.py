"""Example Dagster code location: Inverse Watch queries as partitioned Parquet assets."""

LOCAL_URL = "http://127.0.0.1:5055"
# The key the local demo server is started with (make serve, make dev, make run); it guards only that server.
LOCAL_API_KEY = "local-demo-key"
