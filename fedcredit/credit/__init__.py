"""Credit-scoring logic shared by every layer: schema, loading, features, models, metrics.

Plain numpy/pandas/torch; nothing here knows about Flower or privacy.
"""
