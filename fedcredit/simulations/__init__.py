"""Run a scenario on Flower's Simulation Engine, with centralised and local yardsticks."""
