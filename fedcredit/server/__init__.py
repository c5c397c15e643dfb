"""Coordinator side: the Flower ServerApp (`fedcredit.server.app`) and its round loop (`fedcredit.server.training`)."""
