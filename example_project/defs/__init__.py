"""Component-based definitions: the instance's queries and dashboards (from a snapshot) and one partitioned query."""
