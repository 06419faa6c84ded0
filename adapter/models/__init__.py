"""Model listing: the served models (adapter/model_registry.py) as OpenAI model objects."""
