"""Deployment definitions, schedules and the serve entry."""
