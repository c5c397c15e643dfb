"""Coordinator side: the Flower ServerApp (`server.app`) and its round loop (`server.training`)."""
