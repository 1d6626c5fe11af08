"""Helpers shared by test modules (which never import each other): subprocess servers, raw wire clients, ports,
2025-11-25 tasks and keep-alive progress, job audits after a stop, scripted sampling hosts, hostile schemas."""
