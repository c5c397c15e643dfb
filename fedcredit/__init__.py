"""fedcredit: privacy-preserving federated credit scoring on Flower.

One import root when installed. Rooms (arrows: may import): cli → simulations, deployment → server, clients (the only Flower adapters; never each other) → privacy (differential privacy), protection (data at rest, identity) → credit (data, features, models, metrics).
"""
