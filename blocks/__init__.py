"""Prefect blocks: the connection to a cloud and the CMK target."""
