"""``dg`` components for Inverse Watch: a whole instance (state-backed) and a single saved query."""

from dagster_iwatch.components.query_component import IWatchQueryComponent
from dagster_iwatch.components.workspace_component import IWatchWorkspaceComponent

__all__ = ["IWatchQueryComponent", "IWatchWorkspaceComponent"]
