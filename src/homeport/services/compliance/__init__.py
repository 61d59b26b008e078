"""Compliance: erasing an end user's data, and a project's retention of its data."""
