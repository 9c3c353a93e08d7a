"""Shared fixtures for the lab's own tests."""
