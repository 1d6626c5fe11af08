"""Helpers shared by tests: subprocess servers, raw wire clients, ports."""
